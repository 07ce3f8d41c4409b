"""The Tasmota driver on its own, with the driver test kit (injected messages, no broker)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import tasmota_codec as codec
from devices.tasmota import TasmotaDriver
from hub.driver import BrokerUnavailable, Claim, DeviceRejected, DeviceUnreachable
from hub.testing import RecordingContext, driver_context, mqtt_seen

MAC = "A4CF12B3C4D5"
ID = "tasmota-a4cf12b3c4d5"
FILTER = "tasmota/discovery/+/config"


def config(**over: Any) -> dict[str, Any]:
    """A discovery config as Tasmota 14 publishes it for a two-relay plug (SetOption19 0)."""
    doc = {
        "ip": "192.168.1.23", "dn": "Desk plug", "fn": ["Lamp", "Fan", None, None, None, None, None, None],
        "hn": "desk-plug-1234", "mac": MAC, "md": "Sonoff Dual R2", "ty": 0, "if": 0, "cam": 0,
        "ofln": "Offline", "onln": "Online", "state": ["OFF", "ON", "TOGGLE", "HOLD"], "sw": "14.3.0",
        "t": "desk", "ft": "%prefix%/%topic%/", "tp": ["cmnd", "stat", "tele"],
        "rl": [1, 1, 0, 0, 0, 0, 0, 0], "swc": [-1] * 8, "swn": [None] * 8, "btn": [0] * 8,
        "so": {"4": 0, "11": 0, "13": 0, "17": 0, "20": 0, "30": 0, "68": 0, "73": 0, "82": 0, "114": 0,
               "117": 0},
        "lk": 0, "lt_st": 0, "bat": 0, "dslp": 0, "sho": [], "sht": [], "ver": 1,
    }
    return doc | over


SENSORS = {"sn": {"Time": "2026-12-01T10:00:00", "ENERGY": {
    "TotalStartTime": "2026-01-01T00:00:00", "Total": 12.5, "Yesterday": 0.4, "Today": 0.2, "Power": 60,
    "ApparentPower": 63, "ReactivePower": 20, "Factor": 0.95, "Voltage": 230, "Current": 0.261}}, "ver": 1}


def seen(doc: dict[str, Any] | str, mac: str = MAC):
    return mqtt_seen(FILTER, f"tasmota/discovery/{mac}/config", doc if isinstance(doc, str) else json.dumps(doc))


@pytest.fixture
async def ctx():
    c = driver_context(TasmotaDriver)
    yield c
    await c.close()


async def adopt(ctx: RecordingContext, doc: dict[str, Any] | None = None, sensors: bool = True) -> TasmotaDriver:
    driver = TasmotaDriver(ctx)
    await driver.start()
    if sensors:
        ctx.mqtt.inject(f"tasmota/discovery/{MAC}/sensors", json.dumps(SENSORS))
    announcement = seen(doc or config())
    assert driver.identify(announcement) == Claim(ID, "tasmota:" + MAC)
    await driver.seen(ID, announcement)
    return driver


async def test_a_two_relay_plug_is_adopted_with_two_controls_and_its_meter(ctx: RecordingContext) -> None:
    await adopt(ctx)
    info = ctx.devices[ID]
    assert (info.name, info.model, info.manufacturer, info.address) == ("Desk plug", "Sonoff Dual R2", "Tasmota",
                                                                         "192.168.1.23")
    names = {e.name: e for e in info.exposes}
    assert names["power_1"].label == "Lamp" and names["power_2"].label == "Fan"
    assert {"energy_power", "energy_voltage", "energy_current", "energy_total", "energy_today"} <= set(names)
    assert names["energy_power"].unit == "W" and names["energy_total"].unit == "kWh"
    assert names["energy_factor"].category == "diagnostic"
    # the discovery `sn` is a reading too
    assert ctx.state[ID]["energy_power"] == 60 and ctx.state[ID]["energy_voltage"] == 230
    # asked for the state at once, not a TelePeriod later
    assert ("cmnd/desk/STATE", "") in ctx.mqtt.published and ("cmnd/desk/STATUS", "10") in ctx.mqtt.published


async def test_state_follows_result_power_state_and_sensor(ctx: RecordingContext) -> None:
    await adopt(ctx)
    ctx.mqtt.inject("tele/desk/LWT", "Online")
    assert ctx.online[ID] is True
    ctx.mqtt.inject("stat/desk/RESULT", '{"POWER2":"ON"}')
    ctx.mqtt.inject("stat/desk/POWER1", "ON", retained=False)
    assert ctx.state[ID]["power_1"] is True and ctx.state[ID]["power_2"] is True
    ctx.mqtt.inject("tele/desk/STATE", json.dumps({"Time": "x", "Uptime": "0T01:00:00", "POWER1": "OFF",
                                                   "POWER2": "OFF", "Wifi": {"RSSI": 80}}))
    assert ctx.state[ID]["power_1"] is False and ctx.state[ID]["power_2"] is False
    ctx.mqtt.inject("tele/desk/SENSOR", json.dumps({"Time": "x", "ENERGY": {"Power": 1200, "Voltage": 231,
                                                                           "Current": 5.2, "Total": 13.0}}))
    assert ctx.state[ID].items() >= {"energy_power": 1200, "energy_voltage": 231, "energy_current": 5.2}.items()
    ctx.mqtt.inject("stat/desk/STATUS10", json.dumps({"StatusSNS": {"ENERGY": {"Today": 0.9}}}))
    assert ctx.state[ID]["energy_today"] == 0.9
    ctx.mqtt.inject("tele/desk/LWT", "Offline")
    assert ctx.online[ID] is False
    assert ctx.errors == []


async def test_commands_go_to_cmnd_power_n(ctx: RecordingContext) -> None:
    driver = await adopt(ctx)
    await driver.send(ID, {"power_2": True})
    await driver.send(ID, {"power_1": False})
    assert ctx.mqtt.published[-2:] == [("cmnd/desk/POWER2", "ON"), ("cmnd/desk/POWER1", "OFF")]


async def test_custom_full_topic_and_state_words(ctx: RecordingContext) -> None:
    doc = config(ft="%topic%/%prefix%/", t="den", tp=["c", "s", "t"], state=["AUS", "AN", "UM", "HALT"])
    driver = await adopt(ctx, doc)
    assert ("den/c/STATE", "") in ctx.mqtt.published
    ctx.mqtt.inject("den/t/LWT", "Online")
    ctx.mqtt.inject("den/s/RESULT", '{"POWER1":"AN"}')
    assert ctx.online[ID] is True and ctx.state[ID]["power_1"] is True
    await driver.send(ID, {"power_2": False})
    assert ctx.mqtt.published[-1] == ("den/c/POWER2", "AUS")
    # the default layout's topics are somebody else's now
    ctx.mqtt.inject("stat/den/RESULT", '{"POWER1":"AUS"}')
    assert ctx.state[ID]["power_1"] is True


async def test_hostname_and_id_in_the_full_topic(ctx: RecordingContext) -> None:
    await adopt(ctx, config(ft="home/%hostname%/%id%/%prefix%/"))
    assert ("home/desk-plug-1234/B3C4D5/cmnd/STATE", "") in ctx.mqtt.published


async def test_a_dimmer_is_on_and_brightness(ctx: RecordingContext) -> None:
    doc = config(fn=["Hall", None, None, None, None, None, None, None], rl=[2, 0, 0, 0, 0, 0, 0, 0], lt_st=1)
    driver = await adopt(ctx, doc, sensors=False)
    names = {e.name for e in ctx.devices[ID].exposes}
    assert names == {"on", "brightness"}
    assert ("cmnd/desk/STATUS", "10") not in ctx.mqtt.published  # no sensors to ask about
    ctx.mqtt.inject("stat/desk/RESULT", '{"POWER":"ON","Dimmer":40,"Color":"66","Channel":[40]}')
    assert ctx.state[ID] == {"on": True, "brightness": 40}
    await driver.send(ID, {"on": False, "brightness": 70})
    # Dimmer first: it powers the light on, and the Power that follows has the last word
    assert ctx.mqtt.published[-2:] == [("cmnd/desk/Dimmer", "70"), ("cmnd/desk/POWER1", "OFF")]


async def test_a_lone_relay_is_power_next_to_the_meter(ctx: RecordingContext) -> None:
    await adopt(ctx, config(rl=[1, 0, 0, 0, 0, 0, 0, 0]))
    names = {e.name for e in ctx.devices[ID].exposes}
    assert {"power", "energy_power"} <= names and "power_1" not in names
    ctx.mqtt.inject("stat/desk/POWER", "ON")
    assert ctx.state[ID]["power"] is True


@pytest.mark.parametrize("payload", [
    "not json", "[1,2]", '{"POWER1": 5}', '{"POWER2": "MAYBE"}', '{"ENERGY": {"Power": "lots"}}',
    b"\xff\xfe", '{"POWER1": null}',
])
async def test_garbage_is_a_device_error_and_dropped(ctx: RecordingContext, payload: str | bytes) -> None:
    await adopt(ctx)
    before = dict(ctx.state.get(ID, {}))
    ctx.mqtt.inject("stat/desk/RESULT", payload)
    ctx.mqtt.inject("tele/desk/SENSOR", payload)
    assert ctx.state.get(ID, {}) == before
    assert ctx.errors and all(device == ID for device, _ in ctx.errors)


async def test_unknown_fields_are_ignored_and_known_ones_kept(ctx: RecordingContext) -> None:
    await adopt(ctx)
    ctx.mqtt.inject("stat/desk/RESULT", '{"POWER1":"ON","Warp":9,"Wifi":{"RSSI":"x"},"Command":"Unknown"}')
    ctx.mqtt.inject("tele/desk/INFO1", "whatever")
    ctx.mqtt.inject("tele/desk/LWT", "Sideways")
    assert ctx.state[ID]["power_1"] is True
    assert [m for _, m in ctx.errors] == [m for _, m in ctx.errors if "LWT" in m] and len(ctx.errors) == 1


@pytest.mark.parametrize("doc", [
    "not json", "[]", json.dumps(config(mac="000000000000")), json.dumps(config(ver=2)),
    json.dumps(config(ft="%topic%/")), json.dumps(config(t="a/+")), json.dumps(config(tp=["cmnd"])),
    json.dumps(config(rl="1,1")), json.dumps(config(state=[1, 2])), json.dumps(config(t=5)),
])
def test_junk_discovery_is_refused_with_a_reason(ctx: RecordingContext, doc: str) -> None:
    with pytest.raises(ValueError):
        TasmotaDriver(ctx).identify(seen(doc))


def test_not_ours_or_removal_is_none(ctx: RecordingContext) -> None:
    driver = TasmotaDriver(ctx)
    assert driver.identify(seen("")) is None
    assert driver.identify(mqtt_seen(FILTER, "tasmota/discovery/notamac/config", json.dumps(config()))) is None


async def test_an_empty_retained_config_removes_the_device(ctx: RecordingContext) -> None:
    driver = await adopt(ctx)
    ctx.mqtt.inject(f"tasmota/discovery/{MAC}/config", "")
    assert ctx.removed == [ID]
    ctx.mqtt.inject("stat/desk/RESULT", '{"POWER1":"ON"}')  # no longer listened to
    assert "power_1" not in ctx.state.get(ID, {})
    with pytest.raises(DeviceUnreachable):
        await driver.send(ID, {"power_1": True})
    # it comes back when it announces itself again
    await driver.seen(ID, seen(config()))
    assert ID in ctx.devices


async def test_a_new_config_moves_the_topics(ctx: RecordingContext) -> None:
    driver = await adopt(ctx)
    await driver.seen(ID, seen(config(t="study")))
    ctx.mqtt.inject("stat/desk/RESULT", '{"POWER1":"ON"}')
    assert "power_1" not in ctx.state.get(ID, {})
    ctx.mqtt.inject("stat/study/RESULT", '{"POWER1":"ON"}')
    assert ctx.state[ID]["power_1"] is True


async def test_online_again_asks_for_the_state(ctx: RecordingContext) -> None:
    from hub.clock import FakeClock
    clock = FakeClock()
    c = driver_context(TasmotaDriver, clock=clock)
    try:
        await adopt(c)
        c.mqtt.inject("tele/desk/LWT", "Online")
        asked = c.mqtt.published.count(("cmnd/desk/STATE", ""))
        assert asked == 1  # adoption and the retained Online together: asked once
        c.mqtt.inject("tele/desk/LWT", "Offline")
        clock.t += 60
        c.mqtt.inject("tele/desk/LWT", "Online")  # rebooted: its state may have changed
        await c.wait_for(lambda: c.mqtt.published.count(("cmnd/desk/STATE", "")) == 2, timeout=5)
    finally:
        await c.close()


async def test_refusals_and_broker_down(ctx: RecordingContext) -> None:
    driver = await adopt(ctx)
    with pytest.raises(DeviceRejected):
        await driver.send(ID, {"brightness": 40})  # a plug has no dimmer
    with pytest.raises(DeviceUnreachable):
        await driver.send("tasmota-000000000000", {"power_1": True})

    async def down(*args: Any, **kwargs: Any) -> None:
        raise BrokerUnavailable("broker down")
    ctx.mqtt.publish = down  # type: ignore[method-assign]
    with pytest.raises(BrokerUnavailable):
        await driver.send(ID, {"power_1": True})


async def test_sensors_announced_later_extend_the_exposes(ctx: RecordingContext) -> None:
    driver = await adopt(ctx, sensors=False)
    assert not any(e.name.startswith("energy_") for e in ctx.devices[ID].exposes)
    ctx.mqtt.inject(f"tasmota/discovery/{MAC}/sensors", json.dumps(SENSORS))
    assert any(e.name == "energy_power" for e in ctx.devices[ID].exposes)
    ctx.mqtt.inject(f"tasmota/discovery/{MAC}/sensors", "garbage")
    assert ctx.errors[-1][0] == ID
    await driver.stop()
    assert ctx.mqtt.handlers == []  # stop() undid every subscription


def test_expose_names() -> None:
    assert codec.expose_name("ENERGY", "ApparentPower") == "energy_apparent_power"
    assert codec.expose_name("AM2301", "Temperature") == "am2301_temperature"
    assert codec.expose_name("DS18B20-1", "Temperature") == "ds18b20_1_temperature"


def test_other_sensors_keep_their_units() -> None:
    cfg = codec.parse_config(json.dumps(config()).encode(), MAC)
    w = codec.wiring(cfg, {"AM2301": {"Temperature": 21.5, "Humidity": 40, "DewPoint": 7.3},
                           "TempUnit": "F", "ENERGY": {"Power": [1, 2]}, "ANALOG": {"A0": "text"}})
    units = {e.name: e.unit for e in w.exposes if e.name.startswith("am2301")}
    assert units == {"am2301_temperature": "°F", "am2301_humidity": "%", "am2301_dew_point": "°C"}
    assert not any(e.name.startswith(("energy", "analog")) for e in w.exposes)


async def test_two_devices_on_one_topic_do_not_double_the_messages(ctx: RecordingContext) -> None:
    driver = await adopt(ctx)
    other = "A4CF12B3C4D6"
    await driver.seen("tasmota-a4cf12b3c4d6", seen(config(mac=other), mac=other))
    assert [f for f, _ in ctx.mqtt.handlers].count("stat/desk/+") == 1
    ctx.mqtt.inject("stat/desk/RESULT", '{"POWER1":"ON"}')
    assert "power_1" not in ctx.state.get(ID, {}) and ctx.state["tasmota-a4cf12b3c4d6"]["power_1"] is True
    await driver.stop()
    assert ctx.mqtt.handlers == []


# -- the pure codec never fails other than with ValueError ------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                max_size=4), max_leaves=20)
CFG = codec.parse_config(json.dumps(config(rl=[1, 2, 0])).encode(), MAC)
WIRING = codec.wiring(CFG, SENSORS["sn"])


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["RESULT", "POWER", "POWER2", "STATE", "SENSOR", "LWT", "STATUS10", "X"]),
       prefix=st.sampled_from(["stat/desk/", "tele/desk/"]),
       body=st.one_of(st.binary(max_size=64), JSON.map(lambda v: json.dumps(v).encode()),
                      st.dictionaries(st.sampled_from(["POWER", "POWER1", "POWER2", "Dimmer", "ENERGY",
                                                       "StatusSNS"]), JSON, max_size=4)
                      .map(lambda v: json.dumps(v).encode())))
def test_any_message_reads_or_is_refused(name: str, prefix: str, body: bytes) -> None:
    try:
        reading = codec.read(CFG, prefix + name, body)
    except ValueError:
        return
    if reading.values:
        values, _problems = WIRING.decode(reading.values)
        for key, value in values.items():
            WIRING.wire(key).expose.validate(value)


@settings(max_examples=300, deadline=None)
@given(over=st.dictionaries(st.sampled_from(["ft", "t", "tp", "rl", "fn", "state", "dn", "lt_st", "onln", "mac"]),
                            JSON, max_size=4))
def test_any_config_parses_or_is_refused(over: dict[str, Any]) -> None:
    try:
        cfg = codec.parse_config(json.dumps(config(**over)).encode(), MAC)
    except ValueError:
        return
    codec.wiring(cfg, None)
    assert cfg.cmnd.endswith("/") and "+" not in cfg.stat and "#" not in cfg.tele


def test_deep_nesting_is_refused_not_a_crash() -> None:
    with pytest.raises(ValueError):
        codec.read(CFG, "stat/desk/RESULT", b"[" * 30000 + b"]" * 30000)
