"""The cloud's content hash: SHA-256 over the SHA-256 digests of each 4 MiB block (Dropbox style).

Pure code; `hash_file` blocks, so callers run it in a thread.  The hasher also keeps a plain
SHA-256 of the whole stream, which the library serves to the projector as X-Content-SHA256
(when it has one: a download resumed from saved block digests has none until `hub media verify`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

BLOCK = 4 * 1024 * 1024  # the block size the cloud API fixes for content_hash


@dataclass(frozen=True)
class Digests:
    """The digests of one byte stream."""

    content_hash: str  # the cloud's block hash, lowercase hex
    sha256: str | None  # plain SHA-256 of the bytes, lowercase hex; None when hashing resumed midway
    size: int


class StreamHasher:
    """Feed bytes in any chunking; `result()` gives the block hash and the plain SHA-256.

    `StreamHasher(blocks)` resumes after whole blocks hashed earlier (their digests, in order):
    the block hash continues exactly, but the plain SHA-256 can't (hashlib state can't be saved).
    """

    def __init__(self, blocks: Iterable[bytes] = ()) -> None:
        self._digests = hashlib.sha256()  # hash of the concatenated block digests
        self.blocks: list[bytes] = []  # the digests of the complete blocks so far
        for digest in blocks:
            self._add_block(digest)
        self._current = hashlib.sha256()
        self._filled = 0
        self._whole = hashlib.sha256() if not self.blocks else None
        self.size = len(self.blocks) * BLOCK

    def _add_block(self, digest: bytes) -> None:
        self._digests.update(digest)
        self.blocks.append(digest)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if self._whole is not None:
            self._whole.update(view)
        self.size += len(view)
        pos = 0
        while pos < len(view):
            n = min(BLOCK - self._filled, len(view) - pos)
            self._current.update(view[pos : pos + n])
            self._filled += n
            pos += n
            if self._filled == BLOCK:
                self._add_block(self._current.digest())
                self._current = hashlib.sha256()
                self._filled = 0

    def result(self) -> Digests:
        outer = self._digests.copy()
        if self._filled:
            outer.update(self._current.digest())
        return Digests(outer.hexdigest(), self._whole.hexdigest() if self._whole else None, self.size)


def content_hash(data: bytes) -> str:
    """The content hash of an in-memory byte string."""
    h = StreamHasher()
    h.update(data)
    return h.result().content_hash


def hash_into(h: StreamHasher, path: Path, limit: int | None = None, chunk: int = 1 << 20, start: int = 0) -> None:
    """Feed `limit` bytes of a file from `start` (to the end if None) to `h`. Blocking."""
    left = limit
    with open(path, "rb") as f:
        f.seek(start)
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
