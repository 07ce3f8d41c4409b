"""Home Assistant discovery from exposes: the pure mapping, with its templates rendered as HA would."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment

from devices.homie_mapping import Property, to_expose
from devices.pjlink import PJLinkDriver, _Projector
from devices.pjlink_player import _expose as player_expose
from hub.ha.discovery import Origin, config_topic, device_config
from hub.model import Access, Action, Binary, Color, DeviceInfo, Enum, Expose, Numeric, Text, validate_command
from hub.topics import Topics

ORIGIN = Origin("hub", "1.2.3")
# HA's template environment is a Jinja sandbox with its own filters; to_json is the one we use
_ENV = ImmutableSandboxedEnvironment()
_ENV.filters["to_json"] = json.dumps


def render(template: str, **variables: Any) -> str:
    return _ENV.from_string(template).render(**variables)


def read(template: str, state: dict[str, Any] | None) -> str:
    """What HA makes of the hub's retained state (None: the empty payload that clears it)."""
    return render(template, **({} if state is None else {"value_json": state}))


def homie(node: str, prop: str, datatype: str, fmt: str = "", settable: bool = False, unit: str = "",
          retained: bool = True) -> Expose:
    """Exposes exactly as the Homie driver makes them from the simulated house's descriptions."""
    return to_expose(Property(node, prop, prop.replace("-", "_"), datatype, fmt, settable, retained, unit))


LIGHT = DeviceInfo("living-room-ceiling", "Ceiling", "homie", (
    homie("light", "on", "boolean", settable=True),
    homie("light", "brightness", "integer", "0:100", True, "%"),
    homie("light", "color-temperature", "integer", "153:500", True, "mired"),
    homie("light", "color", "color", "rgb", True),
), model="light", manufacturer="Homie 5")
PLUG = DeviceInfo("kettle", "Kettle plug", "homie", (
    homie("switch", "on", "boolean", settable=True),
    homie("switch", "power", "float", "0:", unit="W"),
    homie("switch", "energy", "float", "0:", unit="kWh"),
), model="plug")
THERMOSTAT = DeviceInfo("thermostat", "Thermostat", "homie", (
    homie("thermostat", "target-temperature", "float", "5:30:0.5", True, "°C"),
    homie("thermostat", "mode", "enum", "off,heat,auto", True),
    homie("thermostat", "current-temperature", "float", unit="°C"),
    homie("thermostat", "heating", "boolean"),
), model="thermostat")
CLIMATE_SENSOR = DeviceInfo("bedroom-climate", "Bedroom climate", "homie", (
    homie("sensor", "temperature", "float", unit="°C"),
    homie("sensor", "humidity", "float", "0:100", unit="%"),
    homie("sensor", "battery", "integer", "0:100", unit="%"),
))
MOTION = DeviceInfo("motion", "Motion", "homie", (homie("sensor", "motion", "boolean"),))
CONTACT = DeviceInfo("door", "Door", "homie", (homie("sensor", "open", "boolean"),))
BLIND = DeviceInfo("blind", "Blind", "homie", (
    homie("cover", "position", "integer", "0:100", True, "%"),
    homie("cover", "state", "enum", "opening,closing,stopped,open,closed"),
    homie("cover", "action", "enum", "open,close,stop", True, retained=False),
))
LOCK = DeviceInfo("lock", "Lock", "homie", (
    homie("lock", "locked", "boolean", settable=True),
    homie("lock", "state", "enum", "locked,unlocked,locking,unlocking,jammed"),
    homie("lock", "jammed", "boolean"),
))


def projector() -> DeviceInfo:
    """The PJLink driver's own exposes for a Class 2 projector, plus its media player's."""
    p = _Projector(id="projector-0026ab000001", mac="0026ab000001", host="127.0.0.1", pj_class=2,
                   inputs={"HDMI1": "31", "HDMI2": "32", "LAN": "51"})
    exposes = PJLinkDriver(ctx=None)._exposes(p) + tuple(player_expose(p) for p in (
        Property("player", "url", "url", "string", settable=True),
        Property("player", "state", "state", "enum", "playing,paused,stopped"),
        Property("player", "command", "command", "enum", "play,pause,stop", True, retained=False),
        Property("player", "volume", "volume", "integer", "0:100", True, unit="%"),
    ))
    return DeviceInfo(p.id, "Pico projector", "pjlink", exposes, model="PJ-1", manufacturer="Acme")


