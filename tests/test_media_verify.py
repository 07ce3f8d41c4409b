"""`hub media verify`: damaged and missing files are reported, kept in the trash, and fetched again."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from typing import Any

from rich.console import Console

from hub.media import cli, library
from tests.media_fakecloud import FakeCloud
from tests.test_media_sync import Rig, make_rig  # noqa: F401 - the fixture


async def test_verify_reports_and_refetches_damaged_files(make_rig: Any, cloud: FakeCloud) -> None:
    for i in range(6):
        cloud.put(f"/photos/p{i}.jpg", os.urandom(5000 + i), kind="image")
    rig: Rig = await make_rig()
    await rig.engine.sync_once()
    rotten = rig.media / "photos/p1.jpg"
    good = rotten.read_bytes()
    rotten.write_bytes(good[:100] + bytes([good[100] ^ 0x10]) + good[101:])  # bit rot: same size
    (rig.media / "photos/p4.jpg").unlink()
    unhashed = next(i for i in (await rig.library())["items"] if i["path"] == "/photos/p2.jpg")
    await rig.store.call(lambda db: db.execute("UPDATE media SET sha256 = '' WHERE id = ?", [unhashed["id"]]))
    sent = cloud.body_bytes

    console = Console(file=io.StringIO(), width=200)
    assert await cli.verify(rig.data, console=console, quiet=True) == 0
    out = " ".join(console.file.getvalue().split())  # type: ignore[attr-defined]
    assert "verified 6 files" in out and "1 damaged, 1 missing" in out
    assert "damaged /photos/p1.jpg" in out and "missing /photos/p4.jpg" in out
    assert cloud.body_bytes - sent == len(good) + 5004  # only those two were fetched again
    rig.assert_converged()
    kept = [p for p in (rig.data / "media-trash").rglob("p1.jpg")]
    assert len(kept) == 1 and kept[0].read_bytes() != good  # the damaged copy is kept, not deleted
    row = await rig.store.call(lambda db: library.get(db, unhashed["id"]))
    assert row is not None and len(row["sha256"]) == 64  # filled in while verifying

    console = Console(file=io.StringIO(), width=200)
    assert await cli.verify(rig.data, console=console, quiet=True) == 0
    assert "0 damaged, 0 missing" in console.file.getvalue()  # type: ignore[attr-defined]


async def test_verify_without_refetch_only_reports(make_rig: Any, cloud: FakeCloud) -> None:
    cloud.put("/a.mp4", os.urandom(3000))
    rig: Rig = await make_rig()
    await rig.engine.sync_once()
    (rig.media / "a.mp4").write_bytes(b"short")
    console = Console(file=io.StringIO(), width=200)
    assert await cli.verify(rig.data, refetch=False, console=console, quiet=True) == 1
    assert "damaged /a.mp4" in console.file.getvalue()  # type: ignore[attr-defined]
    assert (await rig.library())["total"] == 0 and not (rig.media / "a.mp4").exists()


def test_one_cli_for_media() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60)

    out = run("-m", "hub.cli", "--help").stdout
    for command in ("sync", "cloud", "media"):
        assert command in out
    out = run("-m", "hub.cli", "media", "--help").stdout
    assert "verify" in out and "manifest" in out
    assert run("-m", "hub.media").returncode != 0  # no second entry point
