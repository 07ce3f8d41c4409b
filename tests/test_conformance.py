"""The conformance kit (hub.conformance) on the built-in drivers: one `Conformance` per driver.

Adding a driver is one more function below, listed in DRIVERS: its options, how a device
appears (retained MQTT messages, mDNS services, or a simulator started around each check) and
one command the device must confirm. For instance:

    def tasmota() -> Conformance:  # discovery and answers made of messages, as mosquitto_pub would
        return Conformance(TasmotaDriver, command={"power1": True}, scenario=Scenario(
            mqtt=[("tasmota/discovery/AABBCCDDEEFF/config", CONFIG), ("tele/plug/LWT", "Online")],
            respond=lambda t, p: [("stat/plug/RESULT", '{"POWER1": "%s"}' % p.decode())]
                                 if t == "cmnd/plug/POWER1" else []))

    def shelly() -> Conformance:  # the simulator, started around each check
        @asynccontextmanager
        async def plus_1pm() -> AsyncIterator[Scenario]:
            async with ShellySim("plus1pm") as sim:
                yield Scenario(mdns=[discovered("_shelly._tcp.local.", "shellyplus1pm-a8032ab12345",
                                                {"gen": "2", "app": "Plus1PM"}, port=sim.port)])
        return Conformance(ShellyDriver, scenario=plus_1pm, command={"on": True})
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest

from devices.homie import HomieDriver
from devices.pjlink import PJLinkDriver
from devices.shelly import ShellyDriver
from devices.tasmota import TasmotaDriver
from hub import conformance as kit
from hub.conformance import Conformance, Scenario, echo_set, report_problems
from hub.driver import DeviceUnreachable, Driver, DriverContext, MqttSeen
from hub.model import Access, Binary, DeviceInfo
from hub.testing import discovered, driver_context, mqtt_seen
from tests.homie_peer import LIGHT
from tests.pjlink_helpers import Emulator
from tests.test_pjlink_driver import MAC, PASSWORD, PLAYER_DESCRIPTION, player_service, pjlink_service
from tests.test_shelly_driver import PASSWORD as SHELLY_PASSWORD, announcement as shelly_announcement
from tests.test_shelly_driver import simulator as shelly_simulator
from tests.test_tasmota_driver import MAC as TASMOTA_MAC, SENSORS as TASMOTA_SENSORS, config as tasmota_config


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


async def udp_notices(driver: PJLinkDriver, data: bytes) -> None:
    """Garbage as Class 2 status notifications and search replies on the driver's UDP port."""
    assert driver.udp is not None
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                       remote_addr=("127.0.0.1", driver.udp.port))
    for prefix in (b"", b"%2POWR=", b"%2LKUP=", b"%2INPT=", b"%2ERST=", b"%2ACKN="):
        transport.sendto(prefix + data + b"\r")
    transport.close()
    await asyncio.sleep(0.01)  # datagrams on loopback: delivered within a few loop turns


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
                junk=udp_notices,
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