def config(info: DeviceInfo, room: str = "Living room", name: str | None = None) -> dict[str, Any]:
    return device_config(info, name=name or info.name, room=room, topics=Topics(), origin=ORIGIN)


def platforms(info: DeviceInfo) -> dict[str, str]:
    return {k: c["p"] for k, c in config(info)["cmps"].items()}


def test_the_topic_and_the_device_block() -> None:
    assert config_topic("homeassistant", "kettle") == "homeassistant/device/kettle/config"
    assert config_topic("ha/test", "kettle") == "ha/test/device/kettle/config"
    c = config(PLUG, room="Kitchen", name="Kettle")
    assert c["dev"] == {"identifiers": ["hub_kettle"], "name": "Kettle", "model": "plug", "suggested_area": "Kitchen"}
    assert c["o"] == {"name": "hub", "sw": "1.2.3"}
    assert c["availability"] == [{"topic": "hub/bridge/state"}, {"topic": "hub/kettle/availability"}]
    assert c["availability_mode"] == "all"
    assert "suggested_area" not in config(PLUG, room="")["dev"]
    assert all(cmp["unique_id"].startswith("hub_kettle_") for cmp in c["cmps"].values())
    other_base = device_config(PLUG, name="K", room="", topics=Topics("home/hub"), origin=ORIGIN)
    assert other_base["dev"]["identifiers"] == ["home_hub_kettle"]
    assert other_base["cmps"]["on"]["command_topic"] == "home/hub/kettle/set"


def test_a_colour_light_is_one_template_light_in_kelvin() -> None:
    assert platforms(LIGHT) == {"light": "light"}
    light = config(LIGHT)["cmps"]["light"]
    assert light["schema"] == "template" and light["name"] is None and light["optimistic"] is False
    assert (light["state_topic"], light["command_topic"]) == ("hub/living-room-ceiling", "hub/living-room-ceiling/set")
    assert light["color_temp_kelvin"] is True and (light["min_kelvin"], light["max_kelvin"]) == (2000, 6536)

    on = light["command_on_template"]
    assert json.loads(render(on, state=True)) == {"on": True}
    assert json.loads(render(on, state=True, brightness=102)) == {"on": True, "brightness": 40}
    assert json.loads(render(on, state=True, brightness=255)) == {"on": True, "brightness": 100}
    assert json.loads(render(on, state=True, color_temp=2700)) == {"on": True, "color_temperature": 370}
    assert json.loads(render(on, state=True, color_temp=10000)) == {"on": True, "color_temperature": 153}  # clamped
    assert json.loads(render(on, state=True, red=255, green=136, blue=0)) == {"on": True, "color": "#ff8800"}
    assert json.loads(light["command_off_template"]) == {"on": False}

    state = {"on": True, "brightness": 40, "color_temperature": 370, "color": "#ff8800"}
    assert read(light["state_template"], state) == "on"
    assert read(light["state_template"], {**state, "on": False}) == "off"
    assert read(light["brightness_template"], state) == "102"
    assert read(light["color_temp_template"], state) == "2703"
    assert [read(light[f"{c}_template"], state) for c in ("red", "green", "blue")] == ["255", "136", "0"]
    for key in ("state_template", "brightness_template", "color_temp_template", "red_template"):
        assert read(light[key], {}) == "None"  # not reported yet: HA shows unknown
        assert read(light[key], None) == "None"  # cleared retained state: no template error


