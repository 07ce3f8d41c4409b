"""Deleting from the library safely: a per-run cap, a trash folder, and retention.

Deleted files are moved (same filesystem, a rename) to `<data>/media-trash/<unix time>/<path>`
and purged once older than the retention period (Syncthing's trash-can versioning).
Deletions never follow an incomplete listing; above the cap, none are made and the run says so
(rclone's --max-delete, but refusing the whole batch rather than an arbitrary part of it).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .durable import fsync_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeletePolicy:
    max_deletes: int = 100  # never more than this many in one run
    max_fraction: float = 0.10  # nor more than this share of the library ...
    always_allowed: int = 10  # ... except that this many are always fine (small libraries)
    retention_days: float = 30.0

    def cap(self, library_size: int) -> int:
        """How many deletions one run may make."""
        return min(self.max_deletes, max(self.always_allowed, math.floor(self.max_fraction * library_size)))


@dataclass(frozen=True)
class DeleteDecision:
    allowed: bool
    reason: str


def decide(pending: int, library_size: int, listing_complete: bool, policy: DeletePolicy) -> DeleteDecision:
    """Whether this run may carry out `pending` deletions."""
    if pending == 0:
        return DeleteDecision(True, "")
    if not listing_complete:
        return DeleteDecision(False, "the last full listing did not complete; not deleting anything")
    cap = policy.cap(library_size)
    if pending > cap:
        return DeleteDecision(
            False,
            f"{pending} files would be deleted but the cap is {cap} "
            f"(max_deletes={policy.max_deletes}, max_fraction={policy.max_fraction}); deleting none",
        )
    return DeleteDecision(True, "")


class Trash:
    """`<data>/media-trash/`: where deleted library files wait out their retention."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "media-trash"

    def move(self, media_dir: Path, local_path: str, now: float) -> Path | None:
        """Move one library file into this run's trash batch. Blocking."""
        return (self.move_many(media_dir, [local_path], now) or [None])[0]

    def _move(self, media_dir: Path, local_path: str, now: float) -> Path | None:
        src = media_dir / local_path
        if not src.is_file():
            return None
        dst = self.root / str(int(now)) / local_path
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, dst)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # the trash on another filesystem: copy, then remove
                raise
            shutil.move(src, dst)
        return dst

    def move_many(self, media_dir: Path, local_paths: list[str], now: float) -> list[Path]:
        """Move library files into this run's trash batch, fsyncing each folder once. Blocking."""
        moved, dirs = [], set()
        for local_path in local_paths:
            dst = self._move(media_dir, local_path, now)
            if dst is not None:
                moved.append(dst)
                dirs.add((media_dir / local_path).parent)
        for d in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
            if d.is_dir():
                fsync_dir(d)
            _prune_empty_dirs(d, media_dir)
        return moved

    def purge(self, now: float, retention_days: float) -> int:
        """Remove batches older than the retention period; returns how many. Blocking."""
        if not self.root.is_dir():
            return 0
        n = 0
        for batch in self.root.iterdir():
            if batch.is_dir() and batch.name.isdigit() and int(batch.name) < now - retention_days * 86400:
                shutil.rmtree(batch, ignore_errors=True)
                n += 1
        return n


def _prune_empty_dirs(start: Path, stop: Path) -> None:
    d = start
    while d != stop and stop in d.parents:
        try:
            d.rmdir()
        except OSError:
            return
        d = d.parent
