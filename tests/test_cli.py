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


def hub_cli_in(stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


async def test_a_household_locked_out_gets_back_in_from_the_command_line(running: RunningHub) -> None:
    data = str(running.hub.config.data_dir)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(running.url, cookie_jar=jar, headers={"Origin": running.url}) as s:
        async with s.post("/api/auth/login", json={"name": running.user, "password": running.password}) as r:
            assert r.status == 200
        reset = await asyncio.to_thread(hub_cli_in, "a brand new password\n", "user", "passwd", running.user,
                                        "--password-stdin", "--data", data)
        assert reset.returncode == 0 and "1 session(s) signed out" in reset.stdout, reset.stderr

        async def signed_out() -> None:
            while True:  # the running hub re-reads a session it cached within 2 s
                async with s.get("/api/devices") as r:
                    if r.status == 401:
                        return
                await asyncio.sleep(0.2)
        await asyncio.wait_for(signed_out(), 5)
        async with s.post("/api/auth/login", json={"name": running.user, "password": "a brand new password"}) as r:
            assert r.status == 200

    added = await asyncio.to_thread(hub_cli_in, "kid password\n", "user", "add", "kid", "--password-stdin",
                                    "--data", data)
    assert added.returncode == 0 and added.stdout.strip() == "added member kid"
    again = await asyncio.to_thread(hub_cli_in, "kid password\n", "user", "add", "KID", "--password-stdin",
                                    "--data", data)
    assert again.returncode == 1 and "exists" in again.stderr
    short = await asyncio.to_thread(hub_cli_in, "short\n", "user", "add", "x", "--password-stdin", "--data", data)
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    listed = await asyncio.to_thread(hub_cli, "user", "list", "--data", data)
    assert listed.stdout.splitlines() == ["kid\tmember", f"{running.user}\towner"]


async def test_tokens_listed_and_revoked_from_the_command_line(running: RunningHub) -> None:
    data = str(running.hub.config.data_dir)
    made = await asyncio.to_thread(hub_cli, "token", "create", "--name", "tablet", "--read-only", "--data", data)
    token = made.stdout.strip()
    listed = await asyncio.to_thread(hub_cli, "token", "list", "--data", data)
    row = next(line.split("\t") for line in listed.stdout.splitlines() if "\ttablet\t" in line)
    assert row[2:4] == [running.user, "read"]
    assert token not in listed.stdout
    async with aiohttp.ClientSession(running.url, headers={"Authorization": f"Bearer {token}"}) as s:
        async with s.get("/api/devices") as r:
            assert r.status == 200
        revoked = await asyncio.to_thread(hub_cli, "token", "revoke", row[0], "--data", data)
        assert revoked.returncode == 0

        async def refused() -> None:
            while True:
                async with s.get("/api/devices") as r:
                    if r.status == 401:
                        return
                await asyncio.sleep(0.2)
        await asyncio.wait_for(refused(), 5)  # the running hub re-reads cached tokens within 2 s
    gone = await asyncio.to_thread(hub_cli, "token", "revoke", row[0], "--data", data)
    assert gone.returncode == 1 and "no token" in gone.stderr


def test_a_typo_in_a_drivers_table_stops_the_start_naming_it_and_nothing_else(tmp_path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[drivers.shelly]\npasword = "hunter2"\n[drivers.pjlink]\nport = "4352x"\n')
    done = hub_cli("run", "--config", str(config), "--data", str(tmp_path / "data"))
    assert done.returncode == 2, done.stderr
    assert "drivers.shelly.pasword: unknown key" in done.stderr
    assert "drivers.pjlink.port: Input should be a valid integer" in done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr and "4352x" not in done.stderr
