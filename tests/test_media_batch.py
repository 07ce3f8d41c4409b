"""Landed files are listed in batches: by count, by bytes, or after a short delay; a batch that
cannot be listed leaves its files for the next pass to adopt, and says so."""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath
from typing import Any

from hub.media import library
from hub.media.batch import BatchPolicy, InstallBatch, Landed
from hub.clock import FakeClock
from hub.store import Store


def landed(i: int, size: int = 10) -> Landed:
    remote = {"cloud_id": f"id{i}", "path": f"/d{i % 3}/f{i}.jpg", "rev": "1", "size": size,
              "content_hash": "0" * 64, "media_type": "image/jpeg", "kind": "image", "width": None,
              "height": None, "duration_ms": None, "server_modified": None}
    return Landed(remote, PurePosixPath(f"d{i % 3}/f{i}.jpg"), None, adopted=False)


async def make(tmp_path: Path, policy: BatchPolicy, **hooks: Any) -> tuple[InstallBatch, Store]:
    store = Store(tmp_path / "hub.db")
    await store.start()
    media = tmp_path / "media"
    for d in range(3):
        (media / f"d{d}").mkdir(parents=True, exist_ok=True)
    (media / ".partial").mkdir()
    return InstallBatch(store, media, (media / ".partial",), FakeClock(), policy=policy, **hooks), store


async def test_batches_by_count_and_the_rest_on_close(tmp_path: Path) -> None:
    listed: list[int] = []
    batch, store = await make(tmp_path, BatchPolicy(max_files=500, max_delay=3600),
                              on_listed=lambda items: listed.append(len(items)))
    try:
        for i in range(1200):
            await batch.add(landed(i))
        assert listed == [500, 500]
        await batch.close()
        assert listed == [500, 500, 200] and batch.batches == 3
        assert len(await store.call(library.local_files)) == 1200
    finally:
        await store.stop()


async def test_a_big_file_or_the_delay_flushes_early(tmp_path: Path) -> None:
    listed: list[int] = []
    done = asyncio.Event()

    def on_listed(items: list[Landed]) -> None:
        listed.append(len(items))
        done.set()

    batch, store = await make(tmp_path, BatchPolicy(max_files=500, max_bytes=1000, max_delay=0.5), on_listed=on_listed)
    try:
        await batch.add(landed(1, size=10))
        await batch.add(landed(2, size=5000))  # past max_bytes: listed now, with the one before
        assert listed == [2]
        done.clear()
        await batch.add(landed(3))
        await asyncio.wait_for(done.wait(), 5)  # the (fake) half second passed: listed without more files
        assert listed == [2, 1]
        await batch.close()
    finally:
        await store.stop()


async def test_a_batch_that_cannot_be_listed_is_reported(tmp_path: Path) -> None:
    failed: list[tuple[int, str]] = []
    batch, store = await make(tmp_path, BatchPolicy(max_delay=3600),
                              on_failed=lambda items, exc: failed.append((len(items), type(exc).__name__)))
    try:
        (tmp_path / "media" / "d1").rmdir()  # a folder the batch must fsync is gone
        await batch.add(landed(1))
        await batch.close()
        assert failed == [(1, "FileNotFoundError")] and batch.batches == 0
        assert await store.call(library.local_files) == []
    finally:
        await store.stop()
