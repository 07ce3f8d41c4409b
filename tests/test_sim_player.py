"""The projector's media player: Homie 5 commands, real HTTP Range fetching, SHA-256 verification."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from firmware_sim.common.net import BrokerAddress
from firmware_sim.homie.mdns import HOMIE_SERVICE
from firmware_sim.projector.player import MediaPlayer
from hub.broker import Broker
from tests.sim_support import observe

MEDIA = os.urandom(1024 * 1024 + 12345)
SHA = hashlib.sha256(MEDIA).hexdigest()
TOPIC = "homie/5/proj-player/player"
EMPTY = b"\x00"  # Homie 5 "Empty string values": "" travels as one 0x00 byte


class MediaServer:
    """A small HTTP server with Range support that records what it was asked."""

    def __init__(self) -> None:
        self.ranges: list[str | None] = []
        self.claimed_sha = SHA
        self.duration_ms: str | None = "2000"
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        rng = request.headers.get("Range")
        self.ranges.append(rng)
        headers = {"ETag": '"v1"', "Accept-Ranges": "bytes", "X-Content-SHA256": self.claimed_sha}
        if self.duration_ms:
            headers["X-Media-Duration-Ms"] = self.duration_ms
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if not m:
            return web.Response(body=MEDIA, headers=headers)
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else len(MEDIA) - 1, len(MEDIA) - 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(MEDIA)}"
        return web.Response(status=206, body=MEDIA[start:end + 1], headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/media.bin", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/media.bin"


@pytest.fixture
async def server() -> AsyncIterator[MediaServer]:
    s = MediaServer()
    await s.start()
    try:
        yield s
    finally:
        assert s.runner is not None
        await s.runner.cleanup()


async def make_player(broker: Broker, tmp_path: Path, speed: float = 10.0,
                      aiozc: AsyncZeroconf | None = None) -> MediaPlayer:
    player = MediaPlayer("proj-player", "Projector player", mac="AA:BB:CC:DD:EE:01",
                         broker=BrokerAddress(broker.host, broker.port), room="Living room",
                         speed=speed, state_dir=tmp_path / "state", aiozc=aiozc)
    await player.start()
    await asyncio.wait_for(player.ready.wait(), 10)  # $state = ready: subscribed to /set
    return player


async def test_play_fetches_with_range_and_verifies(broker: Broker, tmp_path: Path, server: MediaServer) -> None:
    player = await make_player(broker, tmp_path)
    try:
        async with observe(broker.host, broker.port, f"{TOPIC}/#", "homie/5/proj-player/$description") as obs:
            doc = await obs.json("homie/5/proj-player/$description")
            assert doc["type"] == "media-player"
            props = doc["nodes"]["player"]["properties"]
            assert props["command"] == {"name": "Command", "datatype": "enum", "format": "play,pause,stop",
                                        "settable": True, "retained": False}
            assert props["volume"]["format"] == "0:100" and props["url"]["settable"] is True
            await obs.publish(f"{TOPIC}/volume/set", "65")
            await obs.wait_for(f"{TOPIC}/volume", "65")
            await obs.publish(f"{TOPIC}/url/set", server.url)
            await obs.wait_for(f"{TOPIC}/url", server.url)
            await obs.publish(f"{TOPIC}/command/set", "play")
            await obs.wait_for(f"{TOPIC}/state", "playing")
            await obs.wait_for(f"{TOPIC}/verified", SHA, timeout=20)
            await obs.wait_for(f"{TOPIC}/state", "stopped")
            assert obs.latest[f"{TOPIC}/duration"] == b"2000"
            assert obs.latest[f"{TOPIC}/position"] == b"2000"
            assert obs.latest[f"{TOPIC}/error"] == EMPTY
        assert len(server.ranges) >= 5 and all(r and r.startswith("bytes=") for r in server.ranges)
    finally:
        await player.stop()


async def test_wrong_server_checksum_sets_error(broker: Broker, tmp_path: Path, server: MediaServer) -> None:
    server.claimed_sha = "0" * 64
    server.duration_ms = None  # duration from the fixed bitrate: ~1 s for 1 MiB at 8 Mbit/s
    player = await make_player(broker, tmp_path)
    try:
        async with observe(broker.host, broker.port, f"{TOPIC}/#") as obs:
            await obs.publish(f"{TOPIC}/url/set", server.url)
            await obs.wait_for(f"{TOPIC}/url", server.url)
            await obs.publish(f"{TOPIC}/command/set", "play")
            await obs.wait_for(f"{TOPIC}/verified", SHA, timeout=20)
            error = await obs.wait_for(f"{TOPIC}/error", lambda p: b"mismatch" in p)
            assert SHA.encode() in error
            assert int(obs.latest[f"{TOPIC}/duration"]) == len(MEDIA) * 8 * 1000 // 8_000_000
    finally:
        await player.stop()


async def test_pause_then_resume_still_verifies(broker: Broker, tmp_path: Path, server: MediaServer) -> None:
    server.duration_ms = "6000"
    player = await make_player(broker, tmp_path, speed=3.0)
    try:
        async with observe(broker.host, broker.port, f"{TOPIC}/#") as obs:
            await obs.publish(f"{TOPIC}/url/set", server.url)
            await obs.wait_for(f"{TOPIC}/url", server.url)
            await obs.publish(f"{TOPIC}/command/set", "play")
            await obs.wait_for(f"{TOPIC}/position", lambda p: int(p) >= 1000)
            await obs.publish(f"{TOPIC}/command/set", "pause")
            await obs.wait_for(f"{TOPIC}/state", "paused")
            paused_at = int(obs.latest[f"{TOPIC}/position"])
            assert 0 < paused_at < 6000
            requests_when_paused = len(server.ranges)
            await obs.publish(f"{TOPIC}/command/set", "play")
            await obs.wait_for(f"{TOPIC}/verified", SHA, timeout=20)
            assert obs.latest[f"{TOPIC}/error"] == EMPTY
            assert len(server.ranges) > requests_when_paused
            assert all(r and not r.startswith("bytes=0-") for r in server.ranges[requests_when_paused:])
    finally:
        await player.stop()


async def test_http_errors_and_missing_url_are_reported(broker: Broker, tmp_path: Path, server: MediaServer) -> None:
    player = await make_player(broker, tmp_path)
    try:
        async with observe(broker.host, broker.port, f"{TOPIC}/#") as obs:
            await obs.wait_for(f"{TOPIC}/state", "stopped")
            await obs.publish(f"{TOPIC}/command/set", "play")
            await obs.wait_for(f"{TOPIC}/error", "no url to play")
            await obs.publish(f"{TOPIC}/url/set", server.url.replace("media.bin", "missing.bin"))
            await obs.wait_for(f"{TOPIC}/error", EMPTY.decode())
            await obs.publish(f"{TOPIC}/command/set", "play")
            await obs.wait_for(f"{TOPIC}/error", lambda p: p.startswith(b"HTTP 404"))
            await obs.wait_for(f"{TOPIC}/state", "stopped")
            await obs.publish(f"{TOPIC}/command/set", "rewind")  # not in the enum: ignored
            await obs.publish(f"{TOPIC}/volume/set", "101")
            await obs.publish(f"{TOPIC}/volume/set", "20")
            await obs.wait_for(f"{TOPIC}/volume", "20")
    finally:
        await player.stop()


async def test_player_is_advertised_with_the_projector_mac(broker: Broker, tmp_path: Path) -> None:
    zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    peer = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    player = await make_player(broker, tmp_path, aiozc=zc)
    try:
        info = AsyncServiceInfo(HOMIE_SERVICE, f"Projector player.{HOMIE_SERVICE}")
        assert await info.async_request(peer.zeroconf, 5000)
        props = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        assert props["mac"] == "aa:bb:cc:dd:ee:01" and props["type"] == "media-player"
        assert props["id"] == "proj-player" and props["topic"] == "homie/5/proj-player"
    finally:
        await player.stop()
        await peer.async_close()
        await zc.async_close()
