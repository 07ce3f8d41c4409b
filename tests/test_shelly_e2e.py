"""End to end: `firmware-sim shelly` advertised by mDNS on loopback → the hub → REST command →
the device over HTTP RPC → its NotifyStatus → the hub's WebSocket; and a device killed and back."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.accounts import create_token, create_user
from hub.broker import Broker, free_port
from hub.service import running_hub
from tests.conftest import OWNER, OWNER_PASSWORD, RunningHub, hub_config, next_event

FIRMWARE_SIM = Path(sys.executable).with_name("firmware-sim")
PASSWORD = "e2e shelly pw"
PLUG = "shelly-a8032ab1f001"


@pytest.fixture
async def hub(tmp_path: Path, broker: Broker) -> AsyncIterator[RunningHub]:
    config = hub_config(tmp_path, broker, inbox=False).model_copy(update={"drivers": {
        "shelly": {"default_password": PASSWORD, "backoff": [0.05, 0.5], "timeout": 2.0}}})
    create_user(config.data_dir / "hub.db", OWNER, OWNER_PASSWORD, "owner")
    token = create_token(config.data_dir / "hub.db", "tests")
    async with running_hub(config) as (h, url):
        await h.mqtt.wait_connected(10)
        yield RunningHub(h, url, token, broker)


async def start_sim(model: str, port: int, *extra: str) -> asyncio.subprocess.Process:
    """`firmware-sim shelly` as a black box, advertising `_shelly._tcp` on 127.0.0.1."""
    proc = await asyncio.create_subprocess_exec(
        str(FIRMWARE_SIM), "shelly", "--model", model, "--port", str(port), "--password", PASSWORD,
        "--mdns-interface", "127.0.0.1", *extra, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert line.startswith("shelly "), line
    return proc


async def stop_sim(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> None:
    if proc.returncode is None:
        proc.send_signal(sig)
    await asyncio.wait_for(proc.wait(), 15)



def is_availability(device_id: str, online: bool) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("type") == "availability" and m.get("id") == device_id and m.get("online") is online


async def online_in(ws: aiohttp.ClientWebSocketResponse, device_id: str) -> None:
    """The snapshot says so, or an availability event does."""
    snap = await ws.receive_json()
    assert snap["type"] == "snapshot"
    if not any(d["id"] == device_id and d["online"] for d in snap["devices"]):
        await next_event(ws, is_availability(device_id, True), timeout=30)


async def test_plug_found_by_mdns_switched_from_rest_and_seen_on_the_websocket(hub: RunningHub) -> None:
    sim = await start_sim("plus1pm", free_port())
    try:
        async with aiohttp.ClientSession(headers=hub.headers) as s:
            async with s.ws_connect(f"{hub.url}/api/ws") as ws:
                await online_in(ws, PLUG)
                async with s.get(f"{hub.url}/api/devices/{PLUG}") as r:
                    dev = await r.json()
                assert dev["driver"] == "shelly" and dev["manufacturer"] == "Shelly"
                assert {e["name"] for e in dev["exposes"]} == {"on", "power", "energy", "voltage", "current",
                                                               "temperature"}
                assert dev["state"]["on"] is False
                async with s.post(f"{hub.url}/api/devices/{PLUG}/set", json={"on": True}) as r:
                    assert r.status == 200, await r.text()
                    assert (await r.json())["state"]["on"] is True
                event = await next_event(ws, lambda m: m.get("type") == "state" and m.get("id") == PLUG
                                         and m["state"].get("power") == 60.0)
                assert event["state"].get("on", True) is True
                async with s.post(f"{hub.url}/api/devices/{PLUG}/set", json={"on": "yes"}) as r:
                    assert r.status == 422 and "on" in await r.text()
                async with s.post(f"{hub.url}/api/devices/{PLUG}/set", json={"power": 5}) as r:
                    assert r.status == 422  # read-only
    finally:
        await stop_sim(sim)


async def test_a_killed_device_goes_offline_and_comes_back_as_itself(hub: RunningHub) -> None:
    port = free_port()
    sim = await start_sim("dimmer", port)
    dimmer = "shelly-a8032ab1f003"
    try:
        async with aiohttp.ClientSession(headers=hub.headers) as s, s.ws_connect(f"{hub.url}/api/ws") as ws:
            await online_in(ws, dimmer)
            await stop_sim(sim, signal.SIGKILL)  # no goodbye: the WebSocket's end tells
            await next_event(ws, is_availability(dimmer, False))
            async with s.post(f"{hub.url}/api/devices/{dimmer}/set", json={"brightness": 20}) as r:
                assert r.status == 409  # offline
            sim = await start_sim("dimmer", port)
            await next_event(ws, is_availability(dimmer, True), timeout=30)
            async with s.post(f"{hub.url}/api/devices/{dimmer}/set", json={"on": True, "brightness": 20}) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["state"] == {"on": True, "brightness": 20}
            async with s.get(f"{hub.url}/api/devices") as r:
                assert [d["id"] for d in await r.json()] == [dimmer]
    finally:
        await stop_sim(sim)
