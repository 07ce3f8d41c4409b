"""`hub media verify`: re-hash every library file against its content hash, and take the damaged
ones out of the library (into the trash, never deleted) so the next sync fetches them again.

A file is damaged when its size or content hash no longer match what was verified at download
(bit rot, a bad disk, an editor). A missing file is dropped from the library the same way.
Verifying also fills in the plain SHA-256 that a resumed download could not compute.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import library
from .contenthash import hash_file
from .trash import Trash


@dataclass
class VerifyReport:
    checked: int = 0
    bytes: int = 0
    damaged: list[str] = field(default_factory=list)  # cloud paths
    missing: list[str] = field(default_factory=list)
    sha256_filled: int = 0

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.missing


@dataclass(frozen=True)
class _Verdict:
    row: dict[str, Any]
    state: str  # "ok", "damaged" or "missing"
    sha256: str | None = None


def _check(media_dir: Path, rows: list[dict[str, Any]], on_file: Callable[[int], None] | None) -> list[_Verdict]:
    """Hash each file (blocking: run in a thread)."""
    out = []
    for row in rows:
        path = media_dir / row["local_path"]
        try:
            if os.stat(path).st_size != row["size"]:
                out.append(_Verdict(row, "damaged"))
            else:
                digests = hash_file(path)
                good = digests.content_hash == row["content_hash"]
                out.append(_Verdict(row, "ok" if good else "damaged", digests.sha256))
        except FileNotFoundError:
            out.append(_Verdict(row, "missing"))
        if on_file:
            on_file(row["size"])
    return out


async def verify_library(store, data_dir: Path, now: float, on_file: Callable[[int], None] | None = None) -> VerifyReport:
    """Re-hash the library; damaged files go to the trash and leave the library with missing ones."""
    media_dir = Path(data_dir) / "media"
    rows = await store.call(library.all_files)
    verdicts = await asyncio.to_thread(_check, media_dir, rows, on_file)
    report = VerifyReport(checked=len(rows), bytes=sum(r["size"] for r in rows))
    damaged = [v.row for v in verdicts if v.state == "damaged"]
    missing = [v.row for v in verdicts if v.state == "missing"]
    report.damaged = [r["path"] for r in damaged]
    report.missing = [r["path"] for r in missing]
    if damaged:  # kept in the trash, not deleted: it may be all the household has of that file
        await asyncio.to_thread(Trash(data_dir).move_many, media_dir, [r["local_path"] for r in damaged], now)
    if damaged or missing:
        await store.call(lambda db: library.remove(db, [r["id"] for r in damaged + missing]))
    fill = [(v.row["id"], v.sha256) for v in verdicts if v.state == "ok" and v.sha256 and not v.row["sha256"]]
    if fill:
        await store.call(lambda db: library.set_sha256(db, fill))
    report.sha256_filled = len(fill)
    return report
