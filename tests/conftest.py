"""Shared fixtures: every test runs inside a network namespace with loopback only."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.broker import Broker, free_port
from hub.config import HubConfig
from hub.core import Hub
from hub.service import running_hub
from hub.accounts import create_token, create_user
from tests.homie_peer import HomiePeer, advertise, loopback_zeroconf
from tests.media_fakecloud import FakeCloud

pytest_plugins = ["hub.conformance"]  # the driver conformance kit (tests/test_conformance.py)


def pytest_configure(config: pytest.Config) -> None:
    # mDNS and PJLink broadcasts must never leave this machine: refuse to run outside the
    # namespace that scripts/in-netns makes (make test uses it).
    if os.environ.get("HUB_IN_NETNS") != "1":
        raise pytest.UsageError("run the tests inside scripts/in-netns (make test does this)")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private Mosquitto on a free loopback port, stopped after the test."""
    b = Broker(tmp_path / "broker", embedded=False)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
async def lamp(broker: Broker) -> AsyncIterator[HomiePeer]:
    """The test lamp (Homie 5) on the test broker, advertised by mDNS in the living room."""
    peer = HomiePeer(broker.port)
    await peer.start()
    aiozc = loopback_zeroconf()
    await advertise(aiozc, peer.id, room="Living room")
    try:
        yield peer
    finally:
        await peer.stop()
        await aiozc.async_close()


OWNER = "owner"
OWNER_PASSWORD = "correct horse battery"


@dataclass
class RunningHub:
    hub: Hub
    url: str
    token: str  # an owner's API token
    broker: Broker
    user: str = OWNER
    password: str = OWNER_PASSWORD

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def hub_config(tmp_path: Path, broker: Broker, *, inbox: bool = True) -> HubConfig:
    """A test hub's config: the test broker, a free loopback port, mDNS on loopback."""
    return HubConfig(
        inbox=inbox,
        data_dir=tmp_path / "data",
        mqtt={"url": broker.url, "keepalive": 5},
        http={"host": "127.0.0.1", "port": free_port()},
        discovery={"interfaces": ["127.0.0.1"]},
        command_timeout=3.0,
    )


@pytest.fixture
async def running(request: pytest.FixtureRequest, tmp_path: Path, broker: Broker) -> AsyncIterator[RunningHub]:
    """The hub with its web server and an owner (user and API token), on the test broker.

    The devices a test starts are the household's own, accepted into their rooms as in the
    demo; a test marked `inbox` gets a real install's inbox, where new devices wait."""
    config = hub_config(tmp_path, broker, inbox=request.node.get_closest_marker("inbox") is not None)
    create_user(config.data_dir / "hub.db", OWNER, OWNER_PASSWORD, "owner")
    token = create_token(config.data_dir / "hub.db", "tests")
    async with running_hub(config) as (hub, url):
        await hub.mqtt.wait_connected(10)
        yield RunningHub(hub, url, token, broker)


async def next_event(ws: aiohttp.ClientWebSocketResponse, pred: Callable[[dict[str, Any]], bool],
                     timeout: float = 15) -> dict[str, Any]:
    """The next WebSocket event of the hub's /api/ws that pred() accepts."""
    async def loop() -> dict[str, Any]:
        while True:
            msg = await ws.receive_json()
            if pred(msg):
                return msg
    return await asyncio.wait_for(loop(), timeout)


async def until(hub: Hub, pred: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    """Wait until pred() holds, re-checking after each hub event (no polling, no sleeps)."""
    if not await hub.bus.wait_until(pred, timeout):
        raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def cloud() -> AsyncIterator[FakeCloud]:
    """The media tests' own fault-injecting cloud (independent of firmware_sim's)."""
    c = FakeCloud()
    await c.start()
    yield c
    await c.stop()
