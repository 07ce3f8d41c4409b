"""The Dropbox-style content hash, checked against known vectors and rclone's implementation."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.cloud.content_hash import BLOCK_SIZE, ContentHasher, HashCache, content_hash, hash_file

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def reference(data: bytes) -> str:
    """The spec, written as plainly as possible: sha256 over the 4 MiB block digests."""
    blocks = [data[i:i + BLOCK_SIZE] for i in range(0, len(data), BLOCK_SIZE)]
    return hashlib.sha256(b"".join(hashlib.sha256(b).digest() for b in blocks)).hexdigest()


def test_known_vectors():
    # zero blocks: sha256 of nothing, as Dropbox's spec example and rclone show
    assert content_hash(b"") == EMPTY
    assert content_hash(b"hello") == hashlib.sha256(hashlib.sha256(b"hello").digest()).hexdigest()
    # one full block is still hashed twice, and one extra byte makes a second block
    block = b"\0" * BLOCK_SIZE
    inner = hashlib.sha256(block).digest()
    assert content_hash(block) == hashlib.sha256(inner).hexdigest()
    assert content_hash(block + b"x") == hashlib.sha256(
        inner + hashlib.sha256(b"x").digest()).hexdigest()


@settings(max_examples=25, deadline=None)
@given(size=st.sampled_from([1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 2 * BLOCK_SIZE + 7]),
       cuts=st.lists(st.integers(0, 3 * BLOCK_SIZE), max_size=6))
def test_any_chunking_gives_the_same_hash(size, cuts):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    h = ContentHasher()
    points = sorted({0, size, *[c for c in cuts if c < size]})
    for a, b in zip(points, points[1:]):
        h.update(data[a:b])
    assert h.hexdigest() == reference(data)
    assert len(h.block_digests) == size // BLOCK_SIZE


def test_matches_rclone_hashsum_dropbox(tmp_path: Path):
    sizes = {"empty": 0, "tiny": 123, "block": BLOCK_SIZE, "block+1": BLOCK_SIZE + 1,
             "ten-mb": 10_000_000}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(os.urandom(size))
    out = subprocess.run(["rclone", "hashsum", "dropbox", str(tmp_path)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    theirs = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in out.splitlines()}
    assert theirs == {name: hash_file(tmp_path / name) for name in sizes}
    assert theirs["empty"] == EMPTY


def test_cache_hashes_a_file_once_per_version(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"one")
    cache = HashCache(max_entries=2)
    st1 = path.stat()
    assert cache.hash(path, st1.st_size, st1.st_mtime_ns, st1.st_ino) == content_hash(b"one")
    assert cache.hash(path, st1.st_size, st1.st_mtime_ns, st1.st_ino) == content_hash(b"one")
    assert cache.misses == 1
    path.write_bytes(b"two!")
    st2 = path.stat()
    assert cache.hash(path, st2.st_size, st2.st_mtime_ns, st2.st_ino) == content_hash(b"two!")
    assert cache.misses == 2
