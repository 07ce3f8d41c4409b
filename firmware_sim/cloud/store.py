"""The library the simulated cloud serves: a directory on disk, watched for changes.

Each scan walks the tree in a thread, compares (size, mtime_ns, inode) with what it knew,
hashes and probes only new or changed files (in the same thread, through a cache), and
records the differences in the ChangeJournal. Ids are derived from the path, so they are
stable across restarts; revs from the content hash and mtime, so they change with content.
Hidden names (starting with ".") are not served: they are work files, like partial uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .content_hash import HashCache
from .journal import ChangeJournal, CursorCodec, Entry, Page
from .probe import probe_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Stat:
    is_dir: bool
    size: int
    mtime_ns: int
    ino: int


def item_id(path: str, folder: bool) -> str:
    """A stable id for a cloud path (same path, same id, across restarts)."""
    return ("d_" if folder else "f_") + hashlib.sha256(path.encode()).hexdigest()[:16]


class LibraryUnavailable(OSError):
    """The library root itself can't be listed (unmounted, removed, no permission)."""


def _walk(root: Path, warned: set[str] | None = None) -> dict[str, _Stat]:
    """Every visible folder and regular file under root, by cloud path. Blocking.

    Raises LibraryUnavailable when the root can't be listed: an unmounted library must not
    look like a library whose files were all deleted.
    """
    try:
        os.scandir(root).close()
    except OSError as exc:
        raise LibraryUnavailable(f"cannot list the library root {root}: {exc}") from exc
    found: dict[str, _Stat] = {}
    warned = set() if warned is None else warned  # log each unservable name once

    def skip(why: str, where: str) -> None:
        if where not in warned:
            warned.add(where)
            log.warning("skipping %s in %s", why, where)

    stack = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as exc:
            skip(f"an unreadable folder ({exc.strerror})", str(directory))
            continue
        for de in entries:
            if de.name.startswith("."):
                continue
            try:
                de.name.encode("utf-8")
            except UnicodeEncodeError:
                skip("a name that is not UTF-8", repr(de.path))
                continue
            if "\n" in de.name or "\r" in de.name:  # can't be a line of the manifest
                skip("a name with a line break", repr(de.path))
                continue
            path = f"{prefix}/{de.name}"
            try:
                if de.is_dir(follow_symlinks=False):
                    found[path] = _Stat(True, 0, 0, 0)
                    stack.append((Path(de.path), path))
                elif de.is_file(follow_symlinks=False):
                    st = de.stat(follow_symlinks=False)
                    found[path] = _Stat(False, st.st_size, st.st_mtime_ns, st.st_ino)
            except OSError as exc:  # vanished between listing and stat
                log.debug("skipping %s: %s", path, exc)
    return found