def test_brightness_lands_on_the_device_range_and_steps() -> None:
    info = DeviceInfo("dimmer", "Dimmer", "homie", (
        Binary(name="on", access=Access.STATE | Access.SET),
        Numeric(name="brightness", access=Access.STATE | Access.SET, min=-3, max=10, step=0.5)))
    light = config(info)["cmps"]["light"]
    sent = [json.loads(render(light["command_on_template"], brightness=b))["brightness"] for b in (1, 100, 255)]
    assert sent == [-3, 2, 10]
    assert read(light["brightness_template"], {"brightness": 10}) == "255"


def test_a_plain_switch_on_a_light_model_is_still_a_light() -> None:
    info = DeviceInfo("bulb", "Bulb", "homie", (homie("light", "on", "boolean", settable=True),), model="light")
    assert platforms(info) == {"light": "light"}
    assert "brightness_template" not in config(info)["cmps"]["light"]


def test_a_plug_is_a_switch_with_power_and_energy_sensors() -> None:
    c = config(PLUG)["cmps"]
    assert platforms(PLUG) == {"on": "switch", "power": "sensor", "energy": "sensor"}
    assert json.loads(c["on"]["payload_on"]) == {"on": True} and json.loads(c["on"]["payload_off"]) == {"on": False}
    assert read(c["on"]["value_template"], {"on": True, "power": 3.0}) == "ON"
    assert read(c["on"]["value_template"], {"on": False}) == "OFF"
    assert read(c["power"]["value_template"], {"on": True, "power": 2000.5}) == "2000.5"
    assert {k: c["power"][k] for k in ("device_class", "unit_of_measurement", "state_class")} == {
        "device_class": "power", "unit_of_measurement": "W", "state_class": "measurement"}
    assert {k: c["energy"][k] for k in ("device_class", "unit_of_measurement", "state_class")} == {
        "device_class": "energy", "unit_of_measurement": "kWh", "state_class": "total_increasing"}


def test_a_thermostat_is_one_climate_entity() -> None:
    assert platforms(THERMOSTAT) == {"climate": "climate"}
    c = config(THERMOSTAT)["cmps"]["climate"]
    assert c["modes"] == ["off", "heat", "auto"]
    assert (c["min_temp"], c["max_temp"], c["temp_step"], c["precision"], c["temperature_unit"]) == (5, 30, 0.5, 0.5, "C")
    assert json.loads(render(c["temperature_command_template"], value=21.5)) == {"target_temperature": 21.5}
    assert json.loads(render(c["mode_command_template"], value="heat")) == {"mode": "heat"}
    state = {"target_temperature": 21.5, "mode": "heat", "current_temperature": 19.25, "heating": True}
    assert read(c["temperature_state_template"], state) == "21.5"
    assert read(c["mode_state_template"], state) == "heat"
    assert read(c["current_temperature_template"], state) == "19.25"
    assert read(c["action_template"], state) == "heating"
    assert read(c["action_template"], {**state, "heating": False}) == "idle"
    assert read(c["action_template"], {**state, "mode": "off", "heating": False}) == "off"


def test_a_mode_ha_does_not_know_keeps_the_thermostat_and_becomes_a_select() -> None:
    info = DeviceInfo("trv", "TRV", "homie", (
        homie("t", "target-temperature", "float", "5:30:0.5", True, "°C"),
        homie("t", "mode", "enum", "off,heat,eco", True)))
    assert platforms(info) == {"climate": "climate", "mode": "select"}
    climate = config(info)["cmps"]["climate"]
    assert climate["modes"] == ["heat"] and read(climate["mode_state_template"], {}) == "heat"
    assert "mode_command_topic" not in climate


def test_sensors_get_their_device_class_unit_and_state_class() -> None:
    c = config(CLIMATE_SENSOR)["cmps"]
    got = {k: (v["p"], v.get("device_class"), v.get("unit_of_measurement"), v["state_class"]) for k, v in c.items()}
    assert got == {
        "temperature": ("sensor", "temperature", "°C", "measurement"),
        "humidity": ("sensor", "humidity", "%", "measurement"),
        "battery": ("sensor", "battery", "%", "measurement"),
    }


