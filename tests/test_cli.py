"""The `hub` command line a user types: tokens, devices, help."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp

from tests.conftest import RunningHub, until
from tests.homie_peer import HomiePeer, advertise, loopback_zeroconf


def hub_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, timeout=60)


async def test_token_create_then_devices(running: RunningHub) -> None:
    data = str(running.hub.config.data_dir)
    made = await asyncio.to_thread(hub_cli, "token", "create", "--name", "script", "--data", data)
    token = made.stdout.strip()
    assert made.returncode == 0 and token.startswith("hub_")
    async with aiohttp.ClientSession() as s:  # a token made while the hub runs works at once
        async with s.get(f"{running.url}/api/devices", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
        async with s.get(f"{running.url}/api/devices", headers={"Authorization": "Bearer hub_wrong"}) as r:
            assert r.status == 401

    peer = HomiePeer(running.broker.port, "cli-lamp")
    await peer.start()
    aiozc = loopback_zeroconf()
    try:
        await advertise(aiozc, "cli-lamp", room="Study")
        await until(running.hub, lambda: (d := running.hub.registry.get("cli-lamp")) is not None and d.state.values,
                    10, "device known")
        await running.hub.registry.flush()
        listed = await asyncio.to_thread(hub_cli, "devices", "--json", "--data", data)
        assert listed.returncode == 0, listed.stderr
        devices = {d["id"]: d for d in json.loads(listed.stdout)}
        assert devices["cli-lamp"]["room"] == "Study" and devices["cli-lamp"]["state"]["brightness"] == 50
    finally:
        await peer.stop()
        await aiozc.async_close()


def test_help_lists_every_command() -> None:
    out = hub_cli("--help").stdout
    for command in ("run", "demo", "token", "devices", "cloud", "sync"):
        assert command in out
    sim = subprocess.run([sys.executable, "-m", "firmware_sim.cli", "--help"], capture_output=True, text=True,
                         timeout=60).stdout
    for command in ("house", "fleet", "projector", "cloud"):
        assert command in sim
