"""The Shelly driver against the Shelly simulator over real HTTP and WebSocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from devices import shelly_rpc as rpc
from devices.shelly import ShellyDriver
from devices.shelly_link import HttpRpc
from firmware_sim.common.clock import SimClock
from firmware_sim.shelly import ShellySim, build
from hub.driver import Claim, DeviceRejected, DeviceTimeout, DeviceUnreachable, Discovered, NotNow
from hub.model import Action
from hub.testing import RecordingContext, discovered, driver_context

PASSWORD = "s3cret pw"
PLUG = "shelly-a8032ab1f001"
COVER = "shelly-a8032ab1f002"
DIMMER = "shelly-a8032ab1f003"


async def simulator(model: str, *, password: str | None = PASSWORD, speed: float = 1.0, port: int = 0) -> ShellySim:
    clock = SimClock(speed)
    sim = ShellySim(build(model, password=password, booted_at=clock.now()), clock, port=port)
    await sim.start()
    return sim


def announcement(sim: ShellySim) -> Discovered:
    ident = sim.device.identity
    return discovered(rpc.SERVICE, ident.device_id, {"gen": "2", "app": ident.app, "ver": ident.ver}, port=sim.port)


@pytest.fixture
async def driver() -> AsyncIterator[tuple[ShellyDriver, RecordingContext]]:
    ctx = driver_context(ShellyDriver, {"default_password": PASSWORD, "backoff": (0.05, 0.5), "timeout": 2.0})
    drv = ShellyDriver(ctx)
    await drv.start()
    yield drv, ctx
    await drv.stop()
    await ctx.close()


async def found(drv: ShellyDriver, ctx: RecordingContext, sim: ShellySim) -> str:
    """Offer the simulator's mDNS record; wait until the device is online with its exposes."""
    seen = announcement(sim)
    claim = drv.identify(seen)
    assert isinstance(claim, Claim)
    await drv.seen(claim.device_id, seen)
    dev = claim.device_id
    await ctx.wait_for(lambda: ctx.online.get(dev) and ctx.devices.get(dev) and ctx.devices[dev].exposes)
    return dev


def names(ctx: RecordingContext, dev: str) -> set[str]:
    return {e.name for e in ctx.devices[dev].exposes}


# -- identity ------------------------------------------------------------------------------------------

def test_identify_takes_gen2_by_mac_and_refuses_junk() -> None:
    drv = ShellyDriver(driver_context(ShellyDriver))
    ok = discovered(rpc.SERVICE, "shellyplus1pm-A8032AB1F001", {"gen": "2", "app": "Plus1PM", "ver": "1.4.4"},
                    address="10.0.0.9")
    assert drv.identify(ok) == Claim(PLUG, "shelly:a8032ab1f001")
    moved = discovered(rpc.SERVICE, "shellyplus1pm-a8032ab1f001", {"gen": "3"}, address="10.0.0.77")
    assert drv.identify(moved) == drv.identify(ok)  # the id never comes from the address
    by_txt = discovered(rpc.SERVICE, "Kitchen plug", {"gen": "2", "id": "shellyplus1pm-a8032ab1f001"})
    assert drv.identify(by_txt) == drv.identify(ok)
    assert drv.identify(discovered(rpc.SERVICE, "shellyplug-s-AABBCCDDEEFF", {"gen": "1"})) is None
    for txt, name, reason in [({}, "shellyplus1pm-a8032ab1f001", "no gen"),
                              ({"gen": "two"}, "shellyplus1pm-a8032ab1f001", "not a number"),
                              ({"gen": "2"}, "my-plug", "no MAC")]:
        with pytest.raises(ValueError, match=reason):
            drv.identify(discovered(rpc.SERVICE, name, txt))
    assert drv.identify(discovered("_http._tcp.local.", "shellyplus1pm-a8032ab1f001", {"gen": "2"})) is None


