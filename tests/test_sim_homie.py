"""The Homie 5 codec, description, backoff and state store of firmware_sim (pure, no sockets)."""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.common.backoff import Backoff
from firmware_sim.common.clock import SimClock
from firmware_sim.common.state import StateStore
from firmware_sim.homie.devices import MODELS
from firmware_sim.homie.wire import InvalidValue, Property, description

BOOL = Property("on", "On", "boolean", settable=True)
BRIGHT = Property("brightness", "Brightness", "integer", "0:100", True, unit="%")
TARGET = Property("target-temperature", "Target", "float", "5:30:0.5", True, unit="°C")
MODE = Property("mode", "Mode", "enum", "off,heat,auto", True)
COLOR = Property("color", "Colour", "color", "rgb", True)
TEXT = Property("url", "URL", "string", settable=True)


def test_values_encode_as_homie5_payloads() -> None:
    assert BOOL.encode(True) == "true" and BOOL.encode(False) == "false"
    assert BRIGHT.encode(42) == "42"
    assert TARGET.encode(21.5) == "21.5"
    assert TARGET.encode(21) == "21.0"  # a float always carries a '.'
    assert MODE.encode("heat") == "heat"
    assert COLOR.encode((255, 128, 0)) == "rgb,255,128,0"  # Homie 5.0.0 colour payload
    assert Property("p", "P", "float").encode(0.1 + 0.2) == "0.3"


def test_payloads_decode_and_validate() -> None:
    assert BOOL.decode(b"true") is True and BOOL.decode(b"false") is False
    assert BRIGHT.decode(b"0") == 0 and BRIGHT.decode(b"100") == 100
    assert TARGET.decode(b"21.3") == 21.5  # rounded to the 0.5 step
    assert TARGET.decode(b"22") == 22.0
    assert MODE.decode(b"auto") == "auto"
    assert COLOR.decode(b"1,2,3") == (1, 2, 3)
    assert TEXT.decode("http://x/é".encode()) == "http://x/é"


def test_empty_string_travels_as_a_zero_byte() -> None:
    """Homie 5 "Empty string values": an empty MQTT payload would delete the retained topic."""
    assert TEXT.encode("") == "\x00"
    assert TEXT.decode(b"\x00") == ""
    with pytest.raises(InvalidValue, match="0x00"):
        TEXT.decode(b"")


def test_step_rounding_follows_homie5_formats() -> None:
    assert TARGET.decode(b"21.25") == 21.5  # half rounds up: floor(x + 0.5), not banker's rounding
    assert TARGET.decode(b"21.74") == 21.5
    assert Property("p", "P", "integer", "0:10:2").decode(b"5") == 6
    assert Property("p", "P", "integer", ":10:2").decode(b"5") == 6  # base is max when min is open
    with pytest.raises(InvalidValue):
        Property("p", "P", "integer", "0:10:4").decode(b"11")  # rounds to 12, then out of range


def test_colour_accepts_the_spec_prefixed_form_too() -> None:
    assert COLOR.decode(b"rgb,255,127.6,0") == (255, 128, 0)
    for bad in (b"hsv,1,2,3", b"rgb,1,2", b"rgb,256,0,0", b"rgb, 1,2,3"):
        with pytest.raises(InvalidValue):
            COLOR.decode(bad)


@pytest.mark.parametrize("prop,payload", [
    (BOOL, b"TRUE"), (BOOL, b"1"), (BOOL, b""), (BOOL, b"\xff\xfe"),
    (BRIGHT, b"101"), (BRIGHT, b"-1"), (BRIGHT, b"4.5"), (BRIGHT, b"ten"), (BRIGHT, b" 5"),
    (TARGET, b"4.5"), (TARGET, b"31"), (TARGET, b"nan"), (TARGET, b"inf"), (TARGET, b"21,5"),
    (MODE, b"cool"), (MODE, b""), (COLOR, b"256,0,0"), (COLOR, b"1,2"), (COLOR, b"a,b,c"),
    (COLOR, b"rgb(1,2,3)"), (COLOR, b"1, 2,3"), (TEXT, b"x" * 5000), (BRIGHT, b"9" * 5000),
    (TARGET, b"1" * 5000),
])
def test_invalid_payloads_are_rejected(prop: Property, payload: bytes) -> None:
    with pytest.raises(InvalidValue):
        prop.decode(payload)


