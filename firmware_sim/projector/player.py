"""The projector's media player: a Homie 5 device (type `media-player`) that really fetches media.

Use (from firmware_sim.projector.runtime)::

    player = MediaPlayer("projector-player", "Projector player", mac="aa:bb:cc:dd:ee:ff",
                         broker=BrokerAddress("127.0.0.1", 1883), room="Living room",
                         speed=1.0, state_dir=Path("/tmp/state"), aiozc=zc_or_None)
    await player.start()      # connects (own MQTT connection, LWT lost), advertises _homie._tcp
    await player.ready.wait() # $state = ready
    ...
    await player.stop()       # $state = disconnected, mDNS goodbye, state saved

Node `player`: `url` (string, settable), `command` (enum play,pause,stop, settable, not
retained), `state` (playing,paused,stopped), `position`/`duration` (ms), `volume` (0..100,
settable), `error` (string), `verified` (sha256 hex of every byte received).

On `play` it GETs the URL in chunks with `Range: bytes=a-b` (RFC 9110 §14.2; `If-Range` with
the first strong ETag, §13.1.5), keeping at most a few seconds ahead of the playback clock.
The duration comes from `X-Media-Duration-Ms` or, without it, from a fixed bitrate. When
playback reaches the end, `verified` gets the SHA-256 of the bytes, and `error` is set if the
server sent an `X-Content-SHA256` that differs. `--speed` multiplies the pace.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from zeroconf.asyncio import AsyncZeroconf

from firmware_sim.common.clock import SimClock
from firmware_sim.common.net import Advertiser, BrokerAddress
from firmware_sim.common.state import StateStore
from firmware_sim.homie import BaseModel, DeviceConfig, HomieDevice, Node, Update, declare, homie_service_info

log = logging.getLogger(__name__)

_CONTENT_RANGE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+|\*)", re.ASCII)
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", re.ASCII)


class PlayerModel(BaseModel):
    """The player's Homie properties; playback itself is driven by MediaPlayer."""

    kind = "media-player"
    PERSIST = ("player/url", "player/volume")

    def build_nodes(self) -> tuple[Node, ...]:
        return (Node("player", "Media player", "media-player", (
            declare("url", "URL", "string", settable=True),
            declare("state", "State", "enum", "playing,paused,stopped"),
            declare("command", "Command", "enum", "play,pause,stop", True, retained=False),
            declare("position", "Position", "integer", "0:", unit="ms"),
            declare("duration", "Duration", "integer", "0:", unit="ms"),
            declare("volume", "Volume", "integer", "0:100", True, "%"),
            declare("error", "Error", "string"),
            declare("verified", "Verified SHA-256", "string"),
        )),)

    def setup(self) -> None:
        self.values = {("player", "url"): "", ("player", "state"): "stopped", ("player", "position"): 0,
                       ("player", "duration"): 0, ("player", "volume"): 50, ("player", "error"): "",
                       ("player", "verified"): ""}

    def command(self, node: str, prop: str, value: Any, now: float) -> list[Update]:
        if prop == "command":
            return [Update("player", "command", value)]  # echo; MediaPlayer acts on it
        return super().command(node, prop, value, now)


def parse_content_range(header: str | None) -> tuple[int, int, int | None] | None:
    """`bytes a-b/total` (RFC 9110 §14.4) -> (a, b, total or None)."""
    m = _CONTENT_RANGE.fullmatch(header or "")
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), None if m.group(3) == "*" else int(m.group(3))