def test_read_only_binaries_are_binary_sensors_with_a_class() -> None:
    motion = config(MOTION)["cmps"]["motion"]
    assert (motion["p"], motion["device_class"]) == ("binary_sensor", "motion")
    assert read(motion["value_template"], {"motion": True}) == "ON"
    assert config(CONTACT)["cmps"]["open"]["device_class"] == "opening"
    plain = DeviceInfo("x", "X", "homie", (Binary(name="flag"),))
    assert "device_class" not in config(plain)["cmps"]["flag"]


def test_a_blind_is_a_cover_with_position_state_and_stop() -> None:
    assert platforms(BLIND) == {"cover": "cover"}
    c = config(BLIND)["cmps"]["cover"]
    assert (c["position_topic"], c["set_position_topic"]) == ("hub/blind", "hub/blind/set")
    assert (c["position_open"], c["position_closed"]) == (100, 0)
    assert json.loads(render(c["set_position_template"], value=30, position=30)) == {"position": 30}
    assert read(c["position_template"], {"position": 30}) == "30"
    assert read(c["value_template"], {"state": "opening"}) == "opening"
    assert [json.loads(c[k]) for k in ("payload_open", "payload_close", "payload_stop")] == [
        {"action": "open"}, {"action": "close"}, {"action": "stop"}]


def test_a_position_only_cover_has_no_command_topic() -> None:
    info = DeviceInfo("shade", "Shade", "homie", (homie("c", "position", "integer", "0:100", True, "%"),))
    c = config(info)["cmps"]["cover"]
    assert c["command_topic"] is None and "value_template" not in c


def test_a_lock_is_a_lock_and_jammed_a_problem() -> None:
    assert platforms(LOCK) == {"lock": "lock", "jammed": "binary_sensor"}
    c = config(LOCK)["cmps"]
    assert json.loads(c["lock"]["payload_lock"]) == {"locked": True}
    assert read(c["lock"]["value_template"], {"state": "unlocking"}) == "UNLOCKING"
    assert c["jammed"]["device_class"] == "problem"


def test_the_projector_power_switch_input_select_volume_number_lamp_sensor() -> None:
    info = projector()
    c = config(info)["cmps"]
    assert c["power"]["p"] == "switch"
    assert c["input"]["p"] == "select" and c["input"]["options"] == ["HDMI1", "HDMI2", "LAN"]
    assert json.loads(render(c["input"]["command_template"], value="HDMI2")) == {"input": "HDMI2"}
    assert c["media_volume"]["p"] == "number"
    assert (c["media_volume"]["min"], c["media_volume"]["max"], c["media_volume"]["step"]) == (0, 100, 1)
    assert json.loads(render(c["media_volume"]["command_template"], value=40)) == {"media_volume": 40}
    lamp = c["lamp_hours"]
    assert (lamp["p"], lamp["device_class"], lamp["unit_of_measurement"], lamp["state_class"]) == (
        "sensor", "duration", "h", "total_increasing")
    assert lamp["entity_category"] == "diagnostic"
    assert c["error_lamp"]["device_class"] == "enum" and c["error_lamp"]["entity_category"] == "diagnostic"
    assert {k for k, v in c.items() if v["p"] == "button"} == {
        "volume_up", "volume_down", "media_command_play", "media_command_pause", "media_command_stop"}
    assert json.loads(c["volume_up"]["payload_press"]) == {"volume": "up"}
    assert c["power_state"]["p"] == "sensor" and c["power_state"]["options"] == ["off", "warming", "on", "cooling"]
    assert c["media_url"]["p"] == "text"
    assert not any(v["p"] == "media_player" for v in c.values())  # HA has no MQTT media player


