"""SIGKILL a sync at any step: nothing unverified is ever visible, the library never lists a file
that isn't there and exact, and the next run finishes the job (checked by rclone)."""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from hub.media.auth import TokenFile, Tokens
from hub.media.contenthash import hash_file
from tests.media_fakecloud import FakeCloud

ROOT = Path(__file__).parent.parent
RUNNER = Path(__file__).parent / "media_crash_runner.py"
MiB = 1 << 20


async def sync_killed_at(n: int, data: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(RUNNER), str(n), str(data), "sync", "--once", "--quiet", "--data", str(data),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def check_nothing_unverified(cloud: FakeCloud, data: Path) -> None:
    """Every visible file has exactly its cloud bytes; every listed file is there and exact."""
    media = data / "media"
    truth = {f.path.lstrip("/"): f.hash for f in cloud.files.values()}
    visible = [p for p in media.rglob("*") if p.is_file() and ".partial" not in p.relative_to(media).parts]
    for p in visible:
        rel = str(p.relative_to(media))
        assert hash_file(p).content_hash == truth[rel], f"{rel} is visible but not verified"
    if (data / "hub.db").exists():
        db = sqlite3.connect(f"file:{data / 'hub.db'}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            rows = db.execute("SELECT local_path, content_hash FROM media").fetchall() if "media" in tables else []
        finally:
            db.close()
        for local_path, content_hash in rows:
            assert (media / local_path).is_file(), f"{local_path} is listed but not on disk"
            assert hash_file(media / local_path).content_hash == content_hash


def fresh(cloud: FakeCloud, data: Path) -> None:
    shutil.rmtree(data, ignore_errors=True)
    t = cloud.issue()
    TokenFile(data).save(Tokens(cloud.url, t["access_token"], t["refresh_token"], None))


async def test_sigkill_at_any_step_leaves_nothing_unverified(cloud: FakeCloud, tmp_path: Path) -> None:
    rng = random.Random(10)
    for i in range(30):
        cloud.put(f"/photos/{i % 3}/p{i:02d}.jpg", rng.randbytes(rng.randrange(0, 40_000)), kind="image")
    for i in range(2):  # several 1 MiB writes and a 4 MiB block checkpoint each
        cloud.put(f"/films/f{i}.mp4", rng.randbytes(5 * MiB + 7))
    data = tmp_path / "data"
    fresh(cloud, data)
    rc, out = await sync_killed_at(0, data)  # a whole run, to count its steps
    assert rc == 0, out
    steps = int(re.search(r"filesystem events: (\d+)", out).group(1))  # type: ignore[union-attr]
    assert steps > 60

    fresh(cloud, data)
    kills = completed = 0
    for n in sorted(rng.sample(range(1, steps), 14)) + [1, 2, 3]:
        rc, out = await sync_killed_at(n, data)
        if rc == 0:  # this run had fewer steps left than n: it finished; start over
            completed += 1
            check_nothing_unverified(cloud, data)
            fresh(cloud, data)
            continue
        assert rc == -9, out
        kills += 1
        check_nothing_unverified(cloud, data)
    assert kills >= 10

    rc, out = await sync_killed_at(0, data)  # and the next run finishes what the kills left
    assert rc == 0, out
    manifest = tmp_path / "manifest"
    manifest.write_text(cloud.manifest())
    r = subprocess.run(["rclone", "check", "--checkfile", "dropbox", str(manifest), str(data / "media")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not [p for p in (data / "media" / ".partial").iterdir()]
    check_nothing_unverified(cloud, data)
