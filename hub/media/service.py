"""MediaService: the media feature as the hub uses it (sync control, library, playback URLs)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from . import library
from .auth import CloudAuthError, DeviceCode, TokenFile, TokenSource, link
from .client import CloudClient
from ..clock import Clock, SystemClock
from .signing import UrlSigner
from .thumbs import Thumbnails, renderer

if TYPE_CHECKING:  # the sync engine is imported when the hub is linked to a cloud, not before
    from .sync import SyncEngine, SyncPolicy

log = logging.getLogger(__name__)

PlayFn = Callable[[str, str], Awaitable[Any]]


class UnknownMedia(LookupError):
    pass


class MediaService:
    """The media feature: sync control, library, playback URLs; started and stopped with the hub.

    `play(device_id, url)` is the hub's command path and `in_use()` the files players are showing
    (see players.py); api.py serves it over HTTP.
    """

    def __init__(
        self,
        store,
        data_dir: Path,
        *,
        play: PlayFn,
        on_progress: Callable[[dict[str, Any]], Any] | None = None,
        policy: SyncPolicy | None = None,
        clock: Clock | None = None,
        public_url: str | None = None,
        url_ttl: float = 6 * 3600,
        watch: bool = False,
        in_use: Callable[[], Collection[int]] | None = None,
    ) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        self.media_dir = self.data_dir / "media"
        self._play = play
        self.on_progress = on_progress
        self.policy = policy  # None: SyncPolicy()
        self.clock = clock or SystemClock()
        self.public_url = public_url  # e.g. "http://192.168.1.5:8080"; else taken from the request
        self.url_ttl = url_ttl
        self.watch = watch  # keep syncing (long-poll) while linked
        self.in_use = in_use  # media ids being played: not trashed or replaced until playback stops
        self.signer = UrlSigner(self.data_dir)
        self.tokens = TokenFile(self.data_dir)
        self.thumbs = Thumbnails(self.data_dir / "thumbs")
        self._session: aiohttp.ClientSession | None = None
        self._engine: SyncEngine | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._link_task: asyncio.Task | None = None
        self._link_state: dict[str, Any] = {"state": "idle"}

    async def start(self) -> None:
        await self.store.call(library.ensure_schema)
        await asyncio.to_thread(self.signer.key)
        self._session = aiohttp.ClientSession()
        if self.watch and await asyncio.to_thread(self.tokens.load):
            self._task = asyncio.create_task(self._run(continuous=True), name="media-sync")

    async def stop(self) -> None:
        await self.thumbs.stop()
        if self._link_task:
            self._link_task.cancel()
            await asyncio.gather(self._link_task, return_exceptions=True)
            self._link_task = None
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self._session:
            await self._session.close()
            self._session = None

    # -- sync --

    async def _make_engine(self) -> SyncEngine | None:
        tokens = await asyncio.to_thread(self.tokens.load)
        if tokens is None or self._session is None:
            return None
        if self._engine is None or self._engine.client.base != tokens.cloud_url.rstrip("/"):
            from .sync import SyncEngine, SyncPolicy

            client = CloudClient(self._session, TokenSource(self._session, self.tokens, self.clock), tokens.cloud_url, self.clock)
            self._engine = SyncEngine(
                self.store, self.data_dir, client, policy=self.policy or SyncPolicy(), clock=self.clock, on_progress=self.on_progress,
                in_use=self.in_use, owner="hub",
            )
        return self._engine

    async def _run(self, continuous: bool) -> None:
        engine = await self._make_engine()
        if engine is None:
            return
        try:
            if continuous:
                await engine.run(self._wake)
            else:
                await engine.sync_once()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported in status; never takes the hub down
            log.error("media sync stopped: %s", exc)

    async def sync_now(self) -> dict[str, Any]:
        """Start a pass now (or wake the watcher); returns the status with `started`."""
        if not await asyncio.to_thread(self.tokens.load):
            return {**await self.sync_status(), "started": False, "reason": "not linked"}
        if self._task and not self._task.done():
            if self._engine and self._engine.status()["running"]:
                return {**await self.sync_status(), "started": False, "reason": "already running"}
            self._wake.set()
            return {**await self.sync_status(), "started": True}
        self._task = asyncio.create_task(self._run(continuous=self.watch), name="media-sync")
        await asyncio.sleep(0)
        return {**await self.sync_status(), "started": True}

    async def wait_sync(self) -> None:
        """Wait for a one-off pass started by sync_now() to end (returns at once when none runs)."""
        task = self._task
        if task is not None and not self.watch:
            await asyncio.shield(task)

    async def sync_status(self) -> dict[str, Any]:
        linked = await asyncio.to_thread(self.tokens.load)
        base: dict[str, Any] = {"linked": linked is not None, "cloud": linked.cloud_url if linked else None}
        if self._engine is None:
            return {**base, "running": False, "phase": "idle", "progress": None, "last_report": None,
                    "last_error": None, "counters": None}
        return {**base, **self._engine.status()}

    # -- linking from the UI (RFC 8628: the household approves the code on their phone) --

    async def start_link(self, cloud_url: str) -> dict[str, Any]:
        """Begin the device grant; returns once the code to show is known (or it failed)."""
        if self._link_task and not self._link_task.done():
            self._link_task.cancel()
            await asyncio.gather(self._link_task, return_exceptions=True)
        shown = asyncio.get_running_loop().create_future()
        self._link_state = {"state": "starting", "cloud": cloud_url}

        def on_code(code: DeviceCode) -> None:
            self._link_state = {
                "state": "waiting", "cloud": cloud_url, "user_code": code.user_code,
                "verification_uri": code.verification_uri,
                "verification_uri_complete": code.verification_uri_complete,
                "expires_at": self.clock.now() + code.expires_in,
            }
            if not shown.done():
                shown.set_result(None)

        async def run() -> None:
            assert self._session is not None
            try:
                await link(self._session, cloud_url, self.tokens, on_code, clock=self.clock)
            except (CloudAuthError, aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                self._link_state = {"state": "failed", "cloud": cloud_url, "error": str(exc) or type(exc).__name__}
                log.warning("linking %s failed: %s", cloud_url, exc)
            else:
                self._link_state = {"state": "linked", "cloud": cloud_url}
                self._engine = None  # a new account or cloud: start from its own listing
                await self.sync_now()
            finally:
                if not shown.done():
                    shown.set_result(None)

        self._link_task = asyncio.create_task(run(), name="cloud-link")
        await shown
        return self.link_status()

    def link_status(self) -> dict[str, Any]:
        return dict(self._link_state)

    async def unlink(self) -> bool:
        """Forget the tokens and stop syncing; the files stay."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._engine = None
        self._link_state = {"state": "idle"}
        return await asyncio.to_thread(self.tokens.delete)

    # -- library --

    async def list_media(self, kind: str | None = None, q: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        return await self.store.call(lambda db: library.query(db, kind, q, limit, offset))

    async def signed_url(self, media_id: int, base_url: str | None = None) -> str:
        row = await self.store.call(lambda db: library.get(db, media_id))
        if row is None:
            raise UnknownMedia(media_id)
        path = await asyncio.to_thread(self.signer.url, media_id, self.url_ttl, self.clock.now())
        return (self.public_url or base_url or "").rstrip("/") + path

    async def play(self, media_id: int, device: str, base_url: str | None = None) -> dict[str, Any]:
        url = await self.signed_url(media_id, base_url)
        result = await self._play(device, url)
        return {"media": media_id, "device": device, "url": url, "result": result}

    @staticmethod
    def has_thumbnail(item: dict[str, Any]) -> bool:
        """Whether a thumbnail of this library item can be drawn here (ffmpeg, pdftoppm)."""
        return renderer(item.get("kind"), item.get("media_type")) is not None

    async def thumbnail(self, media_id: int) -> Path | None:
        """A small JPEG of the item, made on first request; None when none can be made."""
        row = await self.store.call(lambda db: library.get(db, media_id))
        if row is None:
            raise UnknownMedia(media_id)
        path = await asyncio.to_thread(library.resolve, self.media_dir, row["local_path"])
        if path is None:
            return None
        return await self.thumbs.get(path, row["content_hash"], row.get("kind"), row.get("media_type"),
                                     row.get("duration_ms"))

    async def file_for(self, media_id: str, exp: str | None, sig: str | None) -> tuple[Path, dict[str, Any]] | None:
        """The file behind a signed URL's parts, or None when they are malformed, forged or expired."""
        mid = self.signer.check(media_id, exp, sig, self.clock.now())  # the key was loaded by start()
        if mid is None:
            return None
        row = await self.store.call(lambda db: library.get(db, mid))
        if row is None:
            raise UnknownMedia(mid)
        path = await asyncio.to_thread(library.resolve, self.media_dir, row["local_path"])
        if path is None:
            raise UnknownMedia(mid)
        return path, row
