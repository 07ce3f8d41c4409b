"""HA discovery on a real Mosquitto: retained configs, renames, HA's birth, prefix, off switch, forgetting."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import sqlite_utils

from hub.accounts import create_token, create_user
from hub.broker import Broker
from hub.config import HomeAssistantConfig, HubConfig, load_config
from hub.service import running_hub
from tests.conftest import OWNER, OWNER_PASSWORD, RunningHub, hub_config, until
from tests.homie_peer import HomiePeer, advertise, loopback_zeroconf
from tests.sim_support import observe

CONFIG_TOPIC = "homeassistant/device/test-lamp/config"


async def hub_with(tmp_path: Path, broker: Broker, **homeassistant: Any) -> AsyncIterator[RunningHub]:
    config = hub_config(tmp_path, broker).model_copy(
        update={"homeassistant": HomeAssistantConfig(**homeassistant)})
    if not (config.data_dir / "hub.db").exists():
        create_user(config.data_dir / "hub.db", OWNER, OWNER_PASSWORD, "owner")
    token = create_token(config.data_dir / "hub.db", "tests")
    async with running_hub(config) as (hub, url):
        await hub.mqtt.wait_connected(10)
        if hub.homeassistant is not None:
            hub.homeassistant.delay = lambda: 0.0  # answer HA's birth at once
        yield RunningHub(hub, url, token, broker)


async def no_retained(broker: Broker, *topics: str) -> None:
    """None of `topics` holds a retained message (a marker published after subscribing is the barrier)."""
    async with observe("127.0.0.1", broker.port, *topics, "test/marker") as fresh:
        await fresh.publish("test/marker", "x")
        await fresh.wait_for("test/marker")
        held = {t: p for t, p in fresh.latest.items() if t != "test/marker" and p}
        assert not held, held


async def test_a_found_device_gets_a_retained_config_that_follows_renames(tmp_path: Path, broker: Broker) -> None:
    async for running in hub_with(tmp_path, broker):
        async with observe("127.0.0.1", broker.port, "homeassistant/#") as ha:
            peer = HomiePeer(broker.port)
            await peer.start()
            aiozc = loopback_zeroconf()
            await advertise(aiozc, peer.id, room="Living room")
            try:
                # found on the broker first; the room comes with its mDNS record
                config = json.loads(await ha.wait_for(CONFIG_TOPIC, lambda p: b"Living room" in p))
                assert config["dev"]["name"] == "Test lamp" and config["dev"]["suggested_area"] == "Living room"
                assert {c["p"] for c in config["cmps"].values()} == {"light", "sensor"}

                await running.hub.rename_device("test-lamp", "Sofa lamp", "Lounge")
                renamed = json.loads(await ha.wait_for(CONFIG_TOPIC, lambda p: b"Sofa lamp" in p))
                assert renamed["dev"]["suggested_area"] == "Lounge"
                published = ha.count(CONFIG_TOPIC)

                # HA's birth (e.g. after its restart): every config again, even unchanged
                await ha.publish("homeassistant/status", "online")
                await ha.wait_count(CONFIG_TOPIC, published + 1)
            finally:
                await peer.stop()
                await aiozc.async_close()
        # a late subscriber (HA starting after the hub) gets it retained
        async with observe("127.0.0.1", broker.port, CONFIG_TOPIC) as late:
            assert b"Sofa lamp" in await late.wait_for(CONFIG_TOPIC)


async def test_the_prefix_is_configurable(tmp_path: Path, broker: Broker, lamp: HomiePeer) -> None:
    async for running in hub_with(tmp_path, broker, prefix="ha/test"):
        async with observe("127.0.0.1", broker.port, "ha/test/#") as ha:
            await ha.wait_for("ha/test/device/test-lamp/config")
            published = ha.count("ha/test/device/test-lamp/config")
            await ha.publish("ha/test/status", "online")
            await ha.wait_count("ha/test/device/test-lamp/config", published + 1)
        await no_retained(broker, "homeassistant/#")


async def test_switched_off_it_removes_what_an_earlier_run_published(
        tmp_path: Path, broker: Broker, lamp: HomiePeer) -> None:
    async for running in hub_with(tmp_path, broker):
        async with observe("127.0.0.1", broker.port, CONFIG_TOPIC) as o:
            await o.wait_for(CONFIG_TOPIC)
    async for running in hub_with(tmp_path, broker, discovery=False):
        async with observe("127.0.0.1", broker.port, "hub/bridge/devices/test-lamp") as o:
            await o.wait_for("hub/bridge/devices/test-lamp")  # republished on connect, as the removal is
        await running.hub.rename_device("test-lamp", "Sofa lamp", None)  # no config for this either
        async with observe("127.0.0.1", broker.port, "hub/bridge/devices/test-lamp") as o:
            await o.wait_for("hub/bridge/devices/test-lamp", lambda p: b"Sofa lamp" in p)
        await no_retained(broker, "homeassistant/#")


def test_the_config_section() -> None:
    assert HubConfig().homeassistant.discovery is True and HubConfig().homeassistant.prefix == "homeassistant"
    cfg = load_config(environ={"HUB_HOMEASSISTANT_DISCOVERY": "false", "HUB_HOMEASSISTANT_PREFIX": "ha"})
    assert (cfg.homeassistant.discovery, cfg.homeassistant.prefix) == (False, "ha")


async def test_forgetting_a_device_clears_it_everywhere_and_it_can_come_back(
        tmp_path: Path, broker: Broker, lamp: HomiePeer) -> None:
    topics = ["hub/test-lamp", "hub/test-lamp/availability", "hub/bridge/devices/test-lamp", CONFIG_TOPIC]
    async for running in hub_with(tmp_path, broker):
        hub = running.hub
        # found on the broker, then placed by its mDNS record: both done before it is forgotten
        await until(hub, lambda: (d := hub.registry.get("test-lamp")) is not None and d.state.online
                    and d.room == "Living room", 10, "lamp")
        await running.hub.registry.flush()
        async with observe("127.0.0.1", broker.port, *topics) as o:
            for t in topics:
                await o.wait_for(t)
        async with aiohttp.ClientSession(headers=running.headers) as s:
            with hub.bus.subscribe() as events:
                async with s.delete(f"{running.url}/api/devices/test-lamp") as r:
                    assert r.status == 204
                assert (await events.get()).to_json() == {"type": "device_removed", "id": "test-lamp"}
            async with s.delete(f"{running.url}/api/devices/test-lamp") as r:
                assert r.status == 404
            async with s.get(f"{running.url}/api/devices/test-lamp") as r:
                assert r.status == 404
            async with s.get(f"{running.url}/api/openapi.json") as r:
                assert "204" in (await r.json())["paths"]["/api/devices/{id}"]["delete"]["responses"]
            async with s.delete(f"{running.url}/api/devices/test-lamp", headers={"Authorization": ""}) as r:
                assert r.status == 401
        await no_retained(broker, *topics)
        db = sqlite_utils.Database(tmp_path / "data" / "hub.db")
        assert db.execute("select count(*) from devices where id = 'test-lamp'").fetchone()[0] == 0
        assert db.execute("select count(*) from device_state where id = 'test-lamp'").fetchone()[0] == 0
        db.close()

        await lamp.publish("light/power", "12.5")  # still talking, but forgotten: ignored
        await lamp.stop()
        await lamp.start()  # back: describes itself again, so it is found anew
        await until(hub, lambda: (d := hub.registry.get("test-lamp")) is not None and d.state.online, 10,
                    "the lamp found anew")
        async with observe("127.0.0.1", broker.port, CONFIG_TOPIC) as o:
            assert json.loads(await o.wait_for(CONFIG_TOPIC))["dev"]["name"] == "Test lamp"


async def test_a_device_the_household_ignores_leaves_home_assistant(
        tmp_path: Path, broker: Broker, lamp: HomiePeer) -> None:
    async for running in hub_with(tmp_path, broker):
        async with observe("127.0.0.1", broker.port, CONFIG_TOPIC) as ha:
            await ha.wait_for(CONFIG_TOPIC)
            async with aiohttp.ClientSession(headers=running.headers) as s:
                async with s.patch(f"{running.url}/api/devices/test-lamp", json={"ignored": True}) as r:
                    assert r.status == 200, await r.text()
                await ha.wait_for(CONFIG_TOPIC, "")  # removed from HA
                async with s.patch(f"{running.url}/api/devices/test-lamp", json={"ignored": False}) as r:
                    assert r.status == 200
                await ha.wait_for(CONFIG_TOPIC, lambda p: b"Test lamp" in p)  # and back
