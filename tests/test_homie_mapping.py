"""Homie 5 ⇄ exposes, without a broker."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.homie_mapping import decode_value, encode_value, parse_description, parse_topic, to_expose
from hub.model import Access, Action, Binary, Color, Enum, Numeric, Text

DESC = {
    "homie": "5.0", "version": 3, "name": "Hall", "type": "cover",
    "nodes": {
        "cover": {"properties": {
            "position": {"datatype": "integer", "format": "0:100", "settable": True, "unit": "%"},
            "action": {"datatype": "enum", "format": "open,close,stop", "settable": True, "retained": False},
            "state": {"datatype": "enum", "format": "opening,closing,stopped"},
        }},
        "light": {"properties": {
            "on": {"datatype": "boolean", "settable": True},
            "color": {"datatype": "color", "format": "hsv", "settable": True},
            "state": {"datatype": "string"},
            "temp": {"datatype": "float", "format": "-20:60:0.5", "unit": "°C"},
        }},
    },
}


def test_description_to_exposes() -> None:
    d = parse_description(json.dumps(DESC).encode())
    ex = {p.expose_name: to_expose(p) for p in d.properties}
    assert set(ex) == {"position", "action", "cover_state", "on", "color", "light_state", "temp"}
    assert isinstance(ex["position"], Numeric) and ex["position"].integer and ex["position"].max == 100
    assert ex["position"].access == Access.STATE | Access.SET
    assert isinstance(ex["action"], Action) and ex["action"].access == Access.SET
    assert isinstance(ex["cover_state"], Enum) and ex["cover_state"].access == Access.STATE
    assert isinstance(ex["on"], Binary) and isinstance(ex["color"], Color) and isinstance(ex["light_state"], Text)
    assert (ex["temp"].min, ex["temp"].max, ex["temp"].step, ex["temp"].unit) == (-20, 60, 0.5, "°C")


@pytest.mark.parametrize("payload,msg", [
    (b"{", "not JSON"), (b"[]", "JSON object"), (b'{"homie": "4.0"}', "not 5.x"),
    (json.dumps({"homie": "5.0", "nodes": {"Bad Node": {}}}).encode(), "not a valid Homie node"),
    (json.dumps({"homie": "5.0", "nodes": {"n": {"properties": {"p": {"datatype": "blob"}}}}}).encode(),
     "unknown datatype"),
    (json.dumps({"homie": "5.0", "nodes": {"n": {"properties": {"p": {"datatype": "integer", "format": "1:2:3:4"}}}}}).encode(),
     "min:max"),
    (json.dumps({"homie": "5.0", "nodes": {"n": {"properties": {"p": {"datatype": "enum"}}}}}).encode(),
     "enum without values"),
])
def test_bad_descriptions_say_why(payload: bytes, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        parse_description(payload)


def props():
    return {p.expose_name: p for p in parse_description(json.dumps(DESC).encode()).properties}


@pytest.mark.parametrize("name,raw,value", [
    ("position", b"42", 42), ("on", b"true", True), ("on", b"false", False), ("temp", b"-3.5", -3.5),
    ("color", b"0,100,100", "#ff0000"), ("color", b"hsv,0,100,100", "#ff0000"),
    ("cover_state", b"stopped", "stopped"), ("light_state", b"\x00", ""), ("light_state", b"idle", "idle"),
])
def test_decode(name: str, raw: bytes, value) -> None:
    assert decode_value(props()[name], raw) == value


@pytest.mark.parametrize("name,raw", [
    ("position", b"101"), ("position", b"4.5"), ("on", b"TRUE"), ("on", b"1"), ("temp", b"nan"),
    ("temp", b"inf"), ("color", b"1,2"), ("color", b"400,0,0"), ("color", b"rgb,1,2,3"),
    ("cover_state", b"open"), ("on", b"\xff"),
])
def test_decode_refuses_values_that_break_the_description(name: str, raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_value(props()[name], raw)


def test_encode_is_homie() -> None:
    p = props()
    assert encode_value(p["on"], True) == "true"
    assert encode_value(p["position"], 40) == "40"
    assert encode_value(p["temp"], 21.5) == "21.5"
    assert encode_value(p["color"], "#ff0000") == "hsv,0,100,100"
    assert encode_value(p["light_state"], "") == "\x00"  # Homie 5: empty string is one 0x00 byte


@given(st.binary(max_size=64))
def test_any_bytes_decode_or_raise_valueerror(raw: bytes) -> None:
    for p in props().values():
        try:
            decode_value(p, raw)
        except ValueError:
            pass


@given(st.binary(max_size=300))
def test_any_description_bytes_parse_or_raise_valueerror(raw: bytes) -> None:
    try:
        parse_description(raw)
    except ValueError:
        pass


def test_topics() -> None:
    assert parse_topic("homie/5/lamp/$state").kind == "state"
    assert parse_topic("homie/5/lamp/light/on").suffix == "light/on"
    assert parse_topic("homie/5/lamp/light/on/$target").kind == "target"
    assert parse_topic("homie/5/lamp/light/on/set").kind == "set"
    assert parse_topic("homie/5/Bad/x/y") is None and parse_topic("other/5/x/$state") is None