def tasmota() -> Conformance:
    """A two-relay Tasmota plug made of its retained discovery messages and last will."""
    def plug(topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        relay = topic.removeprefix("cmnd/desk/POWER")
        return [("stat/desk/RESULT", b'{"POWER%s": "%s"}' % (relay.encode(), payload))] if relay.isdigit() else []

    return Conformance(
        TasmotaDriver,
        scenario=Scenario(mqtt=[(f"tasmota/discovery/{TASMOTA_MAC}/config", json.dumps(tasmota_config())),
                                (f"tasmota/discovery/{TASMOTA_MAC}/sensors", json.dumps(TASMOTA_SENSORS)),
                                ("tele/desk/LWT", "Online")],
                          respond=plug),
        command={"power_1": True},
    )


def shelly() -> Conformance:
    """The simulated Shelly Plus 1PM (HTTP RPC, its /rpc WebSocket, digest auth), found by mDNS."""
    @asynccontextmanager
    async def plus_1pm() -> AsyncIterator[Scenario]:
        sim = await shelly_simulator("plus1pm")
        try:
            yield Scenario(mdns=[shelly_announcement(sim)])
        finally:
            await sim.stop()

    return Conformance(
        ShellyDriver,
        options={"default_password": SHELLY_PASSWORD, "backoff": (0.05, 0.5), "timeout": 2.0},
        scenario=plus_1pm,
        command={"on": True},
        examples=60,  # each piece of garbage may make it dial a made-up device
    )


DRIVERS: list[Callable[[], Conformance]] = [homie, pjlink, tasmota, shelly]


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


# -- the kit fails what it should ------------------------------------------------------------------

class Toy(Driver):
    """A tiny MQTT driver; each subclass below breaks one rule."""

    name = "toy"
    mqtt_discovery = ("toy/+/config",)
    EXPOSES = (Binary(name="on", access=Access.STATE | Access.SET),)

    def identify(self, seen: MqttSeen) -> str:
        return "toy-" + seen.topic.split("/")[1]

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        self.subscribed: set[str] = set()

    async def stop(self) -> None:
        for topic_filter in self.subscribed:
            self.ctx.mqtt.unsubscribe(topic_filter, self.on_state)

    async def seen(self, device_id: str, seen: MqttSeen) -> None:
        self.ctx.device_found(DeviceInfo(id=device_id, name="Toy", driver=self.name, exposes=self.EXPOSES))
        self.ctx.availability_changed(device_id, True)
        if device_id not in self.subscribed:
            self.subscribed.add(topic := f"toy/{device_id[4:]}/state")
            self.ctx.mqtt.subscribe(topic, self.on_state)  # its retained state comes next

    def on_state(self, topic: str, payload: bytes, retained: bool) -> None:
        if payload in (b"ON", b"OFF"):
            self.ctx.state_changed("toy-" + topic.split("/")[1], {"on": payload == b"ON"})

    async def send(self, device_id: str, values: Mapping[str, Any]) -> None:
        if not device_id.startswith("toy-a"):
            raise DeviceUnreachable(device_id)
        await self.ctx.mqtt.publish(f"toy/{device_id[4:]}/set", "ON" if values["on"] else "OFF")


class Undeclared(Toy):
    def on_state(self, topic: str, payload: bytes, retained: bool) -> None:
        super().on_state(topic, payload, retained)
        self.ctx.state_changed("toy-" + topic.split("/")[1], {"rssi": -40})


class KeyErrorOnUnknown(Toy):
    async def send(self, device_id: str, values: Mapping[str, Any]) -> None:
        {}[device_id]


class LeavesATask(Toy):
    async def start(self) -> None:
        self.forever = asyncio.get_running_loop().create_task(asyncio.sleep(3600))  # not ctx.spawn, never stopped


class Blocks(Toy):
    async def seen(self, device_id: str, seen: MqttSeen) -> None:
        time.sleep(0.3)  # e.g. a synchronous HTTP call
        await super().seen(device_id, seen)


class CrashesOnJunk(Toy):
    def on_state(self, topic: str, payload: bytes, retained: bool) -> None:
        self.ctx.state_changed("toy-" + topic.split("/")[1], {"on": {"ON": True, "OFF": False}[payload.decode()]})


class DiesInATask(Toy):
    async def seen(self, device_id: str, seen: MqttSeen) -> None:
        await super().seen(device_id, seen)

        async def refresh() -> None:
            raise RuntimeError("refresh died")
        self.ctx.spawn(refresh(), "refresh")  # a task of its own that dies: a crash, not just a log line


def toy(cls: type[Toy]) -> Conformance:
    respond = lambda topic, payload: [(topic.replace("/set", "/state"), payload)]  # noqa: E731
    return Conformance(cls, Scenario(mqtt=[("toy/a1/config", "{}"), ("toy/a1/state", "OFF")], respond=respond),
                       command={"on": True}, examples=50)


@pytest.mark.parametrize("cls,check,says", [
    (Toy, None, ""),
    (Undeclared, "test_exposes_cover_every_reported_value", "rssi=-40 is not a declared expose"),
    (KeyErrorOnUnknown, "test_send_to_an_unknown_device_keeps_the_error_contract", "KeyError"),
    (LeavesATask, "test_stop_leaves_nothing_running", "tasks still running after stop"),
    (Blocks, "test_never_blocks_the_loop", "took 0.3"),
    (CrashesOnJunk, "test_survives_garbage", "raised on garbage"),
    (DiesInATask, "test_command_is_confirmed", "refresh died"),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_the_kit_catches_a_driver_that_breaks_a_rule(cls: type[Toy], check: str | None, says: str) -> None:
    checks = [check] if check else [n for n in dir(kit.TestConformance) if n.startswith("test_")]
    for name in checks:
        if check is None:
            getattr(kit.TestConformance(), name)(toy(cls))  # the well-behaved toy passes every check
            continue
        with pytest.raises(AssertionError, match=re.escape(says)):
            getattr(kit.TestConformance(), name)(toy(cls))