def test_two_switches_get_qualified_names_only_where_they_collide() -> None:
    body = {"id": 0, "output": False, "apower": 0.0, "voltage": 230.0}
    wiring = rpc.wiring_for({"switch:0": body, "switch:1": {**body, "id": 1}, "light:0": {"output": True,
                             "brightness": 10}, "sys": {}, "input:0": {"state": False}})
    assert [e.name for e in wiring.exposes] == [
        "switch_0_on", "switch_0_power", "switch_0_energy", "switch_0_voltage",
        "switch_1_on", "switch_1_power", "switch_1_energy", "switch_1_voltage", "light_0_on", "brightness"]
    assert rpc.calls_for(wiring.encode({"switch_1_on": True, "light_0_on": True, "brightness": 40})) == [
        rpc.Call("Switch.Set", {"id": 1, "on": True}, {"on": "switch:1/output"}),
        rpc.Call("Light.Set", {"id": 0, "on": True, "brightness": 40},
                 {"on": "light:0/output", "brightness": "light:0/brightness"})]


def test_frame_auth_answers_the_challenge_as_the_device_checks_it() -> None:
    from firmware_sim.shelly.auth import DigestGuard
    guard = DigestGuard(realm="shellyplus1pm-a8032ab1f001")
    guard.set_password(PASSWORD)
    auth = rpc.FrameAuth("shellyplus1pm-a8032ab1f001", PASSWORD)
    assert auth.next() is None  # nothing to answer before a challenge
    auth.challenged(guard.challenge_object(1000.0))
    assert [guard.verify_object(auth.next(), 1000.0) for _ in range(3)] == ["ok", "ok", "ok"]
    with pytest.raises(ValueError, match="algorithm"):
        auth.challenged({"nonce": 1, "realm": auth.realm, "algorithm": "MD5"})
    wrong = rpc.FrameAuth("shellyplus1pm-a8032ab1f001", "not it")
    wrong.challenged(guard.challenge_object(1000.0))
    assert guard.verify_object(wrong.next(), 1000.0) == "bad"


# -- against the simulator -------------------------------------------------------------------------------

async def test_plug_is_found_exposed_and_switched_on_confirmed_by_its_notification(driver) -> None:
    drv, ctx = driver
    sim = await simulator("plus1pm")
    try:
        dev = await found(drv, ctx, sim)
        assert dev == PLUG
        info = ctx.devices[dev]
        assert names(ctx, dev) == {"on", "power", "energy", "voltage", "current", "temperature"}
        assert (info.manufacturer, info.model, info.address) == ("Shelly", "Plus1PM (SNSW-001P16EU)",
                                                                 f"127.0.0.1:{sim.port}")
        assert ctx.state[dev]["on"] is False and ctx.state[dev]["power"] == 0.0
        reports = len(ctx.reports)
        await drv.send(dev, {"on": True})
        await ctx.wait_for(lambda: ctx.state[dev]["on"] is True and ctx.state[dev]["power"] == 60.0)
        assert sim.device.components["switch:0"].output is True  # type: ignore[attr-defined]
        later = [r for r in ctx.reports[reports:] if r[0] == "state"]
        assert any(r[2].get("on") is True and "power" in r[2] for r in later)  # the device's NotifyStatus
        # asking for what it already has changes nothing on the device, and is confirmed all the same
        reports = len(ctx.reports)
        await drv.send(dev, {"on": True})
        assert ("state", dev, {"on": True}) in ctx.reports[reports:]
        assert not ctx.errors
    finally:
        await sim.stop()