class Library:
    """A watched directory exposed as a change feed and file store."""

    def __init__(self, root: Path, *, max_tombstones: int = 1000, scan_interval: float = 2.0,
                 hash_cache: HashCache | None = None) -> None:
        self.root = Path(root)
        self.journal = ChangeJournal(max_tombstones)
        self.cursors = CursorCodec()
        self.scan_interval = scan_interval
        self.hash_cache = hash_cache or HashCache()
        self._stats: dict[str, _Stat] = {}
        self._scan_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False
        self._root_missing_logged = False
        self._warned: set[str] = set()
        self.scans = 0
        self.waiting = 0  # long-polls parked right now
        self.long_poll_parked = asyncio.Event()  # set once any long-poll has parked (tests)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """First full scan, then the periodic watcher (if scan_interval > 0)."""
        self.root.mkdir(parents=True, exist_ok=True)
        await self.refresh()
        if self.scan_interval > 0:
            self._watcher = asyncio.create_task(self._watch(), name="cloud-library-watch")

    def wake_waiters(self) -> None:
        """Answer every pending long-poll now (with no changes): the server is shutting down."""
        self._closing = True
        self._changed.set()

    async def stop(self) -> None:
        self.wake_waiters()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.scan_interval)
            try:
                await self.refresh()
            except Exception:  # a scan error must not end the watcher
                log.exception("library scan failed")

    # -- scanning ------------------------------------------------------------------------
    async def refresh(self) -> int:
        """Rescan the directory; returns how many changes were recorded."""
        async with self._scan_lock:
            try:
                seen = await asyncio.to_thread(_walk, self.root, self._warned)
            except LibraryUnavailable as exc:
                if not self._root_missing_logged:
                    log.warning("%s; serving the last known state", exc)
                    self._root_missing_logged = True
                return 0
            self._root_missing_logged = False
            gone = [p for p, st in self._stats.items()
                    if p not in seen or seen[p].is_dir != st.is_dir]
            todo = [p for p, st in seen.items() if self._stats.get(p) != st]
            described = await asyncio.to_thread(self._describe, sorted(todo), seen)
            changes = 0
            for path in sorted(gone, key=lambda p: (-p.count("/"), p)):  # children first
                self._stats.pop(path, None)
                if self.journal.delete(path) is not None:
                    changes += 1
            for path in sorted(todo):  # "/A" sorts before "/A/x": parents first
                entry = described.get(path)
                if entry is None:
                    continue  # changed while we looked: the next scan takes it
                old = self.journal.get(path)
                self._stats[path] = seen[path]
                if old is not None and (old.tag, old.rev) == (entry.tag, entry.rev):
                    continue
                self.journal.upsert(entry)
                changes += 1
            self.scans += 1
        if changes:
            log.debug("library scan: %d changes, seq %d", changes, self.journal.seq)
            self._changed.set()
            self._changed = asyncio.Event()
        return changes

    def _describe(self, paths: Iterable[str], seen: dict[str, _Stat]) -> dict[str, Entry]:
        """Hash and probe new or changed files. Blocking: runs in a thread."""
        out: dict[str, Entry] = {}
        for path in paths:
            st = seen[path]
            if st.is_dir:
                out[path] = Entry("folder", item_id(path, True), path)
                continue
            disk = self.root / path.lstrip("/")
            try:
                digest = self.hash_cache.hash(disk, st.size, st.mtime_ns, st.ino)
                mime, media = probe_file(disk)
                after = disk.stat()
            except OSError as exc:
                log.debug("skipping %s this scan: %s", path, exc)
                continue
            if (after.st_size, after.st_mtime_ns, after.st_ino) != (st.size, st.mtime_ns, st.ino):
                continue
            rev = hashlib.sha256(f"{digest}:{st.mtime_ns}:{st.ino}".encode()).hexdigest()[:16]
            out[path] = Entry("file", item_id(path, False), path, rev=rev, size=st.size,
                              content_hash=digest, mtime_ns=st.mtime_ns, ino=st.ino,
                              media_type=mime,
                              media=media.as_json())
        return out

    # -- queries -------------------------------------------------------------------------
    def changes(self, cursor: str | None, limit: int) -> tuple[Page, str]:
        """A page of the change feed and the cursor to continue from.

        Raises CursorInvalid (malformed) or CursorReset (client must relist: 410).
        """
        after, known = self.cursors.decode(cursor) if cursor else (0, None)
        page = self.journal.changes(after, known, limit)
        return page, self.cursors.encode(page.next_seq, page.next_known)

    async def wait_for_change(self, cursor: str, timeout: float) -> bool:
        """True as soon as something newer than `cursor` exists, False after `timeout`."""
        after, known = self.cursors.decode(cursor)
        self.journal.check(after, known)
        await self.refresh()
        if self.journal.seq > after or self._closing:
            return self.journal.seq > after
        event = self._changed
        self.waiting += 1
        self.long_poll_parked.set()
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self.waiting -= 1
        return self.journal.seq > after

    def file(self, item_id_: str) -> Entry | None:
        entry = self.journal.by_id(item_id_)
        return entry if entry is not None and entry.tag == "file" else None

    def disk_path(self, entry: Entry) -> Path:
        return self.root / entry.path.lstrip("/")

    async def blocks(self, entry: Entry) -> tuple[str, ...] | None:
        """The 4 MiB block hashes of a file version, or None if the disk moved on."""
        digest, blocks = await asyncio.to_thread(
            self.hash_cache.blocks, self.disk_path(entry), entry.size, entry.mtime_ns, entry.ino)
        return blocks if digest == entry.content_hash else None

    def manifest(self) -> str:
        """`<content_hash>  <path>` lines, the format `rclone check --checkfile dropbox` reads."""
        files = sorted((e for e in self.journal.live() if e.tag == "file"), key=lambda e: e.path)
        return "".join(f"{e.content_hash}  {e.path.lstrip('/')}\n" for e in files)

    def reset_history(self) -> None:
        """A new cursor epoch, deletions forgotten: every cursor handed out so far gets 410."""
        self.cursors = CursorCodec()
        self.journal.forget_history()

    # -- test helpers --------------------------------------------------------------------
    async def put(self, path: str, data: bytes) -> Entry:
        """Write a file at a cloud path (atomically, via a hidden temp file) and rescan."""
        disk = self._safe_disk_path(path)

        def write() -> None:
            disk.parent.mkdir(parents=True, exist_ok=True)
            tmp = disk.parent / f".{disk.name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, disk)

        await asyncio.to_thread(write)
        await self.refresh()
        entry = self.journal.get(path)
        assert entry is not None, f"{path} did not appear after writing it"
        return entry

    async def remove(self, path: str) -> None:
        """Delete a file or a folder tree at a cloud path and rescan."""
        import shutil

        disk = self._safe_disk_path(path)
        await asyncio.to_thread(
            lambda: shutil.rmtree(disk) if disk.is_dir() else disk.unlink())
        await self.refresh()

    async def corrupt_at(self, entry: Entry, offset: int) -> None:
        """Flip one byte of a file in place (the `mutate` fault), then rescan."""
        disk = self.disk_path(entry)

        def flip() -> None:
            with open(disk, "r+b") as f:
                f.seek(offset)
                byte = f.read(1)
                f.seek(offset)
                f.write(bytes([byte[0] ^ 0xFF]) if byte else b"\0")
                f.flush()
                os.fsync(f.fileno())

        await asyncio.to_thread(flip)
        await self.refresh()

    def _safe_disk_path(self, path: str) -> Path:
        parts = [p for p in path.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise ValueError(f"bad cloud path {path!r}")
        return self.root.joinpath(*parts)
