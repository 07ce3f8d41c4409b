"""End to end with a hand-driven Homie device: mDNS → hub → REST/MQTT command → device → WebSocket."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import aiohttp
import aiomqtt
import pytest

from tests.conftest import RunningHub, next_event, until
from tests.homie_peer import LIGHT, HomiePeer, advertise, loopback_zeroconf



async def wait_online(session: aiohttp.ClientSession, running: RunningHub, device_id: str) -> dict[str, Any]:
    async with session.ws_connect(f"{running.url}/api/ws", headers=running.headers) as ws:
        snap = await ws.receive_json()
        assert snap["type"] == "snapshot"
        if any(d["id"] == device_id and d["online"] for d in snap["devices"]):
            return next(d for d in snap["devices"] if d["id"] == device_id)
        await next_event(ws, lambda m: m.get("type") == "availability" and m["id"] == device_id and m["online"])
    async with session.get(f"{running.url}/api/devices/{device_id}", headers=running.headers) as r:
        return await r.json()


async def test_found_by_mdns_controlled_and_confirmed(running: RunningHub, lamp: HomiePeer) -> None:
    async with aiohttp.ClientSession() as s:
        dev = await wait_online(s, running, "test-lamp")
        assert dev["name"] == "Test lamp" and dev["room"] == "Living room" and dev["driver"] == "homie"
        assert {e["name"] for e in dev["exposes"]} == {"on", "brightness", "color", "power"}
        assert dev["state"]["brightness"] == 50

        async with s.ws_connect(f"{running.url}/api/ws", headers=running.headers) as ws:
            await ws.receive_json()  # snapshot
            async with s.post(f"{running.url}/api/devices/test-lamp/set", headers=running.headers,
                              json={"on": True, "brightness": 40, "color": "#FF8800"}) as r:
                assert r.status == 200, await r.text()
                body = await r.json()
            assert body["state"]["on"] is True and body["state"]["brightness"] == 40
            assert body["state"]["color"] == "#ff8800"
            event = await next_event(ws, lambda m: m.get("type") == "state" and "brightness" in m["state"])
            assert event["state"]["brightness"] == 40

        # what the device received is Homie 5 encoding
        got = {}
        while not lamp.commands.empty():
            k, v = lamp.commands.get_nowait()
            got[k] = v
        assert got == {"light/on": "true", "light/brightness": "40", "light/color": "rgb,255,136,0"}


async def test_a_command_brings_back_only_the_devices_answer(running: RunningHub, lamp: HomiePeer) -> None:
    """The hub reads what devices say, not the `/set` commands it (or another controller) sends them:
    each would be one more message to read and acknowledge in the middle of a command's round trip."""
    async with aiohttp.ClientSession() as s:
        await wait_online(s, running, "test-lamp")
        before = running.hub.mqtt.received
        for brightness in range(20, 30):
            async with s.post(f"{running.url}/api/devices/test-lamp/set", headers=running.headers,
                              json={"brightness": brightness}) as r:
                assert r.status == 200, await r.text()
        assert running.hub.mqtt.received - before == 10  # the lamp's ten answers
    while not lamp.commands.empty():
        lamp.commands.get_nowait()
    async with aiomqtt.Client("127.0.0.1", running.broker.port) as other_controller:
        await other_controller.publish("homie/5/test-lamp/light/brightness/set", "33", qos=1)
        assert await asyncio.wait_for(lamp.commands.get(), 10) == ("light/brightness", "33")
    await until(running.hub, lambda: running.hub.registry.devices["test-lamp"].state.values.get("brightness") == 33,
                what="the lamp's answer")
    assert running.hub.mqtt.received - before == 11


@pytest.mark.parametrize("body,status,field", [
    ({"brightness": 400}, 422, "brightness"),
    ({"brightness": "dim"}, 422, "brightness"),
    ({"power": 3}, 422, "power"),
    ({"warp": 9}, 422, "warp"),
    ([1, 2], 422, "body"),
    ({}, 422, "body"),
])
async def test_invalid_commands_name_the_field(running: RunningHub, lamp: HomiePeer, body: Any, status: int,
                                              field: str) -> None:
    async with aiohttp.ClientSession() as s:
        await wait_online(s, running, "test-lamp")
        async with s.post(f"{running.url}/api/devices/test-lamp/set", headers=running.headers, json=body) as r:
            assert r.status == status
            err = await r.json()
        assert err["field"] == field and err["error"]
    assert lamp.commands.empty()  # nothing invalid reached the device


async def test_status_codes(running: RunningHub, lamp: HomiePeer) -> None:
    async with aiohttp.ClientSession() as s:
        await wait_online(s, running, "test-lamp")
        async with s.post(f"{running.url}/api/devices/nope/set", headers=running.headers, json={"on": True}) as r:
            assert r.status == 404
        async with s.post(f"{running.url}/api/devices/test-lamp/set", json={"on": True}) as r:
            assert r.status == 401
        async with s.post(f"{running.url}/api/devices/test-lamp/set", headers=running.headers,
                          data=b"{not json") as r:
            assert r.status == 422 and (await r.json())["field"] == "body"
        lamp.echo = False  # a device that never confirms
        async with s.post(f"{running.url}/api/devices/test-lamp/set", headers=running.headers,
                          json={"on": True}) as r:
            assert r.status == 504
            assert "on" in (await r.json())["error"]
        await lamp.stop()  # clean goodbye: $state disconnected
        async with s.ws_connect(f"{running.url}/api/ws", headers=running.headers) as ws:
            await ws.receive_json()
            if running.hub.registry.get("test-lamp").state.online:
                await next_event(ws, lambda m: m.get("type") == "availability" and not m["online"])
        async with s.post(f"{running.url}/api/devices/test-lamp/set", headers=running.headers,
                          json={"on": True}) as r:
            assert r.status == 409
        async with s.get(f"{running.url}/api/devices/test-lamp", headers=running.headers) as r:
            dev = await r.json()
        assert dev["online"] is False and dev["name"] == "Test lamp"  # offline, never deleted


