"""Garbage from a device or a TXT record is logged and dropped; the hub runs on, nothing stored breaks."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import aiomqtt
import pytest

from tests.conftest import RunningHub, until
from tests.homie_peer import LIGHT, HomiePeer, advertise, loopback_zeroconf


@pytest.fixture
async def zc():
    aiozc = loopback_zeroconf()
    yield aiozc
    await aiozc.async_close()


async def test_malformed_description_flags_the_device_then_recovers(running: RunningHub, zc) -> None:
    peer = HomiePeer(running.broker.port, "bad-desc", description=b"{this is not json")
    await peer.start(values={})
    await advertise(zc, "bad-desc")
    reg = running.hub.registry
    await until(running.hub, lambda: reg.get("bad-desc") is not None, what="flagged device")
    dev = reg.get("bad-desc")
    assert "invalid $description" in dev.info.error and dev.info.exposes == ()
    # the device fixes itself: the error clears and it becomes controllable
    await peer.publish("$description", json.dumps(LIGHT))
    await until(running.hub, lambda: reg.get("bad-desc").info.exposes != (), what="valid description")
    assert reg.get("bad-desc").info.error == ""
    await peer.stop()


async def test_out_of_range_and_garbage_values_are_dropped(running: RunningHub, zc, caplog) -> None:
    peer = HomiePeer(running.broker.port, "noisy")
    await peer.start()
    await advertise(zc, "noisy")
    reg = running.hub.registry
    await until(running.hub, lambda: reg.get("noisy") is not None and reg.get("noisy").state.online, what="noisy online")
    caplog.set_level(logging.WARNING)
    await peer.publish("light/brightness", "250")  # format is 0:100
    await peer.publish("light/on", b"\xff\xfe\x00")
    await peer.publish("light/power", "NaN")
    await peer.publish("light/brightness", "30")  # then a good value
    await until(running.hub, lambda: reg.get("noisy").state.values.get("brightness") == 30, what="good value")
    dev = reg.get("noisy")
    assert dev.state.values["on"] is False and dev.state.values["power"] == 0.0  # garbage never stored
    assert "out of range" in dev.info.error or "not" in dev.info.error
    warnings = [r.getMessage() for r in caplog.records if "noisy" in r.getMessage()]
    assert any("250" in w for w in warnings)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{running.url}/api/health") as r:
            assert (await r.json())["status"] == "ok"
    await peer.stop()


@pytest.mark.parametrize("txt", [
    {"txtvers": "1"},  # no id
    {"id": "../../etc/passwd", "room": "x"},
    {"id": "Bad ID with spaces"},
    {"id": "ok-id", "topic": "homie/5/other-id"},
    {"id": "x" * 200},
])
async def test_junk_txt_records_are_ignored(running: RunningHub, zc, caplog, txt) -> None:
    caplog.set_level(logging.WARNING)
    await advertise(zc, "junk-service", txt=txt)
    # a well-formed device announced after the junk still arrives: discovery kept going
    peer = HomiePeer(running.broker.port, "after-junk")
    await peer.start()
    await advertise(zc, "after-junk")
    reg = running.hub.registry
    await until(running.hub, lambda: reg.get("after-junk") is not None, what="device after junk")
    assert set(reg.devices) == {"after-junk"}
    assert any("junk-service" in r.getMessage() for r in caplog.records)
    await peer.stop()


async def test_binary_junk_in_txt_keys_and_values(running: RunningHub, zc) -> None:
    from zeroconf.asyncio import AsyncServiceInfo
    import socket

    info = AsyncServiceInfo("_homie._tcp.local.", "binary._homie._tcp.local.", port=1,
                            properties={b"\xff\xfe": b"\x00\x01", b"id": b"\xc3\x28", b"ID": b"second"},
                            addresses=[socket.inet_aton("127.0.0.1")], server="binary.local.")
    await zc.async_register_service(info)
    peer = HomiePeer(running.broker.port, "fine")
    await peer.start()
    await advertise(zc, "fine")
    await until(running.hub, lambda: running.hub.registry.get("fine") is not None, what="fine device")
    assert "second" not in running.hub.registry.devices
    await peer.stop()


async def test_garbage_on_the_set_topic_gets_an_error_result(running: RunningHub, zc) -> None:
    peer = HomiePeer(running.broker.port, "target")
    await peer.start()
    await advertise(zc, "target")
    await until(running.hub, lambda: (d := running.hub.registry.get("target")) is not None and d.state.online, what="online")
    async with aiomqtt.Client("127.0.0.1", running.broker.port) as c:
        await c.subscribe("hub/target/set/result", qos=1)
        for payload in (b"\x00\x01garbage", b"[1,2,3]", b'{"brightness": "x"}'):
            await c.publish("hub/target/set", payload, qos=1)
            msg = await asyncio.wait_for(anext(aiter(c.messages)), 10)
            result = json.loads(msg.payload)
            assert result["status"] == "error" and result["code"] == 422
            assert result["field"] in ("body", "brightness")
    assert peer.commands.empty()
    await peer.stop()
