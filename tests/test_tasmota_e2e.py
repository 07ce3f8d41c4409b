"""End to end: Tasmota devices on a real Mosquitto → the hub → REST command → device → WebSocket.

Two kinds of device: `firmware-sim tasmota` (checked by hatasmota in test_sim_tasmota_peer), and a
foreign one made only of `mosquitto_pub` messages answered by a `mosquitto_sub` responder.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.broker import Broker
from hub.service import running_hub
from tests.conftest import RunningHub, hub_config, next_event, until

PLUG, DIMMER = "tasmota-5ccf7f0a1b01", "tasmota-5ccf7f0a1b02"


async def start_sim(broker: Broker, model: str, *extra: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_sim.cli", "tasmota", "--model", model, "--broker", broker.url,
        "--discovery-delay", "0", "--teleperiod", "300", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.startswith(b"tasmota "), line
    return proc


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def sim(running: RunningHub) -> AsyncIterator[Callable[..., Any]]:
    started: list[asyncio.subprocess.Process] = []

    async def start(model: str, *extra: str) -> asyncio.subprocess.Process:
        started.append(await start_sim(running.broker, model, *extra))
        return started[-1]
    yield start
    for proc in started:
        await stop(proc)



async def online(running: RunningHub, device_id: str, *, has: str = "") -> None:
    def ready() -> bool:
        dev = running.hub.registry.get(device_id)
        return dev is not None and dev.state.online and (not has or has in dev.state.values)
    await until(running.hub, ready, 20, f"{device_id} online")


async def post_set(s: aiohttp.ClientSession, running: RunningHub, device_id: str,
                   body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with s.post(f"{running.url}/api/devices/{device_id}/set", headers=running.headers, json=body) as r:
        return r.status, await r.json()


async def test_plug_adopted_commanded_from_rest_and_seen_on_the_websocket(running: RunningHub, sim) -> None:
    await sim("plug2")
    await online(running, PLUG, has="power_2")
    dev = running.hub.registry.get(PLUG)
    names = {e.name for e in dev.info.exposes}
    assert {"power_1", "power_2", "energy_power", "energy_voltage", "energy_current", "energy_total",
            "energy_today"} <= names
    assert dev.info.driver == "tasmota" and dev.info.manufacturer == "Tasmota"
    assert dev.state.values["energy_voltage"] == 230  # the sensors are known at once
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{running.url}/api/ws", headers=running.headers) as ws:
            await ws.receive_json()  # snapshot
            status, body = await post_set(s, running, PLUG, {"power_2": True})
            assert status == 200, body
            assert body["state"]["power_2"] is True
            event = await next_event(ws, lambda m: m.get("type") == "state" and m.get("id") == PLUG
                                     and m["state"].get("power_2") is True)
            assert event["state"]["power_2"] is True
            status, body = await post_set(s, running, PLUG, {"power_1": True, "power_2": False})
            assert status == 200 and (body["state"]["power_1"], body["state"]["power_2"]) == (True, False)
            status, body = await post_set(s, running, PLUG, {"energy_power": 5})
            assert status == 422 and body["field"] == "energy_power"


async def test_dimmer_brightness(running: RunningHub, sim) -> None:
    await sim("dimmer")
    await online(running, DIMMER, has="brightness")
    assert {e.name for e in running.hub.registry.get(DIMMER).info.exposes} == {"on", "brightness"}
    async with aiohttp.ClientSession() as s:
        status, body = await post_set(s, running, DIMMER, {"brightness": 40})
        assert status == 200, body
        assert body["state"]["brightness"] == 40 and body["state"]["on"] is True
        status, body = await post_set(s, running, DIMMER, {"on": False, "brightness": 70})
        assert status == 200 and (body["state"]["on"], body["state"]["brightness"]) == (False, 70)
        status, body = await post_set(s, running, DIMMER, {"brightness": 101})
        assert status == 422 and body["field"] == "brightness"


async def test_custom_full_topic(running: RunningHub, sim) -> None:
    await sim("plug2", "--topic", "den", "--full-topic", "%topic%/%prefix%/")
    await online(running, PLUG, has="power_1")
    async with aiohttp.ClientSession() as s:
        status, body = await post_set(s, running, PLUG, {"power_1": True})
        assert status == 200 and body["state"]["power_1"] is True


async def test_unplugged_goes_offline_and_commands_get_409(running: RunningHub, sim) -> None:
    proc = await sim("plug2")
    await online(running, PLUG, has="power_1")
    proc.kill()  # no goodbye: the broker sees the socket close and publishes the last will
    await proc.wait()
    await until(running.hub, lambda: not running.hub.registry.get(PLUG).state.online, 60, "offline by LWT")
    async with aiohttp.ClientSession() as s:
        status, _ = await post_set(s, running, PLUG, {"power_1": True})
        assert status == 409


async def test_a_hub_started_after_the_device_learns_its_state(tmp_path: Path, broker: Broker) -> None:
    """The retained discovery replays while the hub is still connecting: the device's own topics
    are subscribed and its state asked for all the same (the sim's boot messages are long gone)."""
    proc = await start_sim(broker, "plug2")
    try:
        async with running_hub(hub_config(tmp_path, broker, inbox=False)) as (hub, _url):
            def known() -> bool:
                dev = hub.registry.get(PLUG)
                return dev is not None and dev.state.online and {"power_1", "power_2"} <= dev.state.values.keys()
            await until(hub, known, 20, "the plug's state")
    finally:
        await stop(proc)


# -- a foreign Tasmota made of mosquitto_pub messages ---------------------------------------------

FOREIGN_MAC = "DC4F22AA0B0C"
FOREIGN = "tasmota-dc4f22aa0b0c"
FOREIGN_CONFIG = {
    "ip": "10.0.0.7", "dn": "Garage", "fn": ["Door light", None, None, None, None, None, None, None],
    "hn": "garage-2828", "mac": FOREIGN_MAC, "md": "Sonoff POW R2", "ty": 0, "if": 0, "ofln": "Offline",
    "onln": "Online", "state": ["OFF", "ON", "TOGGLE", "HOLD"], "sw": "13.4.0", "t": "garage",
    "ft": "%prefix%/%topic%/", "tp": ["cmnd", "stat", "tele"], "rl": [1, 0, 0, 0, 0, 0, 0, 0],
    "swc": [-1] * 8, "swn": [None] * 8, "btn": [0] * 8, "so": {"4": 0, "11": 0, "13": 0, "17": 0, "20": 0,
                                                            "30": 0, "68": 0, "73": 0, "82": 0, "114": 0,
                                                            "117": 0},
    "lk": 0, "lt_st": 0, "sho": [], "sht": [], "ver": 1,
}
FOREIGN_SENSORS = {"sn": {"Time": "2026-12-01T10:00:00", "ENERGY": {"Total": 3.2, "Today": 0.1, "Power": 0,
                                                                      "Voltage": 229, "Current": 0.0}}, "ver": 1}


async def mosquitto_pub(port: int, topic: str, payload: str | None, retain: bool = False) -> None:
    args = ["mosquitto_pub", "-p", str(port), "-q", "1", "-t", topic]
    args += ["-n"] if payload is None else ["-m", payload]
    args += ["-r"] if retain else []
    proc = await asyncio.create_subprocess_exec(*args)
    assert await asyncio.wait_for(proc.wait(), 10) == 0


class Responder:
    """The foreign device's firmware: `mosquitto_sub` hears its commands, `mosquitto_pub` answers."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.power = "OFF"
        self.commands: list[tuple[str, str]] = []
        self.answered: asyncio.Queue[str] = asyncio.Queue()  # each command once fully answered
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "mosquitto_sub", "-p", str(self.port), "-q", "1", "-v", "-t", "cmnd/garage/+",
            stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        # subscribed once our own marker comes back
        while True:
            await mosquitto_pub(self.port, "cmnd/garage/HELLO", "1")
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), 1)
            except TimeoutError:
                continue
            if line.startswith(b"cmnd/garage/HELLO"):
                break
        self.task = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            topic, _, payload = line.decode().rstrip("\n").partition(" ")
            command = topic.rsplit("/", 1)[-1].upper()
            self.commands.append((command, payload))
            if command in ("POWER", "POWER1"):
                if payload.upper() in ("ON", "OFF"):
                    self.power = payload.upper()
                await mosquitto_pub(self.port, "stat/garage/RESULT", json.dumps({"POWER": self.power}))
                await mosquitto_pub(self.port, "stat/garage/POWER", self.power)
            elif command == "STATE":
                await mosquitto_pub(self.port, "stat/garage/RESULT", json.dumps({"Uptime": "0T00:01:00",
                                                                                 "POWER": self.power}))
            self.answered.put_nowait(command)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


@pytest.fixture
async def garage(running: RunningHub) -> AsyncIterator[Responder]:
    responder = Responder(running.broker.port)
    await responder.start()
    yield responder
    await responder.stop()
    for topic in (f"tasmota/discovery/{FOREIGN_MAC}/config", f"tasmota/discovery/{FOREIGN_MAC}/sensors",
                  "tele/garage/LWT"):
        await mosquitto_pub(running.broker.port, topic, None, retain=True)


async def test_foreign_device_of_mosquitto_pub_messages_is_adopted_commanded_and_followed(
        running: RunningHub, garage: Responder) -> None:
    port = running.broker.port
    await mosquitto_pub(port, "tele/garage/LWT", "Online", retain=True)
    await mosquitto_pub(port, f"tasmota/discovery/{FOREIGN_MAC}/sensors", json.dumps(FOREIGN_SENSORS), retain=True)
    await mosquitto_pub(port, f"tasmota/discovery/{FOREIGN_MAC}/config", json.dumps(FOREIGN_CONFIG), retain=True)
    await online(running, FOREIGN, has="power")
    dev = running.hub.registry.get(FOREIGN)
    assert (dev.info.name, dev.info.model, dev.info.address) == ("Garage", "Sonoff POW R2", "10.0.0.7")
    assert {"power", "energy_power", "energy_voltage"} <= {e.name for e in dev.info.exposes}
    assert dev.state.values["power"] is False  # answered the hub's STATE question
    assert ("STATE", "") in garage.commands or ("STATE", "(null)") in garage.commands

    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"{running.url}/api/ws", headers=running.headers) as ws:
            await ws.receive_json()
            status, body = await post_set(s, running, FOREIGN, {"power": True})
            assert status == 200, body
            assert body["state"]["power"] is True and ("POWER1", "ON") in garage.commands
            await next_event(ws, lambda m: m.get("type") == "state" and m.get("id") == FOREIGN
                             and m["state"].get("power") is True)
            while await asyncio.wait_for(garage.answered.get(), 10) != "POWER1":
                pass  # its stat/POWER echo is out too: nothing older can overtake what follows
            # its state follows what it says by itself: a button press, the meter
            await mosquitto_pub(port, "stat/garage/POWER", "OFF")
            await next_event(ws, lambda m: m.get("type") == "state" and m.get("id") == FOREIGN
                             and m["state"].get("power") is False)
            await mosquitto_pub(port, "tele/garage/SENSOR", json.dumps({"ENERGY": {"Power": 42, "Voltage": 231}}))
            await next_event(ws, lambda m: m.get("type") == "state" and m.get("id") == FOREIGN
                             and m["state"].get("energy_power") == 42)

        # garbage is reported on the device and dropped; the hub lives on
        await mosquitto_pub(port, "stat/garage/RESULT", "{not json")
        await until(running.hub, lambda: bool(running.hub.registry.get(FOREIGN).info.error), 10, "device error")
        await mosquitto_pub(port, "tele/garage/LWT", "Offline", retain=True)
        await until(running.hub, lambda: not running.hub.registry.get(FOREIGN).state.online, 10, "offline")
        status, _ = await post_set(s, running, FOREIGN, {"power": True})
        assert status == 409

        # an empty retained config: the device was removed
        await mosquitto_pub(port, f"tasmota/discovery/{FOREIGN_MAC}/config", None, retain=True)
        await until(running.hub, lambda: running.hub.registry.get(FOREIGN) is None, 10, "removed")
        async with s.get(f"{running.url}/api/devices/{FOREIGN}", headers=running.headers) as r:
            assert r.status == 404
