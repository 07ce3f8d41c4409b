"""The Homie 5 driver on its own, with the driver test kit (injected messages, no broker)."""

from __future__ import annotations

import json

import pytest

from devices.homie import HomieDriver
from hub.driver import Claim
from hub.testing import RecordingContext, discovered, driver_context, mqtt_seen
from tests.homie_peer import LIGHT

SEEN = discovered("_homie._tcp.local.", "Desk", {"txtvers": "1", "id": "desk", "topic": "homie/5/desk",
                                                 "room": "Office"})


@pytest.fixture
async def ctx():
    c = driver_context(HomieDriver)
    yield c
    await c.close()


def state_seen(device_id: str, payload: str = "ready"):
    return mqtt_seen("homie/5/+/$state", f"homie/5/{device_id}/$state", payload)


async def test_a_device_on_the_broker_alone_is_reported_once_claimed_and_described(ctx: RecordingContext) -> None:
    driver = HomieDriver(ctx)
    await driver.start()
    # retained messages arrive in any order; nothing is reported before the hub gives the device to us
    ctx.mqtt.inject("homie/5/desk/light/brightness", "40")
    ctx.mqtt.inject("homie/5/desk/$state", "ready")
    assert ctx.devices == {}
    claim = driver.identify(state_seen("desk"))
    assert claim == Claim("desk", "homie:desk")
    await driver.seen("desk", state_seen("desk"))
    assert ctx.devices == {}  # nor before it described itself
    ctx.mqtt.inject("homie/5/desk/$description", json.dumps(LIGHT))
    info = ctx.devices["desk"]
    assert (info.name, info.room, info.driver) == ("Test lamp", "", "homie")
    assert ctx.state["desk"] == {"brightness": 40} and ctx.online["desk"] is True
    for state in ("sleeping", "disconnected", "lost"):
        ctx.mqtt.inject("homie/5/desk/$state", state)
        assert ctx.online["desk"] is False
        ctx.mqtt.inject("homie/5/desk/$state", "ready")
        assert ctx.online["desk"] is True


async def test_mdns_adds_room_and_address_and_names_the_same_thing(ctx: RecordingContext) -> None:
    driver = HomieDriver(ctx)
    await driver.start()
    assert driver.identify(SEEN) == driver.identify(state_seen("desk"))  # one device, two ways to find it
    ctx.mqtt.inject("homie/5/desk/$description", json.dumps(LIGHT))
    ctx.mqtt.inject("homie/5/desk/$state", "ready")
    await driver.seen("desk", SEEN)
    assert (ctx.devices["desk"].room, ctx.devices["desk"].address) == ("Office", "127.0.0.1")


async def test_an_empty_retained_state_removes_the_device(ctx: RecordingContext) -> None:
    driver = HomieDriver(ctx)
    await driver.start()
    ctx.mqtt.inject("homie/5/desk/$description", json.dumps(LIGHT))
    ctx.mqtt.inject("homie/5/desk/$state", "ready")
    await driver.seen("desk", state_seen("desk"))
    assert "desk" in ctx.devices
    assert driver.identify(state_seen("desk", "")) is None  # a removal is not a claim
    ctx.mqtt.inject("homie/5/desk/$state", "")
    ctx.mqtt.inject("homie/5/desk/$description", "")
    assert ctx.removed == ["desk"] and "desk" not in ctx.devices


async def test_a_new_description_version_changes_the_exposes(ctx: RecordingContext) -> None:
    driver = HomieDriver(ctx)
    await driver.start()
    ctx.mqtt.inject("homie/5/desk/$description", json.dumps(LIGHT))
    ctx.mqtt.inject("homie/5/desk/light/power", "12.5")
    ctx.mqtt.inject("homie/5/desk/$state", "ready")
    await driver.seen("desk", state_seen("desk"))
    assert ctx.devices["desk"].expose("power") is not None
    v2 = {**LIGHT, "version": 2, "nodes": {"light": {"properties": {
        k: v for k, v in LIGHT["nodes"]["light"]["properties"].items() if k != "power"}}}}
    ctx.mqtt.inject("homie/5/desk/$state", "init")
    ctx.mqtt.inject("homie/5/desk/$description", json.dumps(v2))
    ctx.mqtt.inject("homie/5/desk/$state", "ready")
    assert ctx.devices["desk"].expose("power") is None and ctx.devices["desk"].expose("on") is not None
    ctx.mqtt.inject("homie/5/desk/light/power", "13")  # a value the new description no longer has
    assert ctx.state["desk"]["power"] == 12.5 and not ctx.errors