async def test_mosquitto_pub_set_reaches_device_and_state_is_canonical(running: RunningHub, lamp: HomiePeer) -> None:
    async with aiohttp.ClientSession() as s:
        await wait_online(s, running, "test-lamp")
    port = str(running.broker.port)

    def pub(payload: str) -> None:
        subprocess.run(["mosquitto_pub", "-p", port, "-q", "1", "-t", "hub/test-lamp/set", "-m", payload],
                       check=True, timeout=10)

    def read(topic: str) -> str:
        return subprocess.run(["mosquitto_sub", "-p", port, "-t", topic, "-C", "1", "-W", "5"],
                              capture_output=True, text=True, check=True).stdout.strip()

    async with aiomqtt.Client("127.0.0.1", running.broker.port) as watcher:
        await watcher.subscribe("hub/test-lamp/set/result", qos=1)  # SUBACK awaited: nothing is missed
        results = aiter(watcher.messages)

        await asyncio.to_thread(pub, '{"brightness": 75}')
        assert await asyncio.wait_for(lamp.commands.get(), 10) == ("light/brightness", "75")
        assert json.loads((await asyncio.wait_for(anext(results), 10)).payload)["status"] == "ok"

        await asyncio.to_thread(pub, '{"brightness": 101}')
        refused = json.loads((await asyncio.wait_for(anext(results), 10)).payload)
        assert refused | {"error": ""} == {"status": "error", "code": 422, "field": "brightness",
                                           "rule": "must be <= 100", "error": ""}
    # the canonical retained topics any MQTT tool can read
    assert json.loads(await asyncio.to_thread(read, "hub/test-lamp"))["brightness"] == 75
    assert await asyncio.to_thread(read, "hub/test-lamp/availability") == "online"
    definition = json.loads(await asyncio.to_thread(read, "hub/bridge/devices/test-lamp"))
    assert definition["room"] == "Living room" and any(e["name"] == "brightness" for e in definition["exposes"])
    assert await asyncio.to_thread(read, "hub/bridge/state") == "online"


async def test_address_change_updates_and_goodbye_leaves_homie_state_in_charge(running: RunningHub) -> None:
    from tests.conftest import until
    from zeroconf.asyncio import AsyncServiceInfo
    import socket

    peer = HomiePeer(running.broker.port, "mover")
    await peer.start()
    aiozc = loopback_zeroconf()
    reg = running.hub.registry
    try:
        info = await advertise(aiozc, "mover", room="Kitchen")
        await until(running.hub, lambda: (d := reg.get("mover")) is not None and d.info.address == "127.0.0.1",
                    10, "the mDNS hint's address")
        assert reg.get("mover").state.online
        # the device moves to another address (DHCP): same identity, updated, not duplicated
        moved = AsyncServiceInfo(info.type, info.name, port=info.port, properties=info.properties,
                                 addresses=[socket.inet_aton("127.0.0.2")], server="mover-2.local.")
        await aiozc.async_update_service(moved)
        await until(running.hub, lambda: reg.get("mover").info.address == "127.0.0.2", 10, "address update")
        assert list(reg.devices) == ["mover"]
        # an mDNS goodbye (TTL 0) is only the hint leaving: Homie's $state says whether it is there
        homie, goodbye = running.hub.drivers["homie"], asyncio.Event()
        handled = homie.gone

        async def gone(device_id: str) -> None:
            await handled(device_id)
            goodbye.set()
        homie.gone = gone  # type: ignore[method-assign]
        await aiozc.async_unregister_service(moved)
        await asyncio.wait_for(goodbye.wait(), 10)  # the hub has handled the goodbye
        assert reg.get("mover").state.online
        await peer.stop()  # its will sets $state lost
        await until(running.hub, lambda: not reg.get("mover").state.online, 10, "offline when $state is lost")
        assert reg.get("mover").room == "Kitchen"
    finally:
        await peer.stop()
        await aiozc.async_close()


async def test_rename_and_move_a_device(running: RunningHub, lamp: HomiePeer) -> None:
    async with aiohttp.ClientSession() as s:
        await wait_online(s, running, "test-lamp")
        url = f"{running.url}/api/devices/test-lamp"
        async with s.patch(url, headers=running.headers, json={"name": "Sofa lamp", "room": "Den"}) as r:
            assert r.status == 200 and (await r.json())["room"] == "Den"
        async with s.patch(url, headers=running.headers, json={"colour": "red"}) as r:
            assert r.status == 422 and (await r.json())["field"] == "colour"
    async with aiomqtt.Client("127.0.0.1", running.broker.port) as c:
        await c.subscribe("hub/bridge/devices/test-lamp", qos=1)
        definition = json.loads((await asyncio.wait_for(anext(aiter(c.messages)), 10)).payload)
    assert (definition["name"], definition["room"]) == ("Sofa lamp", "Den")
    # the household's choice survives the device describing itself again
    await lamp.publish("$description", json.dumps({**LIGHT, "version": 2, "name": "Lamp v2"}))
    from tests.conftest import until
    await until(running.hub, lambda: running.hub.registry.get("test-lamp").info.name == "Lamp v2", 5, "re-described")
    assert running.hub.registry.get("test-lamp").name == "Sofa lamp"
    assert running.hub.registry.get("test-lamp").room == "Den"