def test_other_exposes() -> None:
    info = DeviceInfo("misc", "Misc", "homie", (
        Numeric(name="offset", access=Access.STATE | Access.SET, step=0.5, unit="°C"),
        Text(name="label", access=Access.STATE | Access.SET, max_length=1024),
        Text(name="firmware"),
        Color(name="led"),
        Numeric(name="rssi", unit="dBm"),
    ))
    c = config(info)["cmps"]
    assert c["offset"]["p"] == "number" and c["offset"]["mode"] == "box" and c["offset"]["step"] == 0.5
    assert (c["label"]["p"], c["label"]["max"]) == ("text", 255)
    assert json.loads(render(c["label"]["command_template"], value='say "hi"')) == {"label": 'say "hi"'}
    assert c["firmware"]["p"] == c["led"]["p"] == "sensor"
    assert c["rssi"] == {**c["rssi"], "unit_of_measurement": "dBm", "state_class": "measurement"}
    assert "device_class" not in c["rssi"]


def test_entity_categories_follow_the_exposes_as_ha_allows_them() -> None:
    info = DeviceInfo("cfg", "Cfg", "homie", (
        Numeric(name="calibration", access=Access.STATE | Access.SET, min=-5, max=5, category="config"),
        Numeric(name="uptime", unit="s", category="config"),  # read-only: HA allows no "config" there
        Binary(name="overheated", category="diagnostic"),
        Binary(name="child_lock", access=Access.STATE | Access.SET)))
    c = config(info)["cmps"]
    assert {k: v.get("entity_category") for k, v in c.items()} == {
        "calibration": "config", "uptime": "diagnostic", "overheated": "diagnostic", "child_lock": None}


# -- what holds for every device ---------------------------------------------------------------

SAMPLES = {"brightness": [0, 1, 128, 255], "color_temp": [1500, 2000, 4000, 6536, 9000],
           }


def commands(info: DeviceInfo, cmp: dict[str, Any]) -> list[dict[str, Any]]:
    """Every command HA can send for one component, with representative values."""
    out = [json.loads(cmp[k]) for k in ("payload_on", "payload_off", "payload_press", "payload_lock",
                                         "payload_unlock", "payload_open", "payload_close", "payload_stop",
                                         "command_off_template") if cmp.get(k)]
    if "command_on_template" in cmp:
        t = cmp["command_on_template"]
        out += [json.loads(render(t, state=True, brightness=b)) for b in SAMPLES["brightness"]]
        out += [json.loads(render(t, state=True, color_temp=k)) for k in SAMPLES["color_temp"]]
        out.append(json.loads(render(t, state=True, red=1, green=2, blue=255)))
    if "set_position_template" in cmp:
        lo, hi = cmp["position_closed"], cmp["position_open"]  # HA renders `value` in this range, rounded
        out += [json.loads(render(cmp["set_position_template"], value=round(v), position=50))
                for v in (lo, hi, (lo + hi) / 2)]
    for key, values in (("mode_command_template", cmp.get("modes", [])), ("command_template", cmp.get("options", []))):
        if key in cmp:
            out += [json.loads(render(cmp[key], value=v)) for v in values]
    if cmp["p"] == "number":
        out += [json.loads(render(cmp["command_template"], value=v)) for v in (cmp["min"], cmp["max"])]
    if cmp["p"] == "climate":
        t = cmp["temperature_command_template"]
        out += [json.loads(render(t, value=v)) for v in (cmp.get("min_temp", 7), cmp.get("max_temp", 35))]
    return out


DEMO = [LIGHT, PLUG, THERMOSTAT, CLIMATE_SENSOR, MOTION, CONTACT, BLIND, LOCK, projector()]


@pytest.mark.parametrize("info", DEMO, ids=lambda i: i.id)
def test_every_command_ha_can_send_is_a_valid_hub_command(info: DeviceInfo) -> None:
    for cmp in config(info)["cmps"].values():
        for command in commands(info, cmp):
            validate_command(info.exposes, command)  # raises InvalidCommand naming the field


names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
access = st.sampled_from([Access.STATE, Access.STATE | Access.SET])
bounds = st.one_of(st.none(), st.integers(-50, 50))


