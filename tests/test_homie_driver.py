"""The Homie 5 driver on its own, with the driver test kit (injected messages, no broker)."""

from __future__ import annotations

import json

import pytest

from devices.homie import HomieDriver
from hub.testing import RecordingContext, discovered
from tests.homie_peer import LIGHT

SEEN = discovered("_homie._tcp.local.", "Desk", {"txtvers": "1", "id": "desk", "topic": "homie/5/desk",
                                                 "room": "Office"})


@pytest.fixture
async def ctx():
    c = RecordingContext()
    yield c
    await c.close()


async def test_described_device_is_reported_with_room_state_and_availability(ctx: RecordingContext) -> None:
    driver = HomieDriver(ctx)
    await driver.start()
    # retained messages may arrive before mDNS finds the device, and in any order
    ctx.mqtt.inject("homie/5/desk/light/brightness", "40")
    ctx.mqtt.inject("homie/5/desk/$state", "ready")
    assert ctx.devices == {}  # not reported before mDNS found it
    assert driver.identify(SEEN) == "desk"
    await driver.seen("desk", SEEN)
    assert ctx.devices == {}  # nor before it described itself
    ctx.mqtt.inject("homie/5/desk/$description", json.dumps(LIGHT))
    info = ctx.devices["desk"]
    assert (info.name, info.room, info.driver) == ("Test lamp", "Office", "homie")
    assert ctx.state["desk"] == {"brightness": 40} and ctx.online["desk"] is True
    ctx.mqtt.inject("homie/5/desk/$state", "lost")
    assert ctx.online["desk"] is False


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