async def test_a_two_channel_relay_keeps_two_controls(ctx: RecordingContext) -> None:
    relay = {"homie": "5.0", "version": 1, "name": "Relay", "nodes": {
        "relay1": {"properties": {"on": {"datatype": "boolean", "settable": True}}},
        "relay2": {"properties": {"on": {"datatype": "boolean", "settable": True}}},
        "meter": {"properties": {"power": {"datatype": "float", "unit": "W"}}}}}
    driver = HomieDriver(ctx)
    await driver.start()
    ctx.mqtt.inject("homie/5/relay/$description", json.dumps(relay))
    ctx.mqtt.inject("homie/5/relay/relay1/on", "true")
    ctx.mqtt.inject("homie/5/relay/relay2/on", "false")
    ctx.mqtt.inject("homie/5/relay/$state", "ready")
    await driver.seen("relay", state_seen("relay"))
    names = [e.name for e in ctx.devices["relay"].exposes]
    assert names == ["relay1_on", "relay2_on", "power"]  # node-qualified only where names collide
    assert ctx.state["relay"] == {"relay1_on": True, "relay2_on": False}
    await driver.send("relay", {"relay2_on": True})
    assert ctx.mqtt.published == [("homie/5/relay/relay2/on/set", "true")]


async def test_devices_of_one_description_share_its_wiring_but_not_their_state(ctx: RecordingContext) -> None:
    driver = HomieDriver(ctx)
    await driver.start()
    for device_id, name in (("plug-1", "Kitchen plug"), ("plug-2", "Hall plug")):
        ctx.mqtt.inject(f"homie/5/{device_id}/$description", json.dumps({**LIGHT, "name": name}))
        ctx.mqtt.inject(f"homie/5/{device_id}/$state", "ready")
        await driver.seen(device_id, state_seen(device_id))
    one, two = driver._devices["plug-1"], driver._devices["plug-2"]
    assert one.wiring is two.wiring  # one table of converters for a thousand identical plugs
    assert ctx.devices["plug-1"].exposes is ctx.devices["plug-2"].exposes
    assert (ctx.devices["plug-1"].name, ctx.devices["plug-2"].name) == ("Kitchen plug", "Hall plug")
    ctx.mqtt.inject("homie/5/plug-1/light/brightness", "10")
    ctx.mqtt.inject("homie/5/plug-2/light/brightness", "90")
    assert (ctx.state["plug-1"]["brightness"], ctx.state["plug-2"]["brightness"]) == (10, 90)
    await driver.send("plug-2", {"on": True})
    assert ctx.mqtt.published == [("homie/5/plug-2/light/on/set", "true")]
    v2 = {**LIGHT, "version": 2, "nodes": {"light": {"properties": {"on": {"datatype": "boolean", "settable": True}}}}}
    ctx.mqtt.inject("homie/5/plug-2/$description", json.dumps(v2))  # one plug updated its firmware
    assert [e.name for e in ctx.devices["plug-2"].exposes] == ["on"]
    assert [e.name for e in ctx.devices["plug-1"].exposes] == ["on", "brightness", "color", "power"]
    assert one.wiring is not two.wiring and one.wiring.wire("brightness").key == "light/brightness"


async def test_released_devices_are_no_longer_reported(ctx: RecordingContext) -> None:
    driver = HomieDriver(ctx)
    await driver.start()
    ctx.mqtt.inject("homie/5/player/$description", json.dumps(LIGHT))
    await driver.seen("player", state_seen("player"))
    await driver.released("player")
    before = len(ctx.reports)
    ctx.mqtt.inject("homie/5/player/light/on", "true")
    ctx.mqtt.inject("homie/5/player/$state", "ready")
    assert len(ctx.reports) == before


async def test_send_encodes_homie_and_target_is_reported(ctx: RecordingContext) -> None:
    driver = HomieDriver(ctx)
    await driver.start()
    ctx.mqtt.inject("homie/5/desk/$description", json.dumps(LIGHT))
    await driver.seen("desk", SEEN)
    await driver.send("desk", {"on": True, "color": "#0a0b0c"})
    assert ctx.mqtt.published == [("homie/5/desk/light/on/set", "true"),
                                  ("homie/5/desk/light/color/set", "rgb,10,11,12")]
    ctx.mqtt.inject("homie/5/desk/light/brightness/$target", "70")
    assert ctx.targets["desk"] == {"brightness": 70}
    ctx.mqtt.inject("homie/5/desk/light/on/set", "false", retained=False)  # our own command echo: ignored
    assert "on" not in ctx.state.get("desk", {})


@pytest.mark.parametrize("txt,why", [
    ({}, "no id"), ({"id": "UPPER"}, "not a Homie id"), ({"id": "a", "topic": "homie/5/b"}, "is not homie/5/a"),
])
def test_identify_refuses_junk(ctx: RecordingContext, txt: dict, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        HomieDriver(ctx).identify(discovered("_homie._tcp.local.", "x", txt))
