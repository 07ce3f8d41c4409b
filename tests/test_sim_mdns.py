"""mDNS: devices advertised as `_homie._tcp`, broker found through `_mqtt._tcp` (loopback only)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from firmware_sim.common.net import MQTT_SERVICE, discover_broker, instance_name, mqtt_service_info, parse_broker_url
from firmware_sim.homie.house import House, parse_house
from firmware_sim.homie.mdns import HOMIE_SERVICE
from hub.broker import Broker
from tests.sim_support import observe

HOUSE = """
[[device]]
id = "hall-light"
name = "Hall light"
type = "light"
room = "Hallway"

[[device]]
id = "front-lock"
name = "Front door lock"
type = "lock"
room = "Hallway"

[[device]]
id = "office-plug"
name = "Office plug"
type = "plug"
room = "Office"
"""


@pytest.fixture
async def peer() -> AsyncIterator[AsyncZeroconf]:
    """An independent zeroconf instance, as the hub (or any LAN peer) would have."""
    zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        yield zc
    finally:
        await zc.async_close()


class Watcher:
    """Browses a service type and resolves what appears."""

    def __init__(self, zc: AsyncZeroconf, service_type: str) -> None:
        self.zc = zc
        self.type = service_type
        self.found: dict[str, AsyncServiceInfo] = {}
        self.removed: set[str] = set()
        self.changed = asyncio.Condition()
        self.tasks: set[asyncio.Task[None]] = set()
        self.browser = AsyncServiceBrowser(zc.zeroconf, service_type, handlers=[self._on_change])

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        task = asyncio.create_task(self._record(name, state_change))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _record(self, name: str, change: ServiceStateChange) -> None:
        if change is ServiceStateChange.Removed:
            async with self.changed:
                self.removed.add(name)
                self.changed.notify_all()
            return
        info = AsyncServiceInfo(self.type, name)
        if await info.async_request(self.zc.zeroconf, 3000):
            async with self.changed:
                self.found[name] = info
                self.changed.notify_all()

    async def wait(self, predicate, timeout: float = 15.0) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), timeout)

    async def close(self) -> None:
        await self.browser.async_cancel()
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def txt(info: AsyncServiceInfo) -> dict[str, str]:
    return {k.decode(): (v or b"").decode() for k, v in info.properties.items()}


async def test_devices_are_advertised_with_contract_txt_and_say_goodbye(
        broker: Broker, tmp_path: Path, peer: AsyncZeroconf) -> None:
    watcher = Watcher(peer, HOMIE_SERVICE)
    house = House(parse_house(HOUSE), broker_url=broker.url, state_dir=tmp_path, mdns=True)
    try:
        await house.start()
        await watcher.wait(lambda: len(watcher.found) >= 3)
        by_id = {txt(i)["id"]: i for i in watcher.found.values()}
        assert set(by_id) == {"hall-light", "front-lock", "office-plug"}
        lock = by_id["front-lock"]
        assert lock.name == f"Front door lock.{HOMIE_SERVICE}"
        assert txt(lock) == {"txtvers": "1", "id": "front-lock", "topic": "homie/5/front-lock",
                             "room": "Hallway", "type": "lock"}
        assert lock.port == broker.port
        assert lock.parsed_addresses(IPVersion.V4Only) == ["127.0.0.1"]
        assert txt(by_id["office-plug"])["type"] == "plug"
        # the advertised topic leads to a live Homie device
        async with observe(broker.host, broker.port, f"{txt(lock)['topic']}/$state") as obs:
            await obs.wait_for(f"{txt(lock)['topic']}/$state", "ready")
        await house.stop()
        await watcher.wait(lambda: len(watcher.removed) >= 3)  # goodbye packets, not TTL expiry
    finally:
        await house.stop()
        await watcher.close()


async def test_house_finds_the_broker_through_mqtt_tcp(broker: Broker, tmp_path: Path, peer: AsyncZeroconf) -> None:
    info = mqtt_service_info("127.0.0.1", broker.port, name="Test hub broker")
    await peer.async_register_service(info)
    house = House(parse_house(HOUSE), broker_url=None, state_dir=tmp_path, mdns=True, discovery_timeout=15)
    try:
        await house.start()
        assert house.broker is not None and house.broker.port == broker.port
        async with observe(broker.host, broker.port, "homie/5/+/$state") as obs:
            for device_id in ("hall-light", "front-lock", "office-plug"):
                await obs.wait_for(f"homie/5/{device_id}/$state", "ready")
    finally:
        await house.stop()
        await peer.async_unregister_service(info)


async def test_no_broker_advertised_is_a_clear_timeout(peer: AsyncZeroconf) -> None:
    with pytest.raises(TimeoutError, match="--broker"):
        await discover_broker(peer, timeout=1.5)
    assert MQTT_SERVICE == "_mqtt._tcp.local."


def test_broker_urls_and_instance_names() -> None:
    assert parse_broker_url("mqtt://127.0.0.1:1884").port == 1884
    assert parse_broker_url("localhost").port == 1883
    assert parse_broker_url("tcp://h:5").host == "h"
    for bad in ("http://x:1", "mqtt://", "mqtt://h:notaport"):
        with pytest.raises(ValueError):
            parse_broker_url(bad)
    long = "Très long nom " * 10
    assert len(instance_name(long).encode()) <= 63
    assert instance_name("a.b") == "a b"


async def test_sigterm_while_looking_for_the_broker_exits_cleanly(tmp_path: Path) -> None:
    import os
    import signal
    import sys

    house_file = tmp_path / "house.toml"
    house_file.write_text(HOUSE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_sim.cli", "house", "--file", str(house_file), "--state-dir",
        str(tmp_path / "state"), env=env, stderr=asyncio.subprocess.PIPE)
    try:
        async def wait_line() -> None:
            assert proc.stderr is not None
            while b"looking for an MQTT broker" not in await proc.stderr.readline():
                pass
        await asyncio.wait_for(wait_line(), 15)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
