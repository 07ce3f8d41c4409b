"""The cloud's content hash: SHA-256 over the SHA-256 digests of each 4 MiB block (Dropbox style).

Pure code; `hash_file` blocks, so callers run it in a thread.  The hasher also keeps a plain
SHA-256 of the whole stream, which the library serves to the projector as X-Content-SHA256.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

BLOCK = 4 * 1024 * 1024  # the block size the cloud API fixes for content_hash


@dataclass(frozen=True)
class Digests:
    """Both digests of one byte stream."""

    content_hash: str  # the cloud's block hash, lowercase hex
    sha256: str  # plain SHA-256 of the bytes, lowercase hex
    size: int


class StreamHasher:
    """Feed bytes in any chunking; `result()` gives the block hash and the plain SHA-256."""

    def __init__(self) -> None:
        self._digests = hashlib.sha256()  # hash of the concatenated block digests
        self._current = hashlib.sha256()
        self._filled = 0
        self._whole = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self._whole.update(view)
        self.size += len(view)
        pos = 0
        while pos < len(view):
            n = min(BLOCK - self._filled, len(view) - pos)
            self._current.update(view[pos : pos + n])
            self._filled += n
            pos += n
            if self._filled == BLOCK:
                self._digests.update(self._current.digest())
                self._current = hashlib.sha256()
                self._filled = 0

    def result(self) -> Digests:
        outer = self._digests.copy()
        if self._filled:
            outer.update(self._current.digest())
        return Digests(outer.hexdigest(), self._whole.hexdigest(), self.size)


def content_hash(data: bytes) -> str:
    """The content hash of an in-memory byte string."""
    h = StreamHasher()
    h.update(data)
    return h.result().content_hash


def hash_into(h: StreamHasher, path: Path, limit: int | None = None, chunk: int = 1 << 20) -> None:
    """Feed the first `limit` bytes of a file (all of it if None) to `h`. Blocking."""
    left = limit
    with open(path, "rb") as f:
        while left is None or left > 0:
            want = chunk if left is None else min(chunk, left)
            data = f.read(want)
            if not data:
                break
            h.update(data)
            if left is not None:
                left -= len(data)


def hash_file(path: Path) -> Digests:
    """Both digests of a file on disk. Blocking: run it in a thread."""
    h = StreamHasher()
    hash_into(h, path)
    return h.result()
