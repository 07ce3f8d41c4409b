"""One sync of a data directory at a time, across processes: `hub sync`, `hub media verify` and a
running hub take `<data>/media.lock` (flock) for each pass.

flock, not a pid file: the kernel drops the lock when its holder dies, even by SIGKILL, so a
crash never leaves a stale lock behind. The file says who holds it, for the message.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path


class SyncBusy(Exception):
    """Another sync holds this data directory; `holder` says who."""

    def __init__(self, data_dir: Path, holder: str) -> None:
        super().__init__(f"{holder or 'another process'} is syncing {data_dir}")
        self.holder = holder


class SyncLock:
    """`<data>/media.lock`: `acquire()` (never waits) and `release()`. Blocking file I/O."""

    def __init__(self, data_dir: Path, owner: str) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "media.lock"
        self.owner = owner  # e.g. "hub sync": shown to whoever finds the lock taken
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise SyncBusy at once."""
        if self._fd is not None:
            raise RuntimeError("lock already held by this SyncLock")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise SyncBusy(self.data_dir, self.holder()) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self.owner} (pid {os.getpid()})\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.close(fd)  # closing drops the flock

    def holder(self) -> str:
        """Who wrote the lock file last (the holder, while it is held)."""
        try:
            return self.path.read_text(errors="replace").strip()[:200]
        except OSError:
            return ""
