"""The simulated device models, driven by a fake clock (no sockets, no sleeping)."""

from __future__ import annotations

import json
import random

import pytest

from firmware_sim.homie.devices import (ClimateSensor, ContactSensor, Cover, Light, Lock, MotionSensor, Plug,
                                        Thermostat, build_model)
from firmware_sim.homie.wire import Update
from firmware_sim.projector.player import PlayerModel, parse_content_range

T0 = 1_000_000.0


def values(updates: list[Update], prop: str, target: bool = False) -> list:
    return [u.value for u in updates if u.prop == prop and u.target == target]


def test_light_echoes_commands_and_persists() -> None:
    light = Light()
    light.begin(T0)
    assert values(light.command("light", "brightness", 40, T0), "brightness") == [40]
    light.command("light", "on", True, T0)
    light.command("light", "color", (10, 20, 30), T0)
    saved = light.saved()
    again = Light()
    again.restore(saved)
    assert again.get("light", "on") is True and again.get("light", "brightness") == 40
    assert again.get("light", "color") == (10, 20, 30)


def test_restore_ignores_bad_saved_values() -> None:
    light = Light()
    light.restore({"light/brightness": 900, "light/on": "yes", "light/color": [1, 2, 3]})
    assert light.get("light", "brightness") == 100 and light.get("light", "on") is False
    assert light.get("light", "color") == (1, 2, 3)


def test_thermostat_heats_toward_target_then_cools_toward_outdoor() -> None:
    th = Thermostat({"outdoor": 5.0, "initial": 15.0, "tau_heat": 600, "tau_cool": 1800})
    th.begin(T0)
    out = th.command("thermostat", "target-temperature", 21.0, T0)
    assert values(out, "target-temperature", target=True) == [21.0]
    assert th.get("thermostat", "heating") is True
    readings = []
    for minute in range(1, 31):
        th.tick(T0 + minute * 60)
        readings.append(th.temp)
    assert all(b > a for a, b in zip(readings, readings[1:]))  # rises monotonically
    assert 20.0 < readings[-1] <= 21.0
    th.tick(T0 + 3 * 3600)
    assert abs(th.temp - 21.0) < 0.4  # holds around the target with hysteresis
    th.command("thermostat", "mode", "off", T0 + 3 * 3600)
    assert th.get("thermostat", "heating") is False
    th.tick(T0 + 3 * 3600 + 1800)
    assert th.temp < 20.0  # cools toward 5 °C outdoors
    th.tick(T0 + 30 * 3600)
    assert th.temp == pytest.approx(5.0, abs=0.2)


def test_thermostat_first_order_step_is_exact() -> None:
    th = Thermostat({"outdoor": 0.0, "initial": 20.0, "tau_cool": 1000})
    th.begin(T0)
    th.command("thermostat", "mode", "off", T0)
    th.tick(T0 + 1000)  # one time constant: e^-1 of the gap remains
    assert th.temp == pytest.approx(20.0 * 0.36788, rel=1e-3)


def test_cover_moves_at_its_speed_and_stops() -> None:
    cover = Cover({"speed": 10.0})
    cover.begin(T0)
    out = cover.command("cover", "position", 80, T0)
    assert values(out, "position", target=True) == [80]
    assert values(out, "state") == ["opening"]
    assert cover.next_tick(T0) == pytest.approx(0.1)
    cover.tick(T0 + 3.0)
    assert cover.get("cover", "position") == 30
    cover.tick(T0 + 5.0)
    assert cover.get("cover", "position") == 50 and cover.get("cover", "state") == "opening"
    out = cover.command("cover", "action", "stop", T0 + 5.0)
    assert values(out, "state") == ["stopped"]
    cover.tick(T0 + 20.0)
    assert cover.get("cover", "position") == 50  # stays where it stopped
    cover.command("cover", "action", "close", T0 + 20.0)
    out = cover.tick(T0 + 30.0)
    assert cover.get("cover", "position") == 0 and values(out, "state") == ["closed"]
    cover.command("cover", "action", "open", T0 + 30.0)
    cover.tick(T0 + 40.0)
    assert cover.get("cover", "state") == "open" and cover.saved() == {"cover/position": 100}
    assert cover.next_tick(T0 + 40.0) is None


def test_lock_moves_then_jams_and_refuses() -> None:
    lock = Lock({"travel": 1.0})
    lock.begin(T0)
    out = lock.command("lock", "locked", False, T0)
    assert values(out, "locked", target=True) == [False] and values(out, "state") == ["unlocking"]
    assert lock.get("lock", "locked") is True  # not yet
    out = lock.tick(T0 + 1.0)
    assert values(out, "locked") == [False] and values(out, "state") == ["unlocked"]
    out = lock.fault({"jam": True}, T0 + 2)
    assert values(out, "jammed") == [True] and values(out, "state") == ["jammed"]
    out = lock.command("lock", "locked", True, T0 + 3)
    assert values(out, "state") == ["jammed"] and values(out, "jammed") == [True]
    assert values(out, "locked") == [False] and values(out, "locked", target=True) == []
    lock.tick(T0 + 10)
    assert lock.get("lock", "locked") is False
    out = lock.fault({"jam": False}, T0 + 11)
    assert values(out, "state") == ["unlocked"] and values(out, "jammed") == [False]
    lock.command("lock", "locked", True, T0 + 12)
    lock.tick(T0 + 13)
    assert lock.get("lock", "locked") is True and lock.get("lock", "state") == "locked"