async def test_cover_goes_to_40_and_takes_actions(driver) -> None:
    drv, ctx = driver
    sim = await simulator("plus2pm-cover", speed=20.0)  # 20 s of travel in one real second
    try:
        dev = await found(drv, ctx, sim)
        assert dev == COVER
        assert {"position", "state", "action", "power", "energy"} <= names(ctx, dev)
        assert isinstance(ctx.devices[dev].expose("action"), Action)
        assert ctx.state[dev]["state"] == "closed" and ctx.state[dev]["position"] == 0
        await drv.send(dev, {"position": 40})
        await ctx.wait_for(lambda: ctx.targets.get(dev, {}).get("position") == 40)  # heading there
        await ctx.wait_for(lambda: ctx.state[dev]["position"] == 40 and ctx.state[dev]["state"] == "stopped")
        await drv.send(dev, {"action": "open"})
        await ctx.wait_for(lambda: ctx.state[dev]["state"] == "opening")
        await drv.send(dev, {"action": "stop"})
        await ctx.wait_for(lambda: ctx.state[dev]["state"] == "stopped")
        # the device's own refusal: moving while it calibrates is a valid value at the wrong time
        async with aiohttp.ClientSession() as http:
            call = HttpRpc(http, sim.url, "test", PASSWORD, 2.0)
            assert (await call.call("Cover.Calibrate", {"id": 0})).error is None
        with pytest.raises(NotNow) as refused:
            await drv.send(dev, {"position": 10})
        assert refused.value.field == "position" and "calibrating" in refused.value.rule
        assert not ctx.errors
    finally:
        await sim.stop()


async def test_dimmer_brightness_and_the_device_naming_the_field_it_refuses(driver) -> None:
    drv, ctx = driver
    sim = await simulator("dimmer")
    try:
        dev = await found(drv, ctx, sim)
        assert names(ctx, dev) == {"on", "brightness"}
        await drv.send(dev, {"on": True, "brightness": 35})
        await ctx.wait_for(lambda: ctx.state[dev] == {"on": True, "brightness": 35})
        with pytest.raises(DeviceRejected) as refused:  # past the hub's own check: the device's rule
            await drv.send(dev, {"brightness": 250})
        assert refused.value.field == "brightness" and "-103" in refused.value.rule
        with pytest.raises(DeviceRejected, match="no such property"):
            await drv.send(dev, {"position": 3})
    finally:
        await sim.stop()


async def test_wrong_password_is_offline_with_an_error() -> None:
    ctx = driver_context(ShellyDriver, {"passwords": {"A8:03:2A:B1:F0:01": "not it"}, "backoff": (0.05, 0.5)})
    drv = ShellyDriver(ctx)
    sim = await simulator("plus1pm")
    attempts: list[float] = []  # each connection attempt starts with GetDeviceInfo
    four = asyncio.Event()
    info = sim.device.device_info

    def counted() -> dict[str, Any]:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) >= 4:
            four.set()
        return info()
    sim.device.device_info = counted  # type: ignore[method-assign]
    try:
        seen = announcement(sim)
        await drv.seen(PLUG, seen)
        await ctx.wait_for(lambda: (PLUG, "authentication failed: the device refused the password") in ctx.errors)
        # retried with backoff (0.05 s, doubling, ±10 %), not in a tight loop
        await asyncio.wait_for(four.wait(), 10)
        assert attempts[3] - attempts[0] >= 0.9 * (0.05 + 0.1 + 0.2)
        assert ctx.online.get(PLUG) is not True
        assert ctx.devices == {}  # not announced before it answered with its status
        assert sim.device.components["switch:0"].output is False  # type: ignore[attr-defined]
        assert len([e for e in ctx.errors if e[0] == PLUG]) == 1  # reported once, however often it retries
    finally:
        await drv.stop()
        await ctx.close()
        await sim.stop()


async def test_no_password_for_a_protected_device_says_so(driver) -> None:
    ctx = driver_context(ShellyDriver, {"backoff": (0.05, 0.5)})
    drv = ShellyDriver(ctx)
    sim = await simulator("dimmer")
    try:
        await drv.seen(DIMMER, announcement(sim))
        await ctx.wait_for(lambda: (DIMMER, "authentication failed: no password configured") in ctx.errors)
    finally:
        await drv.stop()
        await ctx.close()
        await sim.stop()