@st.composite
def exposes(draw: st.DrawFn) -> Expose:
    name = draw(st.one_of(names, st.sampled_from(
        ["on", "brightness", "color_temperature", "color", "position", "state", "action", "target_temperature",
         "mode", "current_temperature", "heating", "locked", "temperature", "humidity", "power", "energy"])))
    kind = draw(st.sampled_from(["binary", "numeric", "enum", "action", "text", "color"]))
    acc = draw(access)
    if kind == "binary":
        return Binary(name=name, access=acc)
    if kind == "numeric":
        lo = draw(bounds)
        hi = None if lo is None else lo + draw(st.integers(1, 600))
        return Numeric(name=name, access=acc, min=lo, max=hi, step=draw(st.sampled_from([None, 1, 0.5])),
                       unit=draw(st.sampled_from(["", "%", "°C", "W", "kWh", "mired", "K", "h"])),
                       category=draw(st.sampled_from([None, "config", "diagnostic"])))
    values = tuple(draw(st.lists(st.sampled_from(
        ["open", "close", "stop", "off", "heat", "auto", "on", "x y", "é"]), min_size=1, max_size=4, unique=True)))
    if kind == "enum":
        return Enum(name=name, access=acc, values=values)
    if kind == "action":
        return Action(name=name, values=values)
    if kind == "text":
        return Text(name=name, access=acc)
    return Color(name=name, access=acc)


@settings(max_examples=300, deadline=None)
@given(st.lists(exposes(), max_size=10, unique_by=lambda e: e.name), st.sampled_from(["", "light", "plug"]))
def test_any_declaration_gives_a_payload_ha_accepts(ex: list[Expose], model: str) -> None:
    info = DeviceInfo("dev-1", "Device", "homie", tuple(ex), model=model)
    c = config(info)
    json.dumps(c)  # serialisable
    cmps = c["cmps"]
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]+", k) for k in cmps)
    uids = [v["unique_id"] for v in cmps.values()]
    assert len(uids) == len(set(uids))
    assert {v["p"] for v in cmps.values()} <= {
        "light", "cover", "climate", "lock", "switch", "binary_sensor", "sensor", "number", "select", "button", "text"}
    for cmp in cmps.values():
        if cmp["p"] in ("sensor", "binary_sensor"):
            assert cmp.get("entity_category") != "config"
        for key, value in cmp.items():
            if key.endswith("_topic") and value is not None:
                assert value in ("hub/dev-1", "hub/dev-1/set"), (key, value)
        for command in commands(info, cmp):
            validate_command(info.exposes, command)
        for key, value in cmp.items():
            if key.endswith("_template") and "value_json" in value:
                read(value, {})  # renders (to "None") before the device reported anything
                read(value, None)
    if ex:
        assert cmps, "every declared expose shows up in HA somehow"


# HA turns a rendered state into on/off (or locked/unlocked) only when it equals one of these
# options; otherwise the entity shows "unknown". Defaults as HA's MQTT platforms define them.
_HA_STATES: dict[str, tuple[tuple[str, str], ...]] = {
    "switch": (("state_on", "payload_on"), ("state_off", "payload_off")),
    "binary_sensor": (("payload_on", "ON"), ("payload_off", "OFF")),
    "lock": (("state_locked", "LOCKED"), ("state_unlocked", "UNLOCKED")),
}


def _ha_state_options(cmp: dict[str, Any]) -> set[str]:
    out = set()
    for key, default in _HA_STATES[cmp["p"]]:
        value = cmp.get(key)
        if value is None:  # the default: a literal, or another option's value (switch: the payload)
            value = cmp.get(default, default)
        out.add(value)
    return out


@pytest.mark.parametrize("info", [PLUG, LIGHT, MOTION, CONTACT, LOCK, projector()], ids=lambda i: i.id)
def test_every_on_off_entity_resolves_to_a_state_ha_knows(info: DeviceInfo) -> None:
    """A plug once stayed "unknown" in HA: its template said ON, HA compared with the JSON payload_on."""
    for key, cmp in config(info)["cmps"].items():
        if cmp["p"] not in _HA_STATES:
            continue
        for value in (True, False):
            state = {e.name: value for e in info.exposes} | {"state": "locked" if value else "unlocked"}
            assert read(cmp["value_template"], state) in _ha_state_options(cmp), (key, value)
