"""The hub against the simulated house in its own process: control, SIGKILL, broker restart."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import aiomqtt
import pytest

from tests.conftest import RunningHub, until

HOUSE = """
[[device]]
id = "desk-light"
name = "Desk light"
type = "light"
room = "Office"

[[device]]
id = "hall-lock"
name = "Hall lock"
type = "lock"
room = "Hallway"

[[device]]
id = "office-blind"
name = "Office blind"
type = "cover"
room = "Office"
params = { speed = 50 }
"""
IDS = {"desk-light", "hall-lock", "office-blind"}


class House:
    def __init__(self, tmp: Path, broker_url: str) -> None:
        self.file = tmp / "house.toml"
        self.file.write_text(HOUSE)
        self.state_dir = tmp / "sim-state"
        self.broker_url = broker_url
        self.log = open(tmp / "house.log", "ab")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firmware_sim.cli", "house", "--file", str(self.file), "--broker",
             self.broker_url, "--state-dir", str(self.state_dir), "--keepalive", "2"],
            stdout=self.log, stderr=self.log)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def house(tmp_path: Path, running: RunningHub) -> Iterator[House]:
    h = House(tmp_path, running.broker.url)
    h.start()
    yield h
    h.stop()


def all_online(running: RunningHub) -> bool:
    """Every device online with its values, and placed in its room (its mDNS record has arrived:
    the broker alone makes a device known, mDNS adds where it is)."""
    reg = running.hub.registry
    return all((d := reg.get(i)) is not None and d.state.online and d.state.values and d.room for i in IDS)


async def post_set(running: RunningHub, device_id: str, body: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{running.url}/api/devices/{device_id}/set", json=body, headers=running.headers) as r:
            return r.status, await r.json()


async def test_house_found_controlled_and_slow_devices_confirm_by_target(running: RunningHub, house: House) -> None:
    await until(running.hub, lambda: all_online(running), 20, "house online")
    rooms = {i: running.hub.registry.get(i).room for i in IDS}
    assert rooms == {"desk-light": "Office", "hall-lock": "Hallway", "office-blind": "Office"}

    status, body = await post_set(running, "desk-light", {"on": True, "brightness": 35})
    assert status == 200, body
    assert body["state"]["brightness"] == 35 and body["state"]["on"] is True

    # a cover confirms the target at once ($target) and then moves at its own speed
    status, body = await post_set(running, "office-blind", {"position": 100})
    assert status == 200, body
    await until(running.hub, lambda: running.hub.registry.get("office-blind").state.values["position"] == 100,
                15, "blind fully open")


async def test_jammed_lock_reports_jammed_and_never_confirms(running: RunningHub, house: House) -> None:
    await until(running.hub, lambda: all_online(running), 20, "house online")
    async with aiomqtt.Client("127.0.0.1", running.broker.port) as c:
        await c.publish("firmware-sim/hall-lock/fault", json.dumps({"jam": True}), qos=1)
    await until(running.hub, lambda: running.hub.registry.get("hall-lock").state.values.get("jammed") is True,
                10, "lock jammed")
    status, body = await post_set(running, "hall-lock", {"locked": False})
    assert status == 504 and "locked" in body["error"]
    assert running.hub.registry.get("hall-lock").state.values["locked"] is True


async def test_sigkilled_house_goes_offline_and_comes_back_same_identity(running: RunningHub, house: House) -> None:
    await until(running.hub, lambda: all_online(running), 20, "house online")
    await post_set(running, "desk-light", {"brightness": 12})
    house.kill()
    reg = running.hub.registry
    await until(running.hub, lambda: not any(reg.get(i).state.online for i in IDS), 15, "all offline")
    status, _ = await post_set(running, "desk-light", {"on": True})
    assert status == 409
    house.start()
    await until(running.hub, lambda: all_online(running), 20, "house back")
    assert set(reg.devices) == IDS  # same ids, no duplicates
    assert reg.get("desk-light").room == "Office"
    assert reg.get("desk-light").state.values["brightness"] == 12  # the device kept its state


async def test_broker_restart_503_during_outage_then_recovers(running: RunningHub, house: House) -> None:
    hub = running.hub
    await until(hub, lambda: all_online(running), 20, "house online")
    running.broker.kill()
    await until(hub, lambda: not hub.mqtt.connected, 10, "hub notices the broker is gone")
    status, body = await post_set(running, "desk-light", {"on": True})
    assert status == 503, body
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{running.url}/api/health") as r:
            assert (await r.json())["mqtt"] == "disconnected"
    await asyncio.to_thread(running.broker.start)
    await until(hub, lambda: hub.mqtt.connected, 15, "hub reconnects")
    # Devices re-announce themselves ($state init -> ready) when they reconnect; a command that
    # lands in that window gets 409, so retry after each availability change, as a UI would.
    with hub.bus.subscribe() as sub:
        for _ in range(5):
            await until(hub, lambda: all_online(running), 20, "devices reconnect")
            status, body = await post_set(running, "desk-light", {"on": True, "brightness": 66})
            if status != 409:
                break
            await asyncio.wait_for(sub.get(), 10)
    assert status == 200, body
    # the broker lost everything retained (no persistence); the hub published it again
    async with aiomqtt.Client("127.0.0.1", running.broker.port) as c:
        await c.subscribe("hub/bridge/devices/desk-light", qos=1)
        msg = await asyncio.wait_for(anext(aiter(c.messages)), 10)
        assert json.loads(msg.payload)["room"] == "Office"
