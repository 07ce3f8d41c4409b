"""The operator cloud's content hash: Dropbox's block hash (SHA-256 of 4 MiB block digests).

Pure code plus one blocking helper (`hash_file`) that callers run in a thread, never on the
event loop. An empty file has zero blocks, so its hash is SHA-256 of the empty string
(e3b0c442…b855) — the value Dropbox's spec shows and `rclone hashsum dropbox` prints.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

BLOCK_SIZE = 4 * 1024 * 1024  # Dropbox content_hash block size: 4 MiB
_READ_SIZE = 1024 * 1024


class ContentHasher:
    """Incremental Dropbox-style content hash: feed bytes in any chunking, read hexdigest()."""

    def __init__(self) -> None:
        self._outer = hashlib.sha256()
        self._block = hashlib.sha256()
        self._block_len = 0
        self.block_digests: list[bytes] = []

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), BLOCK_SIZE - self._block_len)
            self._block.update(view[:take])
            self._block_len += take
            view = view[take:]
            if self._block_len == BLOCK_SIZE:
                self._finish_block()

    def _finish_block(self) -> None:
        digest = self._block.digest()
        self.block_digests.append(digest)
        self._outer.update(digest)
        self._block = hashlib.sha256()
        self._block_len = 0

    def block_hexdigests(self) -> list[str]:
        """SHA-256 of each block fed so far, the partial last one included."""
        blocks = [d.hex() for d in self.block_digests]
        if self._block_len:
            blocks.append(self._block.hexdigest())
        return blocks

    def hexdigest(self) -> str:
        """The hash of everything fed so far (a partial last block counts as a block)."""
        outer = self._outer.copy()
        if self._block_len:
            outer.update(self._block.digest())
        return outer.hexdigest()


def content_hash(data: bytes) -> str:
    """Content hash of an in-memory byte string."""
    h = ContentHasher()
    h.update(data)
    return h.hexdigest()


def hash_file_blocks(path: str | os.PathLike[str]) -> tuple[str, tuple[str, ...]]:
    """Content hash of a file and the hex SHA-256 of each 4 MiB block. Blocking."""
    h = ContentHasher()
    with open(path, "rb") as f:
        while chunk := f.read(_READ_SIZE):
            h.update(chunk)
    return h.hexdigest(), tuple(h.block_hexdigests())


def hash_file(path: str | os.PathLike[str]) -> str:
    """Content hash of a file. Blocking: run it with asyncio.to_thread."""
    return hash_file_blocks(path)[0]


class HashCache:
    """Thread-safe LRU of content hashes keyed by (path, size, mtime_ns, inode).

    The inode is part of the key because a file replaced by rename can keep size and mtime.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, int, int, int], tuple[str, tuple[str, ...]]] = (
            OrderedDict())
        self._lock = threading.Lock()
        self.misses = 0

    def get(self, path: Path, size: int, mtime_ns: int, ino: int = 0) -> str | None:
        key = (str(path), size, mtime_ns, ino)
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
                return value[0]
            return None

    def blocks(self, path: Path, size: int, mtime_ns: int,
               ino: int = 0) -> tuple[str, tuple[str, ...]]:
        """(content hash, block hashes) as of (size, mtime_ns, ino). Blocking on a miss."""
        key = (str(path), size, mtime_ns, ino)
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
                return value
        value = hash_file_blocks(path)
        with self._lock:
            self.misses += 1
            self._entries[key] = value
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return value

    def hash(self, path: Path, size: int, mtime_ns: int, ino: int = 0) -> str:
        """Cached hash of `path` as of (size, mtime_ns, ino). Blocking on a miss: use a thread."""
        return self.blocks(path, size, mtime_ns, ino)[0]
