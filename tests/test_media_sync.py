"""Sync against a fault-injecting test cloud; the result is checked by rclone, not by us."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.media import library
from hub.media.auth import TokenFile, Tokens, TokenSource
from hub.media.client import CloudClient
from hub.clock import FakeClock
from hub.media.sync import SyncEngine, SyncPolicy
from hub.media.trash import DeletePolicy
from hub.store import Store
from tests.media_fakecloud import FakeCloud

MiB = 1 << 20


@dataclass
class Rig:
    cloud: FakeCloud
    data: Path
    store: Store
    engine: SyncEngine
    clock: FakeClock
    progress: list[dict[str, Any]] = field(default_factory=list)

    @property
    def media(self) -> Path:
        return self.data / "media"

    def rclone_check(self) -> subprocess.CompletedProcess[str]:
        """rclone's own Dropbox-hash code compares the library with the cloud's manifest."""
        manifest = self.data / "manifest.dropbox"
        manifest.write_text(self.cloud.manifest())
        return subprocess.run(
            ["rclone", "check", "--checkfile", "dropbox", str(manifest), str(self.media), "--combined", "-"],
            capture_output=True, text=True, timeout=60,
        )

    def assert_converged(self) -> None:
        r = self.rclone_check()
        assert r.returncode == 0, r.stdout + r.stderr
        partial = self.media / ".partial"
        assert not partial.exists() or not any(partial.iterdir())

    async def library(self) -> dict[str, Any]:
        return await self.store.call(lambda db: library.query(db, None, None, 500, 0))


@pytest.fixture
async def make_rig(tmp_path: Path, cloud: FakeCloud) -> AsyncIterator[Any]:
    opened: list[tuple[Store, aiohttp.ClientSession]] = []

    async def make(policy: SyncPolicy = SyncPolicy(), data: Path | None = None) -> Rig:
        data = data or tmp_path / "data"
        store = Store(data / "hub.db")
        await store.start()
        session = aiohttp.ClientSession()
        opened.append((store, session))
        tf = TokenFile(data)
        if tf.load() is None:
            t = cloud.issue()
            tf.save(Tokens(cloud.url, t["access_token"], t["refresh_token"], None))
        clock = FakeClock()
        client = CloudClient(session, TokenSource(session, tf, clock), cloud.url, clock)
        rig = Rig(cloud, data, store, None, clock)  # type: ignore[arg-type]
        rig.engine = SyncEngine(store, data, client, policy=policy, clock=clock, on_progress=rig.progress.append)
        return rig

    yield make
    for store, session in opened:
        await session.close()
        await store.stop()


def fill(cloud: FakeCloud) -> None:
    cloud.put("/videos/2026/trip.mp4", os.urandom(9 * MiB + 17))
    cloud.put("/videos/block.mp4", os.urandom(4 * MiB))
    cloud.put("/photos/empty.jpg", b"", kind="image", duration_ms=None)
    for i in range(8):
        cloud.put(f"/photos/p{i}.jpg", os.urandom(1000 * (i + 1)), kind="image", duration_ms=None)
    cloud.put("/docs/Ünïcode name.pdf", b"%PDF" + os.urandom(300), kind="document", duration_ms=None)


async def test_full_sync_then_deltas_match_rclone_check(make_rig: Any, cloud: FakeCloud) -> None:
    fill(cloud)
    rig: Rig = await make_rig(SyncPolicy(page_limit=4))
    report = await rig.engine.sync_once()
    assert report.downloaded == 12 and not report.failed
    rig.assert_converged()
    # the check is not vacuous: one flipped byte makes rclone report a difference
    victim = rig.media / "photos/p3.jpg"
    good = victim.read_bytes()
    victim.write_bytes(bytes([good[0] ^ 1]) + good[1:])
    assert rig.rclone_check().returncode == 1
    victim.write_bytes(good)
    lib = await rig.library()
    assert lib["total"] == 12
    trip = next(i for i in lib["items"] if i["name"] == "trip.mp4")
    assert trip["kind"] == "video" and trip["duration_ms"] == 1000 and trip["size"] == 9 * MiB + 17

    # progress: bytes and files, ending complete
    last = [p for p in rig.progress if p["phase"] == "downloading"][-1]
    assert last["files_done"] == last["files_total"] == 12
    assert last["bytes_done"] == last["bytes_total"] == sum(len(f.data) for f in cloud.files.values())
    assert {"eta_s", "rate_bps", "current"} <= last.keys()

    # a no-op re-sync downloads nothing
    sent = cloud.body_bytes
    report = await rig.engine.sync_once()
    assert report.downloaded == 0 and cloud.body_bytes == sent

    # deltas: change, add, move, delete
    ids = {f.path: f.id for f in cloud.files.values()}
    cloud.put("/photos/p0.jpg", b"new bytes")
    cloud.put("/new/clip.mp4", os.urandom(200_000))
    cloud.move(ids["/photos/p1.jpg"], "/archive/p1.jpg")
    cloud.delete(ids["/photos/p2.jpg"])
    sent = cloud.body_bytes
    report = await rig.engine.sync_once()
    assert (report.downloaded, report.moved, report.deleted) == (2, 1, 1), report
    assert cloud.body_bytes - sent == len(b"new bytes") + 200_000  # the move cost no download
    rig.assert_converged()
    trashed = list((rig.data / "media-trash").rglob("p2.jpg"))
    assert len(trashed) == 1


async def test_resume_after_drop_at_half_uses_range(make_rig: Any, cloud: FakeCloud) -> None:
    f = cloud.put("/big.mp4", os.urandom(6 * MiB))
    half = 3 * MiB
    cloud.faults.cut_after[f.id] = half
    rig: Rig = await make_rig()
    report = await rig.engine.sync_once()
    assert report.downloaded == 1
    first, second = cloud.requests
    assert first["sent"] == half and first["range"] is None
    assert second["range"] == f"bytes={half}-" and second["if_range"] == f'"{f.hash}"' and second["status"] == 206
    c = rig.engine.counters
    assert c.resumes == 1 and c.bytes_redownloaded == 0
    assert c.bytes_received == 6 * MiB  # nothing fetched twice
    rig.assert_converged()


async def test_ignored_range_restarts_and_counts_redownloaded_bytes(make_rig: Any, cloud: FakeCloud) -> None:
    f = cloud.put("/big.mp4", os.urandom(6 * MiB))
    cloud.faults.cut_after[f.id] = 3 * MiB
    cloud.faults.ignore_range.add(f.id)
    rig: Rig = await make_rig()
    await rig.engine.sync_once()
    c = rig.engine.counters
    assert cloud.requests[1]["status"] == 200 and cloud.requests[1]["range"]
    assert c.restarts == 1 and c.bytes_redownloaded == 3 * MiB and c.bytes_received == 9 * MiB
    rig.assert_converged()


async def test_file_changed_mid_download_ends_verified(make_rig: Any, cloud: FakeCloud) -> None:
    f = cloud.put("/film.mp4", os.urandom(5 * MiB))
    new = os.urandom(5 * MiB + 3)
    cloud.faults.change_after[f.id] = (2 * MiB, new)
    rig: Rig = await make_rig()
    report = await rig.engine.sync_once()
    assert not report.failed and report.changed == 1
    resumed = cloud.requests[1]
    assert resumed["if_range"] == f'"{f.hash}"' and resumed["status"] == 200  # If-Range mismatch -> full 200
    assert (rig.media / "film.mp4").read_bytes() == new
    rig.assert_converged()


async def test_random_faults_converge(make_rig: Any, cloud: FakeCloud) -> None:
    for i in range(12):
        cloud.put(f"/f/{i:02d}.bin", os.urandom((i % 4) * MiB + 1234 * i))
    cloud.faults.random_rate = 0.5
    cloud.faults.statuses = [(429, "2"), (503, None), (429, "Wed, 21 Oct 2015 07:28:00 GMT")]
    rig: Rig = await make_rig(SyncPolicy(page_limit=5, transport_attempts=20))
    await rig.engine.sync_once()
    cloud.faults.force_410 = 1
    cloud.put("/f/late.bin", os.urandom(70_000))
    for _ in range(4):  # bounded: a few passes, as the long-running sync would make
        report = await rig.engine.sync_once()
        if not report.failed:
            break
    assert not report.failed
    faults = {r.get("fault") for r in cloud.requests} - {None}
    assert {"cut", "short", "ignore_range", "corrupt"} <= faults
    assert rig.engine.counters.verify_failures > 0
    assert rig.engine.client.retries > 0
    assert 2 in rig.clock.slept  # Retry-After honoured
    rig.assert_converged()


async def test_410_relists_and_reconciles(make_rig: Any, cloud: FakeCloud) -> None:
    fill(cloud)
    rig: Rig = await make_rig(SyncPolicy(page_limit=3))
    await rig.engine.sync_once()
    gone = next(f for f in cloud.files.values() if f.path == "/photos/p3.jpg")
    cloud.forget(gone.id)  # no tombstone: only a full listing can reveal it
    cloud.faults.force_410 = 1
    report = await rig.engine.sync_once()
    assert report.resets == 1 and report.deleted == 1 and report.downloaded == 0
    assert not (rig.media / "photos/p3.jpg").exists()
    rig.assert_converged()


async def test_no_deletion_after_an_incomplete_listing(make_rig: Any, cloud: FakeCloud) -> None:
    fill(cloud)
    rig: Rig = await make_rig(SyncPolicy(page_limit=3, transport_attempts=3))
    rig.engine.client.retry = type(rig.engine.client.retry)(attempts=3)
    await rig.engine.sync_once()
    gone = next(f for f in cloud.files.values() if f.path == "/photos/p3.jpg")
    cloud.forget(gone.id)
    cloud.faults.force_410 = 1
    cloud.faults.fail_listing_pages = 3  # the relist dies after its first page
    with pytest.raises(Exception):
        await rig.engine.sync_once()
    assert (rig.media / "photos/p3.jpg").exists()
    assert (await rig.library())["total"] == 12
    # a pass that plans while the listing is unfinished must not delete either
    plan = await rig.store.call(library.plan)
    assert not plan.listing_complete
    # the next pass finishes the listing (from its saved cursor) and only then deletes
    report = await rig.engine.sync_once()
    assert report.deleted == 1
    rig.assert_converged()


async def test_deletion_cap_holds_back_mass_deletes(make_rig: Any, cloud: FakeCloud) -> None:
    files = [cloud.put(f"/p/{i}.jpg", os.urandom(100 + i)) for i in range(30)]
    rig: Rig = await make_rig(SyncPolicy(deletes=DeletePolicy(max_deletes=100, max_fraction=0.10, always_allowed=5)))
    await rig.engine.sync_once()
    for f in files[:20]:
        cloud.delete(f.id)
    report = await rig.engine.sync_once()
    assert report.deleted == 0 and report.deletions_blocked and "cap is 5" in report.deletions_blocked
    assert len(list((rig.media / "p").iterdir())) == 30
    # a new cloud file at a held-back path gets a disambiguated name, never overwriting
    cloud.put("/p/0.jpg", b"replacement")
    report = await rig.engine.sync_once()
    assert report.downloaded == 1 and (rig.media / "p/0.jpg").read_bytes() == files[0].data
    # the owner raises the cap: the deletions go to the trash, then retention purges them
    rig.engine.policy = SyncPolicy(deletes=DeletePolicy(max_deletes=100, always_allowed=50, retention_days=7))
    report = await rig.engine.sync_once()
    assert report.deleted == 20
    assert len(list((rig.data / "media-trash").rglob("*.jpg"))) == 20
    rig.clock.t += 8 * 86400
    await rig.engine.sync_once()
    assert not list((rig.data / "media-trash").rglob("*.jpg"))


async def test_path_safety_during_sync(make_rig: Any, cloud: FakeCloud, tmp_path: Path) -> None:
    cloud.put("/../escape.mp4", b"evil")
    cloud.put("/a/../../../escape2.mp4", b"evil")
    cloud.put("/ctl\x01.mp4", b"evil")
    cloud.put("/.partial/trick.partial", b"evil")
    a1 = cloud.put("/A.jpg", b"first")
    a2 = cloud.put("/a.jpg", b"second")
    rig: Rig = await make_rig()
    report = await rig.engine.sync_once()
    assert len(report.rejected) == 4 and report.downloaded == 2
    assert not list(tmp_path.rglob("escape*"))
    assert (rig.media / "A.jpg").read_bytes() == a1.data
    assert (rig.media / f"a~{a2.id}.jpg").read_bytes() == a2.data
    # names are stable: another pass changes nothing
    report = await rig.engine.sync_once()
    assert report.downloaded == 0 and report.moved == 0


async def test_bandwidth_limit_paces_downloads(make_rig: Any, cloud: FakeCloud) -> None:
    cloud.put("/x.bin", os.urandom(MiB))
    rig: Rig = await make_rig(SyncPolicy(bandwidth=100_000))
    await rig.engine.sync_once()
    assert sum(rig.clock.slept) >= MiB / 100_000 - 1  # ~10 s of (fake) time at 100 kB/s
    rig.assert_converged()


async def test_bad_listing_entries_are_dropped_not_fatal(make_rig: Any, cloud: FakeCloud) -> None:
    cloud.put("/good.mp4", b"good")
    cloud.log.append((cloud.seq + 1, {"tag": "file", "id": "bad", "path": "/bad", "size": -1, "content_hash": "zz"}))
    cloud.log.append((cloud.seq + 2, {"tag": "mystery"}))
    cloud.seq += 2
    rig: Rig = await make_rig()
    await rig.engine.sync_once()  # the full listing
    report = await rig.engine.sync_once()  # the deltas, with the garbage
    assert not report.failed
    assert (rig.media / "good.mp4").read_bytes() == b"good"


async def test_long_poll_picks_up_changes(make_rig: Any, cloud: FakeCloud) -> None:
    cloud.put("/one.mp4", b"1")
    rig: Rig = await make_rig()
    passes: asyncio.Queue[Any] = asyncio.Queue()
    orig = rig.engine.sync_once

    async def counted() -> Any:
        r = await orig()
        passes.put_nowait(r)
        return r

    rig.engine.sync_once = counted  # type: ignore[method-assign]
    task = asyncio.create_task(rig.engine.run())
    try:
        first = await asyncio.wait_for(passes.get(), 10)
        assert first.downloaded == 1
        cloud.put("/two.mp4", b"2")
        second = await asyncio.wait_for(passes.get(), 10)
        assert second.downloaded == 1 and (rig.media / "two.mp4").read_bytes() == b"2"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_moved_and_changed_file_leaves_no_stray(make_rig: Any, cloud: FakeCloud) -> None:
    a = cloud.put("/a/one.mp4", b"version 1")
    b = cloud.put("/b/two.mp4", b"two")
    rig: Rig = await make_rig()
    await rig.engine.sync_once()
    # one.mp4 moves to where two.mp4 was and changes; two.mp4 moves away
    cloud.move(b.id, "/c/two.mp4")
    cloud.move(a.id, "/b/two.mp4")
    cloud.put("/b/two.mp4", b"version 2", id=a.id)
    report = await rig.engine.sync_once()
    assert not report.failed and not report.rejected
    rig.assert_converged()
    on_disk = sorted(str(p.relative_to(rig.media)) for p in rig.media.rglob("*") if p.is_file())
    assert on_disk == ["b/two.mp4", "c/two.mp4"]
    assert (rig.media / "b/two.mp4").read_bytes() == b"version 2"
    assert [p.name for p in (rig.data / "media-trash").rglob("*") if p.is_file()] == ["one.mp4"]


async def test_async_progress_listener_and_a_broken_one(make_rig: Any, cloud: FakeCloud) -> None:
    cloud.put("/x.mp4", os.urandom(10_000))
    rig: Rig = await make_rig()
    got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def listener(p: dict[str, Any]) -> None:
        await got.put(p)

    rig.engine.on_progress = listener
    await rig.engine.sync_once()
    first = await asyncio.wait_for(got.get(), 5)
    assert first["phase"] == "listing"

    def broken(p: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    rig.engine.on_progress = broken
    cloud.put("/y.mp4", b"y")
    report = await rig.engine.sync_once()
    assert report.downloaded == 1


async def test_revoked_access_token_is_refreshed_during_sync(make_rig: Any, cloud: FakeCloud) -> None:
    cloud.put("/a.mp4", b"a")
    rig: Rig = await make_rig()
    await rig.engine.sync_once()
    before = TokenFile(rig.data).load()
    cloud.tokens.clear()  # every access token now gets 401
    cloud.put("/b.mp4", os.urandom(100_000))
    report = await rig.engine.sync_once()
    assert report.downloaded == 1
    after = TokenFile(rig.data).load()
    assert after is not None and before is not None and after.access_token != before.access_token
    rig.assert_converged()
