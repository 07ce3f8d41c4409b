"""Making verified files durable and listed in batches, not one by one.

Each file is already fsynced and renamed into place when it gets here (so it is visible, and
exact). A batch then fsyncs every folder its renames touched, once, and lists all its files in
one SQLite transaction. A crash between a rename and its batch leaves a visible file that the
library doesn't list yet: it has exactly the listed bytes, and the next pass adopts it after
hashing it. Nothing unverified is ever visible.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from . import library
from ..clock import Clock
from .durable import fsync_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Landed:
    """A verified file under its final name, waiting for its batch."""

    remote: dict[str, Any]  # the media_remote row it was fetched for
    rel: PurePosixPath  # its local path under the library folder
    sha256: str | None
    adopted: bool  # found on disk already (a crash before its batch), not downloaded


@dataclass(frozen=True)
class BatchPolicy:
    max_files: int = 500
    max_bytes: int = 256 << 20  # a batch of big files commits sooner: each took a while anyway
    max_delay: float = 0.5  # seconds a landed file may wait to be listed


Hook = Callable[[list[Landed]], Awaitable[None] | None]


class InstallBatch:
    """Collects landed files; `flush()` makes them durable and lists them; `close()` flushes the rest."""

    def __init__(self, store, media_dir: Path, extra_dirs: tuple[Path, ...], clock: Clock, *,
                 policy: BatchPolicy = BatchPolicy(), on_listed: Hook | None = None,
                 on_failed: Callable[[list[Landed], Exception], None] | None = None) -> None:
        self.store = store
        self.media_dir = media_dir
        self.extra_dirs = extra_dirs  # e.g. the .partial folder the renames took files out of
        self.clock = clock
        self.policy = policy
        self.on_listed = on_listed
        self.on_failed = on_failed
        self.batches = 0
        self._pending: list[Landed] = []
        self._bytes = 0
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None

    async def add(self, landed: Landed) -> None:
        self._pending.append(landed)
        self._bytes += int(landed.remote["size"])
        if len(self._pending) >= self.policy.max_files or self._bytes >= self.policy.max_bytes:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        await self.clock.sleep(self.policy.max_delay)
        self._timer = None
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            items, self._pending, self._bytes = self._pending, [], 0
            if not items:
                return
            try:
                await asyncio.to_thread(self._sync_dirs, items)
                now = self.clock.now()
                rows = [(i.remote, str(i.rel), i.sha256) for i in items]
                await self.store.call(lambda db: library.install_many(db, rows, now))
            except Exception as exc:  # noqa: BLE001 - the files stay visible and are adopted next pass
                log.error("could not list %d synced files: %s", len(items), exc)
                if self.on_failed:
                    self.on_failed(items, exc)
                return
            self.batches += 1
            log.debug("listed a batch of %d files", len(items))
            if self.on_listed:
                result = self.on_listed(items)
                if inspect.isawaitable(result):
                    await result

    def abort(self) -> None:
        """Stop the timer without listing what is pending (the next pass adopts those files)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def close(self) -> None:
        """Flush what is pending; stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None
        await self.flush()

    def _sync_dirs(self, items: list[Landed]) -> None:
        """fsync each folder that gained an entry (and each new folder's parent), once. Blocking."""
        dirs: set[Path] = set(self.extra_dirs)
        for i in items:
            if i.adopted:
                continue
            rel = i.rel.parent
            while True:
                dirs.add(self.media_dir / rel)
                if rel == PurePosixPath("."):
                    break
                rel = rel.parent
        dirs.add(self.media_dir.parent)  # the library folder itself may be new
        for d in sorted(dirs, key=lambda d: len(d.parts), reverse=True):  # children before parents
            fsync_dir(d)