def test_plug_energy_grows_with_power() -> None:
    plug = Plug({"load_w": 1000.0, "noise": 0.0})
    plug.begin(T0)
    out = plug.command("switch", "on", True, T0)
    assert values(out, "power") == [1000.0]
    for i in range(1, 121):
        plug.tick(T0 + i * 30)  # one hour in 30 s steps
    assert plug.get("switch", "energy") == pytest.approx(1.0, abs=0.001)
    plug.command("switch", "on", False, T0 + 3600)
    assert plug.get("switch", "power") == 0.0
    plug.tick(T0 + 7200)
    assert plug.get("switch", "energy") == pytest.approx(1.0, abs=0.001)
    restored = Plug()
    restored.restore(plug.saved())
    assert restored.get("switch", "energy") == pytest.approx(1.0, abs=0.001)


def test_climate_sensor_stays_plausible_and_battery_drains() -> None:
    sensor = ClimateSensor({"temperature": 20.0, "humidity": 50.0, "battery_drain_per_day": 2.0},
                           random.Random(3))
    sensor.begin(T0)
    for i in range(1, 24 * 60):
        sensor.tick(T0 + i * 60)
        assert 15 < sensor.get("sensor", "temperature") < 25
        assert 0 <= sensor.get("sensor", "humidity") <= 100
    assert sensor.get("sensor", "battery") == 98


@pytest.mark.parametrize("cls,prop", [(MotionSensor, "motion"), (ContactSensor, "open")])
def test_random_binary_sensors_fire_and_clear(cls: type, prop: str) -> None:
    sensor = cls({"mean_interval": 60.0, "hold_min": 5.0, "hold_max": 10.0}, random.Random(7))
    sensor.begin(T0)
    seen = []
    now = T0
    for _ in range(500):
        now += sensor.next_tick(now) or 1.0
        seen += values(sensor.tick(now), prop)
    assert seen.count(True) > 10 and seen.count(False) > 10
    out = sensor.fault({"trigger": True}, now + 100)
    assert values(out, prop).count(True) >= 1 or sensor.get("sensor", prop) is True


def test_unknown_type_and_bad_params_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown device type"):
        build_model("toaster")
    with pytest.raises(ValueError):
        build_model("cover", {"speed": "fast"})


def test_player_model_and_content_range() -> None:
    player = PlayerModel()
    out = player.command("player", "command", "play", T0)
    assert out == [Update("player", "command", "play")]
    player.command("player", "volume", 70, T0)
    assert player.saved() == {"player/url": "", "player/volume": 70}
    assert parse_content_range("bytes 0-9/100") == (0, 9, 100)
    assert parse_content_range("bytes 5-9/*") == (5, 9, None)
    assert parse_content_range("items 0-1/2") is None


@pytest.mark.parametrize("kind", ["light", "plug", "thermostat", "cover", "lock", "motion-sensor",
                                  "contact-sensor", "climate-sensor"])
def test_random_command_sequences_only_publish_valid_values(kind: str) -> None:
    """Whatever a controller sends (valid values) and however time jumps, every update encodes."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    probe = build_model(kind)
    settable = [(n.id, p) for n in probe.nodes() for p in n.properties if p.settable]

    def value_for(prop):
        if prop.datatype == "boolean":
            return st.booleans()
        if prop.datatype == "enum":
            return st.sampled_from(prop.enum_values)
        if prop.datatype == "color":
            return st.tuples(*[st.integers(0, 255)] * 3)
        if prop.datatype == "integer":
            lo, hi = (int(x) for x in prop.format.split(":")[:2])
            return st.integers(lo, hi)
        return st.floats(5, 30).map(lambda v: round(v * 2) / 2)

    steps = st.lists(st.one_of(
        st.tuples(st.just("tick"), st.floats(0, 5000)),
        *[st.tuples(st.just((node, p)), value_for(p)) for node, p in settable],
        st.tuples(st.just("jam"), st.booleans()),
    ), max_size=25)

    @settings(max_examples=40, deadline=None)
    @given(steps)
    def run(seq) -> None:
        model = build_model(kind, rng=random.Random(0))
        props = {(n.id, p.id): p for n in model.nodes() for p in n.properties}
        now = T0
        out = model.begin(now) + model.snapshot()
        for what, arg in seq:
            if what == "tick":
                now += arg
                out += model.tick(now)
            elif what == "jam":
                out += model.fault({"jam": arg}, now)
            else:
                node, prop = what
                out += model.command(node, prop.id, prop.coerce(arg), now)
        for u in out:
            props[(u.node, u.prop)].encode(u.value)  # raises InvalidValue if out of declaration
        assert model.saved() == json.loads(json.dumps(model.saved()))  # persistable as JSON

    run()
