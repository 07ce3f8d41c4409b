"""The inbox: a device seen for the first time waits until the household names, places or ignores it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import aiomqtt
import pytest
import sqlite_utils

from hub.model import Binary, DeviceInfo
from hub.registry import Registry
from hub.store import Store
from tests.conftest import RunningHub
from tests.homie_peer import HomiePeer, advertise, loopback_zeroconf
from tests.test_homie_e2e import wait_online


def _info(device_id: str) -> DeviceInfo:
    return DeviceInfo(id=device_id, name=device_id.title(), driver="homie", exposes=(Binary(name="on"),))


async def _registry(path: Path, **kw) -> tuple[Store, Registry]:
    store = Store(path)
    await store.start()
    registry = Registry(store, **kw)
    await registry.start()
    return store, registry


async def _close(store: Store, registry: Registry) -> None:
    await registry.stop()
    await store.stop()


async def test_devices_known_before_the_inbox_existed_are_not_in_it(tmp_path: Path) -> None:
    db = sqlite_utils.Database(tmp_path / "hub.db")  # a database from before the inbox columns
    db["devices"].insert({"id": "old-lamp", "driver": "homie", "name": "Old lamp", "model": "", "manufacturer": "",
                          "room": "Den", "address": "", "exposes": "[]", "error": "", "user_name": "",
                          "user_room": "", "first_seen": 1.0, "last_seen": 100.0}, pk="id")
    db.conn.close()
    store, registry = await _registry(tmp_path / "hub.db")
    try:
        old = registry.get("old-lamp").to_json()
        assert (old["inbox"], old["ignored"], old["last_seen"]) == (False, False, 100.0)
        dev, added, _ = registry.upsert(_info("new-lamp"), now=200.0)
        assert added and dev.to_json()["inbox"] is True
    finally:
        await _close(store, registry)


async def test_ignored_stays_ignored_and_named_leaves_the_inbox_across_restarts(tmp_path: Path) -> None:
    store, registry = await _registry(tmp_path / "hub.db")
    for device_id in ("neighbours-tv", "hall-lamp", "attic-plug"):
        registry.upsert(_info(device_id), now=1.0)
    await registry.rename("neighbours-tv", None, None, ignored=True)
    await registry.rename("hall-lamp", "Hall lamp", None)
    await _close(store, registry)

    store, registry = await _registry(tmp_path / "hub.db")
    try:
        tv, lamp, plug = (registry.get(i).to_json() for i in ("neighbours-tv", "hall-lamp", "attic-plug"))
        assert (tv["ignored"], tv["inbox"]) == (True, False)
        assert (lamp["name"], lamp["inbox"], lamp["ignored"]) == ("Hall lamp", False, False)
        assert (plug["inbox"], plug["ignored"]) == (True, False)
        # seen again with a new description: still the household's choices
        registry.upsert(DeviceInfo(id="neighbours-tv", name="TV v2", driver="homie", exposes=()), now=2.0)
        registry.upsert(_info("attic-plug"), now=2.0)
        assert registry.get("neighbours-tv").ignored and registry.get("attic-plug").inbox
    finally:
        await _close(store, registry)


async def test_a_configured_hub_accepts_new_devices_outright(tmp_path: Path) -> None:
    store, registry = await _registry(tmp_path / "hub.db", inbox=False)  # what `hub demo` does
    try:
        dev, _, _ = registry.upsert(_info("sim-lamp"), now=1.0)
        assert dev.to_json()["inbox"] is False
    finally:
        await _close(store, registry)


@pytest.mark.inbox
async def test_new_device_lands_in_the_inbox_is_named_and_the_name_shows_on_mqtt(running: RunningHub) -> None:
    peer = HomiePeer(running.broker.port, device_id="porch-lamp")
    await peer.start()
    aiozc = loopback_zeroconf()
    await advertise(aiozc, peer.id, room="")
    try:
        async with aiohttp.ClientSession(headers=running.headers) as s:
            dev = await wait_online(s, running, "porch-lamp")
            assert (dev["inbox"], dev["ignored"]) == (True, False)
            assert isinstance(dev["last_seen"], float)
            url = f"{running.url}/api/devices/porch-lamp"
            async with s.patch(url, json={"inbox": True}) as r:  # only the hub puts a device in
                assert r.status == 422 and (await r.json())["field"] == "inbox"
            async with s.patch(url, json={"ignored": "perhaps"}) as r:
                assert r.status == 422 and (await r.json())["field"] == "ignored"
            async with s.patch(url, json={"name": "Porch lamp", "room": "Garden"}) as r:
                assert r.status == 200, await r.text()
                body = await r.json()
            assert (body["name"], body["room"], body["inbox"], body["ignored"]) == ("Porch lamp", "Garden", False, False)
            async with s.get(f"{running.url}/api/devices") as r:
                listed = {d["id"]: d for d in await r.json()}
            assert listed["porch-lamp"]["inbox"] is False
        async with aiomqtt.Client("127.0.0.1", running.broker.port) as c:
            await c.subscribe("hub/bridge/devices/porch-lamp", qos=1)
            definition = json.loads((await asyncio.wait_for(anext(aiter(c.messages)), 10)).payload)
        assert (definition["name"], definition["room"]) == ("Porch lamp", "Garden")

        async with aiohttp.ClientSession(headers=running.headers) as s:
            async with s.patch(f"{running.url}/api/devices/porch-lamp", json={"ignored": True}) as r:
                assert r.status == 200 and (await r.json())["ignored"] is True
            async with s.get(f"{running.url}/api/devices/porch-lamp") as r:
                assert (await r.json())["ignored"] is True  # still in the API, flagged
    finally:
        await peer.stop()
        await aiozc.async_close()


async def test_a_rename_racing_a_forget_says_the_device_is_gone(running: RunningHub) -> None:
    """Found by schemathesis: a PATCH while another request forgets the same device was a 500."""
    from hub.commands import DeviceNotFound
    from hub.model import Access

    hub = running.hub
    hub.device_found(DeviceInfo(id="racer", name="Racer", driver="homie",
                                exposes=(Binary(name="on", access=Access.STATE | Access.SET),)))
    rename = asyncio.create_task(hub.rename_device("racer", "Renamed", None))
    await asyncio.sleep(0)  # the rename now waits for its save
    await hub.forget_device("racer")
    with pytest.raises(DeviceNotFound):
        await rename  # not a rename of a device that no longer exists
    with pytest.raises(DeviceNotFound):
        await hub.rename_device("racer", "Again", None)  # was a KeyError (500)
    async with aiohttp.ClientSession(running.url, headers=running.headers) as s:
        async with s.patch("/api/devices/racer", json={"name": "x"}) as r:
            assert r.status == 404
