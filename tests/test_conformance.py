"""The conformance kit (hub.conformance) on the built-in drivers: one `Conformance` per driver.

Adding a driver is one more function below, listed in DRIVERS: its options, how a device
appears (retained MQTT messages, mDNS services, or a simulator started around each check) and
one command the device must confirm.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from devices.homie import HomieDriver
from devices.pjlink import PJLinkDriver
from hub.conformance import Conformance, Scenario, echo_set, report_problems
from hub.testing import discovered, driver_context, mqtt_seen
from tests.homie_peer import LIGHT
from tests.pjlink_helpers import Emulator
from tests.test_pjlink_driver import MAC, PASSWORD, PLAYER_DESCRIPTION, player_service, pjlink_service


def homie() -> Conformance:
    """A Homie 5 lamp made of retained messages, as `mosquitto_pub -r` would leave them."""
    base = "homie/5/desk-lamp"
    return Conformance(
        HomieDriver,
        scenario=Scenario(
            mqtt=[(f"{base}/$state", "ready"), (f"{base}/$description", json.dumps(LIGHT)),
                  (f"{base}/light/on", "false"), (f"{base}/light/brightness", "40")],
            mdns=[discovered("_homie._tcp.local.", "Desk lamp", {"id": "desk-lamp", "topic": base, "room": "Office"})],
            respond=echo_set,
        ),
        command={"on": True, "brightness": 70},
    )


def pjlink() -> Conformance:
    """pjlink-advance's projector emulator, found by mDNS, with its Homie media player merged in."""
    @asynccontextmanager
    async def projector() -> AsyncIterator[Scenario]:
        emu = await Emulator(password=PASSWORD, transition_delay=0.2).start()
        try:
            yield Scenario(
                mdns=[pjlink_service(emu.port), player_service()],
                mqtt=[("homie/5/projector-player/$description", json.dumps(PLAYER_DESCRIPTION)),
                      ("homie/5/projector-player/player/state", "idle")],
            )
        finally:
            await emu.stop()

    return Conformance(
        PJLinkDriver,
        options={"passwords": {MAC: PASSWORD}, "notify_port": 0, "poll_interval": 3600, "transition_poll": 0.1,
                 "timeout": 2, "backoff": (0.05, 0.2)},
        scenario=projector,
        command={"power": True},
        examples=60,  # each piece of garbage may make it dial a made-up projector
    )


DRIVERS: list[Callable[[], Conformance]] = [homie, pjlink]


@pytest.fixture(params=DRIVERS, ids=lambda f: f.__name__)
def conformance(request: pytest.FixtureRequest) -> Conformance:
    return request.param()


# -- what the kit found, pinned down --------------------------------------------------------------

async def test_homie_finds_a_badly_described_device_before_reporting_its_error() -> None:
    ctx = driver_context(HomieDriver)
    driver = HomieDriver(ctx)
    await driver.start()
    await driver.seen("lamp", mqtt_seen("homie/5/+/$state", "homie/5/lamp/$state", "ready"))
    ctx.mqtt.inject("homie/5/lamp/$description", b"\xad not json")
    assert ctx.devices["lamp"].error.startswith("invalid $description")
    assert report_problems(ctx.reports, "homie") == []  # the error was not reported on an unknown device
    await driver.stop()
    await ctx.close()


async def test_homie_says_nothing_about_a_removed_device_when_its_mdns_hint_leaves() -> None:
    ctx = driver_context(HomieDriver)
    driver = HomieDriver(ctx)
    await driver.start()
    ctx.mqtt.inject("homie/5/lamp/$description", json.dumps(LIGHT))
    await driver.seen("lamp", discovered("_homie._tcp.local.", "Lamp", {"id": "lamp"}))
    ctx.mqtt.inject("homie/5/lamp/$state", "")  # Homie 5: the device removed itself
    await driver.gone("lamp")
    assert ctx.removed == ["lamp"] and report_problems(ctx.reports, "homie") == []
    await driver.stop()
    await ctx.close()
