"""The Shelly simulator against independent clients: aioshelly (its own venv), curl --digest, zeroconf."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo

from firmware_sim.common.clock import SimClock
from firmware_sim.common.net import make_zeroconf
from firmware_sim.shelly import ShellySim, build
from firmware_sim.shelly.server import SHELLY_SERVICE

ROOT = Path(__file__).resolve().parents[1]
PY313 = Path(os.environ.get("HUB_PY313_VENV", ROOT / ".venv313")) / "bin" / "python"
RUNNER = Path(__file__).with_name("shelly_peer_runner.py")


async def aioshelly(sim: ShellySim, password: str | None = None, ops: list[dict[str, Any]] | None = None) -> dict:
    """Run aioshelly's RpcDevice (Python 3.13 venv) against the simulator; its JSON report."""
    if not PY313.exists():
        pytest.fail(f"the peers' venv is missing ({PY313}); create it with: make peers313")
    opts = {"host": sim.host, "port": sim.port, "password": password, "ops": ops or []}
    proc = await asyncio.create_subprocess_exec(str(PY313), str(RUNNER), json.dumps(opts),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()[-2000:]
    return json.loads(out)


async def running(model: str, password: str | None = None, speed: float = 1.0,
                  mdns: str | None = None) -> ShellySim:
    clock = SimClock(speed)
    sim = ShellySim(build(model, password=password, booted_at=clock.now()), clock, mdns_interface=mdns)
    await sim.start()
    return sim


@pytest.fixture
async def plug() -> AsyncIterator[ShellySim]:
    sim = await running("plus1pm", password="s3cret pw")
    yield sim
    await sim.stop()


async def test_aioshelly_connects_reads_and_switches_with_notifications(plug: ShellySim) -> None:
    report = await aioshelly(plug, "s3cret pw", [
        {"op": "switch_set", "id": 0, "on": True},
        {"op": "wait", "key": "switch:0", "field": "output", "value": True},
        {"op": "call", "method": "Switch.GetStatus", "params": {"id": 0}},
        {"op": "call", "method": "Switch.SetConfig", "params": {"id": 0, "config": {"name": "Hall lamp"}}},
        {"op": "wait_event", "event": "config_changed"},
    ])
    init = report["init"]
    assert init["initialized"] and init["firmware_supported"] and init["requires_auth"]
    assert init["model"] == "SNSW-001P16EU" and init["gen"] == 2
    assert init["hostname"] == init["name"] == "shellyplus1pm-a8032ab1f001"
    assert {"sys", "wifi", "cloud", "mqtt", "switch:0"} <= set(init["status_keys"])
    assert init["status"]["switch:0"]["output"] is False
    assert report["results"][0] == {"ok": True}
    pushed = report["results"][1]["status"]  # merged from NotifyStatus: the runner never polls
    assert pushed["output"] is True and pushed["apower"] == 60.0
    assert report["results"][2]["result"]["output"] is True
    assert "STATUS" in report["updates"] and "EVENT" in report["updates"]
    assert report["results"][3] == {"result": {"restart_required": False}}
    event = report["results"][4]["event"]["events"][0]
    assert (event["component"], event["id"], event["event"]) == ("switch:0", 0, "config_changed")
    assert plug.device.components["switch:0"].output is True  # type: ignore[attr-defined]


async def test_aioshelly_with_a_wrong_password_fails_cleanly(plug: ShellySim) -> None:
    report = await aioshelly(plug, "not it")
    assert report["init"]["error"] == "InvalidAuthError"
    assert json.loads(report["init"]["message"])["realm"] == "shellyplus1pm-a8032ab1f001"
    assert plug.device.components["switch:0"].output is False  # type: ignore[attr-defined]


async def test_aioshelly_moves_the_cover_to_a_position() -> None:
    sim = await running("plus2pm-cover", speed=20.0)  # 20 s of travel in one real second
    try:
        report = await aioshelly(sim, None, [
            {"op": "cover_set_position", "id": 0, "pos": 60},
            {"op": "wait", "key": "cover:0", "field": "state", "value": "stopped"},
        ])
    finally:
        await sim.stop()
    assert report["init"]["initialized"] and report["init"]["firmware_supported"]
    assert report["init"]["info"]["profile"] == "cover"
    assert report["init"]["status"]["cover:0"]["state"] == "closed"
    final = report["results"][1]["status"]
    assert final["current_pos"] == 60 and final["last_direction"] == "open" and final["pos_control"] is True


async def test_aioshelly_sets_dimmer_brightness() -> None:
    sim = await running("dimmer")
    try:
        report = await aioshelly(sim, None, [
            {"op": "call", "method": "Light.Set", "params": {"id": 0, "on": True, "brightness": 35}},
            {"op": "wait", "key": "light:0", "field": "brightness", "value": 35},
            {"op": "call", "method": "Light.Set", "params": {"id": 0, "brightness": 250}},
        ])
    finally:
        await sim.stop()
    assert report["init"]["model"] == "SNDM-0013US" and report["init"]["firmware_supported"]
    assert report["results"][1]["status"]["output"] is True
    assert report["results"][2]["error"] == "RpcCallError" and "-103" in report["results"][2]["message"]


async def curl(*args: str) -> tuple[int, str]:
    """curl's exit code and body, with `%{http_code}` appended on the last line."""
    assert shutil.which("curl"), "curl is a test dependency (make system-test-deps)"
    proc = await asyncio.create_subprocess_exec("curl", "-s", "-w", "\n%{http_code}", *args,
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


async def test_curl_digest_calls_an_rpc_method(plug: ShellySim) -> None:
    url = f"{plug.url}/rpc/Switch.Set?id=0&on=true"
    rc, out = await curl("--digest", "-u", "admin:s3cret pw", url)
    body, code = out.rsplit("\n", 1)
    assert (rc, code, json.loads(body)) == (0, "200", {"was_on": False})
    _, out = await curl("--digest", "-u", "admin:wrong", f"{plug.url}/rpc/Switch.Set?id=0&on=false")
    assert out.rsplit("\n", 1)[1] == "401"
    _, out = await curl(f"{plug.url}/rpc/Switch.Set?id=0&on=false")
    assert out.rsplit("\n", 1)[1] == "401"
    _, out = await curl(f"{plug.url}/shelly")  # never behind auth
    assert json.loads(out.rsplit("\n", 1)[0])["auth_en"] is True
    _, out = await curl("--digest", "-u", "admin:s3cret pw", "-d",
                        '{"id":9,"src":"curl","method":"Switch.GetStatus","params":{"id":0}}', f"{plug.url}/rpc")
    frame = json.loads(out.rsplit("\n", 1)[0])
    assert frame["id"] == 9 and frame["dst"] == "curl" and frame["result"]["output"] is True


async def test_http_errors_look_like_a_device() -> None:
    sim = await running("plus1pm")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{sim.url}/rpc/Switch.Set?id=3&on=true") as r:
                assert r.status == 500 and (await r.json())["code"] == -105
            async with http.get(f"{sim.url}/rpc/Switch.Set?id=0&on=maybe") as r:
                assert r.status == 500 and (await r.json())["code"] == -103
            async with http.get(f"{sim.url}/rpc/No.Such") as r:
                assert r.status == 404 and (await r.json())["message"] == "No handler for No.Such"
            async with http.post(f"{sim.url}/rpc", data=b"\x00not json") as r:
                assert r.status == 400 and (await r.json())["error"]["code"] == -32700
            async with http.post(f"{sim.url}/rpc/Switch.Set", data=b"{bad") as r:
                assert r.status == 400
            async with http.post(f"{sim.url}/rpc/Switch.Set", json={"id": 0, "on": True}) as r:
                assert (await r.json()) == {"was_on": False}
                assert r.headers["Connection"] == "close"  # one-shot, like the device
    finally:
        await sim.stop()


async def test_websocket_pushes_changes_made_on_another_channel() -> None:
    sim = await running("plus1pm")
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{sim.url}/rpc") as ws:
            await ws.send_str("this is not json")
            assert (await ws.receive_json(timeout=5))["error"]["code"] == -32700
            await ws.send_str(json.dumps({"id": 1, "src": "tester", "method": "Shelly.GetDeviceInfo"}))
            assert (await ws.receive_json(timeout=5))["result"]["app"] == "Plus1PM"
            async with http.get(f"{sim.url}/rpc/Switch.Set?id=0&on=true") as r:
                assert r.status == 200
            note = await ws.receive_json(timeout=5)
            while note.get("method") != "NotifyStatus":
                note = await ws.receive_json(timeout=5)
            assert note["src"] == "shellyplus1pm-a8032ab1f001" and note["dst"] == "tester"
            assert note["params"]["switch:0"]["output"] is True and "ts" in note["params"]
    finally:
        await sim.stop()


async def test_advertised_on_loopback_as_shelly_and_http() -> None:
    sim = await running("plus1pm", mdns="127.0.0.1")
    aiozc = make_zeroconf("127.0.0.1")
    try:
        for stype in (SHELLY_SERVICE, "_http._tcp.local."):
            info = AsyncServiceInfo(stype, f"shellyplus1pm-a8032ab1f001.{stype}")
            assert await info.async_request(aiozc.zeroconf, 5000), stype
            assert info.port == sim.port and info.parsed_addresses(IPVersion.V4Only) == ["127.0.0.1"]
            txt = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
            assert txt["gen"] == "2" and txt["app"] == "Plus1PM" and txt["ver"] == "1.4.4"
    finally:
        await aiozc.async_close()
        await sim.stop()


async def test_aioshelly_zeroconf_discovery_finds_the_simulators() -> None:
    sims = [await running("plus1pm", mdns="127.0.0.1"), await running("dimmer", mdns="127.0.0.1")]
    try:
        proc = await asyncio.create_subprocess_exec(str(PY313), str(RUNNER), json.dumps({"discover": 2}),
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-2000:]
    finally:
        for sim in sims:
            await sim.stop()
    found = json.loads(out)
    lookup = found.pop()
    assert {(f["name"], f["type"], f["host"], f["port"]) for f in found} == {
        (f"{s.device.identity.device_id}.{SHELLY_SERVICE}", SHELLY_SERVICE, "127.0.0.1", s.port) for s in sims}
    port_of = {s.device.identity.device_id: s.port for s in sims}
    assert lookup["result"] == ["127.0.0.1", port_of[lookup["lookup"]]]  # by name, over _http._tcp


async def test_timer_expiry_is_pushed_without_any_call() -> None:
    sim = await running("plus1pm", speed=10.0)
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{sim.url}/rpc") as ws:
            await ws.send_str(json.dumps({"id": 1, "src": "tester", "method": "Switch.Set",
                                          "params": {"id": 0, "on": True, "toggle_after": 5}}))
            seen: list[dict] = []
            while not any(n.get("params", {}).get("switch:0", {}).get("source") == "timer" for n in seen):
                seen.append(await ws.receive_json(timeout=10))
            assert seen[0] == {"id": 1, "src": "shellyplus1pm-a8032ab1f001", "dst": "tester",
                               "result": {"was_on": False}}
            assert seen[-1]["params"]["switch:0"]["output"] is False
    finally:
        await sim.stop()


async def test_cli_serves_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_sim.cli", "shelly", "--model", "plus2pm-cover", "--port", "0",
        "--password", "pw", "--id", "shellyplus2pm-a8032a000001", "--mdns-interface", "",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
        assert line[:2] == ["shelly", "shellyplus2pm-a8032a000001"]
        async with aiohttp.ClientSession() as http, http.get(f"{line[-1]}/shelly") as r:
            info = await r.json()
        assert (info["id"], info["auth_en"], info["profile"], info["mac"]) == (
            "shellyplus2pm-a8032a000001", True, "cover", "A8032A000001")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_curl_digest_posts_params_to_a_method(plug: ShellySim) -> None:
    rc, out = await curl("--digest", "-u", "admin:s3cret pw", "-H", "Content-Type: application/json",
                         "-d", '{"id":0,"on":true}', f"{plug.url}/rpc/Switch.Set")
    body, code = out.rsplit("\n", 1)
    assert (rc, code, json.loads(body)) == (0, "200", {"was_on": False})
    _, out = await curl("-d", "{garbage", f"{plug.url}/rpc/Switch.Set")  # no credentials: challenged first
    assert out.rsplit("\n", 1)[1] == "401"