@given(st.integers(0, 100))
def test_integer_round_trip(value: int) -> None:
    assert BRIGHT.decode(BRIGHT.encode(value).encode()) == value


@given(st.floats(5, 30, allow_nan=False).map(lambda v: round(v * 2) / 2))
def test_float_round_trip(value: float) -> None:
    assert TARGET.decode(TARGET.encode(value).encode()) == value


@given(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
def test_color_round_trip(value: tuple[int, int, int]) -> None:
    assert COLOR.decode(COLOR.encode(value).encode()) == value


@given(st.binary(max_size=64))
def test_garbage_never_escapes_as_another_error(payload: bytes) -> None:
    for prop in (BOOL, BRIGHT, TARGET, MODE, COLOR, TEXT):
        try:
            prop.decode(payload)
        except InvalidValue:
            pass


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(ValueError):
        Property("Bad_Id", "x", "boolean")
    with pytest.raises(ValueError):
        Property("x", "x", "enum")
    with pytest.raises(ValueError):
        Property("x", "x", "color", "cmyk")


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_description_is_homie5_json(kind: str) -> None:
    model = MODELS[kind]()
    doc = json.loads(json.dumps(description("Some device", kind, model.nodes())))
    assert doc["homie"] == "5.0" and isinstance(doc["version"], int)
    assert doc["name"] == "Some device" and doc["type"] == kind
    for node in doc["nodes"].values():
        for prop in node["properties"].values():
            assert prop["datatype"] in ("boolean", "integer", "float", "string", "enum", "color")
            assert isinstance(prop["settable"], bool) and isinstance(prop["retained"], bool)
    # every published value is encodable with its declaration
    props = {(n.id, p.id): p for n in model.nodes() for p in n.properties}
    for u in model.snapshot():
        props[(u.node, u.prop)].encode(u.value)


def test_description_version_changes_with_content() -> None:
    light = MODELS["light"]().nodes()
    assert description("A", "light", light)["version"] == description("A", "light", light)["version"]
    assert description("A", "light", light)["version"] != description("B", "light", light)["version"]


def test_backoff_grows_to_a_cap_and_resets() -> None:
    b = Backoff(base=0.5, cap=8, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(10)]
    assert all(0 < d <= 8 for d in delays)
    assert max(delays[-3:]) > 3 * max(delays[:1])
    b.reset()
    assert b.next_delay() <= 0.5


def test_sim_clock_runs_at_speed() -> None:
    t = [100.0]
    clock = SimClock(speed=10, monotonic=lambda: t[0], wall=lambda: 1000.0)
    assert clock.now() == 1000.0
    t[0] += 2
    assert clock.now() == 1020.0
    assert clock.real_seconds(10) == 1.0


def test_state_store_round_trip_and_corrupt_file(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    assert store.load("lamp") == {}
    store.save("lamp", {"light/on": True, "light/brightness": 40})
    assert store.load("lamp") == {"light/on": True, "light/brightness": 40}
    assert not list((tmp_path / "state").glob("*.tmp*"))
    store.path("lamp").write_bytes(b"{not json")
    assert store.load("lamp") == {}
    assert (tmp_path / "state" / "lamp.json.bad").read_bytes() == b"{not json"


def test_firmware_sim_never_imports_hub_or_devices() -> None:
    root = Path(__file__).resolve().parents[1] / "firmware_sim"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("hub", "devices"), f"{path.name} imports {name}"