async def test_killed_is_offline_and_restarted_is_back_with_the_same_id(driver) -> None:
    drv, ctx = driver
    sim = await simulator("plus1pm")
    port = sim.port
    dev = await found(drv, ctx, sim)
    await sim.stop()
    await ctx.wait_for(lambda: ctx.online[dev] is False)
    with pytest.raises(DeviceUnreachable):
        await drv.send(dev, {"on": True})
    sim = await simulator("plus1pm", port=port)
    try:
        sim.device.components["switch:0"].output = True  # type: ignore[attr-defined]  # it came back on
        await ctx.wait_for(lambda: ctx.online[dev] is True)  # reconnected by the Poller, no new announcement
        await ctx.wait_for(lambda: ctx.state[dev]["on"] is True)  # and resynced
        assert list(ctx.devices) == [dev] and not ctx.removed
        await drv.send(dev, {"on": False})
        await ctx.wait_for(lambda: ctx.state[dev]["on"] is False)
    finally:
        await sim.stop()


async def push(sim: ShellySim, data: Any) -> None:
    """What the device sends on every WebSocket it serves (raw text, or a frame to encode)."""
    for peer in list(sim.peers):
        await peer.ws.send_str(data if isinstance(data, str) else json.dumps(data))


async def test_garbage_from_the_device_is_dropped_and_the_driver_keeps_going(driver) -> None:
    drv, ctx = driver
    sim = await simulator("plus1pm")
    try:
        dev = await found(drv, ctx, sim)
        src = sim.device.identity.device_id
        await push(sim, "this is not json")
        await push(sim, "[1, 2]")
        await push(sim, {"src": src, "method": "NotifyStatus", "params": {"switch:0": {"output": "yes", "apower": 5}}})
        await push(sim, {"src": src, "method": "NotifyStatus", "params": {"switch:0": 7}})
        await push(sim, {"src": src, "method": "NotifyStatus", "params": "nope"})
        await push(sim, {"src": src, "method": "NotifyFullStatus", "params": {"ts": 1, "switch:0": {
            "id": 0, "output": True, "apower": 12.5, "voltage": 231.0, "current": 0.05,
            "aenergy": {"total": 3.5}, "temperature": {"tC": 40.0}}}})
        await ctx.wait_for(lambda: ctx.state[dev].get("energy") == 3.5)
        messages = [m for d, m in ctx.errors if d == dev]
        assert len(messages) == 5, messages
        assert "not JSON" in messages[0] and "not a JSON object" in messages[1]
        assert "output" in messages[2] and "not an object" in messages[3] and "params" in messages[4]
        assert ctx.state[dev]["power"] == 12.5 and ctx.state[dev]["on"] is True  # the good parts count
        assert ctx.online[dev] is True
        await drv.send(dev, {"on": False})  # still driving it
        await ctx.wait_for(lambda: ctx.state[dev]["on"] is False)
    finally:
        await sim.stop()


async def test_a_device_that_never_answers_is_a_timeout_and_a_closed_port_unreachable() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(DeviceTimeout):
                await HttpRpc(http, f"http://127.0.0.1:{port}", "t", None, 0.3).call("Switch.Set", {"id": 0})
            server.close()
            await server.wait_closed()
            with pytest.raises(DeviceUnreachable):
                await HttpRpc(http, f"http://127.0.0.1:{port}", "t", None, 0.3).call("Switch.Set", {"id": 0})
    finally:
        server.close()


async def test_a_password_changed_on_the_device_fails_the_command_and_takes_it_offline(driver) -> None:
    drv, ctx = driver
    sim = await simulator("plus1pm")
    try:
        dev = await found(drv, ctx, sim)
        sim.device.guard.set_password("changed on the device")
        with pytest.raises(DeviceUnreachable, match="authentication failed"):
            await drv.send(dev, {"on": True})
        assert ctx.online[dev] is False
        assert (dev, "authentication failed: the device refused the password") in ctx.errors
        sim.device.guard.set_password(PASSWORD)  # and back: the Poller reconnects
        await ctx.wait_for(lambda: ctx.online[dev] is True)
    finally:
        await sim.stop()