class MediaPlayer:
    """A Homie media player with its own MQTT connection; `start()`/`stop()` own everything."""

    CHUNK = 256 * 1024
    AHEAD_MS = 3000
    DEFAULT_BITRATE = 8_000_000  # bit/s, used when the server gives no duration
    HTTP_TIMEOUT = 15.0
    RETRIES = 3

    def __init__(self, device_id: str, name: str, *, mac: str, broker: BrokerAddress, room: str = "",
                 speed: float = 1.0, state_dir: Path | None = None, aiozc: AsyncZeroconf | None = None,
                 interface: str = "127.0.0.1", keepalive: int = 10) -> None:
        mac = mac.lower()
        if not _MAC.fullmatch(mac):
            raise ValueError(f"bad MAC address {mac!r}")
        self.mac = mac
        self.interface = interface
        self.broker = broker
        self.aiozc = aiozc
        self.clock = SimClock(speed)
        self.model = PlayerModel()
        config = DeviceConfig(device_id, name, room, broker.host, broker.port, keepalive)
        store = StateStore(state_dir) if state_dir is not None else None
        self.device = HomieDevice(config, self.model, self.clock, store, on_command=self._on_command)
        self._session: aiohttp.ClientSession | None = None
        self._advertiser: Advertiser | None = None
        self._playback: asyncio.Task[None] | None = None
        self._actions: set[asyncio.Task[None]] = set()
        self._act_lock = asyncio.Lock()  # commands take effect one at a time, in arrival order
        self._reset_media()

    @property
    def ready(self) -> asyncio.Event:
        return self.device.ready

    def value(self, prop: str) -> Any:
        return self.model.get("player", prop)

    def _reset_media(self) -> None:
        self._offset = 0
        self._size: int | None = None
        self._etag: str | None = None
        self._expected_sha: str | None = None
        self._hash = hashlib.sha256()
        self._duration_ms = 0
        self._position_ms = 0.0

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.HTTP_TIMEOUT))
        await self.device.start()
        if self.aiozc is not None:
            self._advertiser = Advertiser(self.aiozc)
            cfg = self.device.config
            await self._advertiser.register([homie_service_info(
                cfg.name, cfg.device_id, cfg.room, self.model.kind, self.interface, self.broker.port,
                {"mac": self.mac})])

    async def stop(self) -> None:
        await self._cancel_playback()
        for task in list(self._actions):
            task.cancel()
        await asyncio.gather(*self._actions, return_exceptions=True)
        if self._advertiser is not None:
            await self._advertiser.unregister()
            self._advertiser = None
        await self.device.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- commands

    def _on_command(self, node: str, prop: str, value: Any) -> None:
        task = asyncio.create_task(self._act(prop, value))
        self._actions.add(task)
        task.add_done_callback(self._actions.discard)

    async def _act(self, prop: str, value: Any) -> None:
        async with self._act_lock:
            await self._act_now(prop, value)

    async def _act_now(self, prop: str, value: Any) -> None:
        if prop == "url":
            await self._cancel_playback()
            self._reset_media()
            await self._set(state="stopped", position=0, duration=0, error="", verified="")
        elif prop == "command" and value == "play":
            await self.play()
        elif prop == "command" and value == "pause":
            if self.value("state") == "playing":
                await self._cancel_playback()
                await self._set(state="paused", position=int(self._position_ms))
        elif prop == "command" and value == "stop":
            await self._cancel_playback()
            self._reset_media()
            await self._set(state="stopped", position=0)

    async def play(self) -> None:
        """Start (or resume) playback of the current url."""
        if self._playback is not None and not self._playback.done():
            return
        if not self.value("url"):
            await self._set(state="stopped", error="no url to play")
            return
        if self.value("state") == "stopped":
            self._reset_media()
            await self._set(verified="", error="", position=0)
        await self._set(state="playing")
        self._playback = asyncio.create_task(self._run_playback(), name=f"play-{self.device.device_id}")

    async def _cancel_playback(self) -> None:
        task, self._playback = self._playback, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _set(self, **values: Any) -> None:
        out: list[Update] = []
        for prop, value in values.items():
            self.model.put("player", prop, value, out)
        await self.device.push(out)

    # -- playback

    async def _run_playback(self) -> None:
        try:
            await self._playback_loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure ends playback with a readable error, never a crash
            log.warning("%s: playback failed: %s", self.device.device_id, exc)
            await self._set(state="stopped", error=str(exc)[:500] or type(exc).__name__)

    async def _playback_loop(self) -> None:
        start_sim = self.clock.now()
        start_pos = self._position_ms
        last_published = -1.0
        while True:
            played = start_pos + (self.clock.now() - start_sim) * 1000.0
            downloaded_ms = self._downloaded_ms()
            self._position_ms = min(played, downloaded_ms, float(self._duration_ms or downloaded_ms))
            complete = self._size is not None and self._offset >= self._size
            if complete and self._position_ms >= self._duration_ms:
                await self._finish()
                return
            if self._position_ms - last_published >= 1000 or last_published < 0:
                last_published = self._position_ms
                await self._set(position=int(self._position_ms))
            if not complete and downloaded_ms - self._position_ms < self.AHEAD_MS:
                await self._fetch_chunk()
                continue
            horizon = (self._duration_ms if complete else downloaded_ms - self.AHEAD_MS) - self._position_ms
            wait_sim = max(0.0, min(1.0, horizon / 1000.0))
            await asyncio.sleep(max(0.005, self.clock.real_seconds(wait_sim)))

    def _downloaded_ms(self) -> float:
        if self._size is not None and self._offset >= self._size:
            return float(self._duration_ms)
        if not self._size or not self._duration_ms:
            return 0.0
        return self._offset / self._size * self._duration_ms

    async def _fetch_chunk(self) -> None:
        """One Range request, retried a few times on network errors."""
        for attempt in range(self.RETRIES):
            try:
                await self._get_range()
                return
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                if attempt == self.RETRIES - 1:
                    raise RuntimeError(f"fetch failed: {exc or type(exc).__name__}") from None
                await asyncio.sleep(0.2 * (2 ** attempt) * random.uniform(0.5, 1.0))

    async def _get_range(self) -> None:
        assert self._session is not None
        end = self._offset + self.CHUNK - 1
        if self._size is not None:
            end = min(end, self._size - 1)
        headers = {"Range": f"bytes={self._offset}-{end}"}
        if self._etag:
            headers["If-Range"] = self._etag
        async with self._session.get(self.value("url"), headers=headers) as resp:
            if resp.status == 206:
                parsed = parse_content_range(resp.headers.get("Content-Range"))
                if parsed is None or parsed[0] != self._offset or parsed[1] < parsed[0]:
                    raise RuntimeError(f"bad Content-Range {resp.headers.get('Content-Range')!r}")
                if self._size is None:
                    await self._learn(resp.headers, parsed[2])
                want = min(parsed[1], end) - parsed[0] + 1
            elif resp.status == 200 and self._offset == 0:
                # Range ignored: take the first chunk of the body, ask with Range for the rest
                await self._learn(resp.headers, resp.content_length)
                want = min(self.CHUNK, self._size or 0)
            elif resp.status == 200:
                # If-Range failed (RFC 9110 §13.1.5): the file changed under us
                raise RuntimeError("media changed during playback (or the server ignores Range)")
            else:
                raise RuntimeError(f"HTTP {resp.status} {resp.reason or ''}".strip())
            data = await self._read(resp, want)
        if len(data) != want:
            raise RuntimeError(f"short read: {len(data)} of {want} bytes at offset {self._offset}")
        self._hash.update(data)  # one chunk at most: quick (hashlib drops the GIL)
        self._offset += len(data)

    @staticmethod
    async def _read(resp: aiohttp.ClientResponse, want: int) -> bytes:
        parts: list[bytes] = []
        got = 0
        while got < want:
            block = await resp.content.read(want - got)
            if not block:
                break
            parts.append(block)
            got += len(block)
        return b"".join(parts)

    async def _learn(self, headers: Mapping[str, str], total: int | None) -> None:
        if total is None:
            raise RuntimeError("server did not say how large the media is")
        self._size = total
        etag = headers.get("ETag")
        self._etag = etag if etag and not etag.startswith("W/") else None
        self._expected_sha = (headers.get("X-Content-SHA256") or "").strip().lower() or None
        duration = headers.get("X-Media-Duration-Ms", "")
        self._duration_ms = int(duration) if duration.isdigit() and int(duration) > 0 else \
            max(1, int(total * 8 * 1000 / self.DEFAULT_BITRATE))
        await self._set(duration=self._duration_ms)

    async def _finish(self) -> None:
        digest = self._hash.hexdigest()
        error = ""
        if self._expected_sha and self._expected_sha != digest:
            error = f"sha256 mismatch: server says {self._expected_sha}, received {digest}"
            log.warning("%s: %s", self.device.device_id, error)
        self._position_ms = float(self._duration_ms)
        await self._set(position=self._duration_ms, verified=digest, error=error, state="stopped")
        log.info("%s: played %d bytes, sha256 %s", self.device.device_id, self._offset, digest)
