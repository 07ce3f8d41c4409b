"""SIGKILL the sync mid-download, run it again: it completes, resumes, and never shows a partial."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path


from hub.media.auth import TokenFile, Tokens
from hub.media.contenthash import hash_file
from tests.media_fakecloud import FakeCloud

MiB = 1 << 20


async def run_sync(data: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", "sync", "--once", "--quiet", "--data", str(data),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=Path(__file__).parent.parent,
    )


def visible_files(media: Path) -> dict[str, Path]:
    return {str(p.relative_to(media)): p for p in media.rglob("*") if p.is_file() and ".partial" not in p.relative_to(media).parts}


def library_rows(data: Path) -> set[str]:
    db = sqlite3.connect(f"file:{data / 'hub.db'}?mode=ro", uri=True)
    try:
        return {r[0] for r in db.execute("SELECT cloud_id FROM media")}
    finally:
        db.close()


async def test_sigkill_mid_download_then_rerun(cloud: FakeCloud, tmp_path: Path) -> None:
    small = [cloud.put(f"/small/{i}.jpg", os.urandom(50_000 + i)) for i in range(3)]
    big = cloud.put("/big/film.mp4", os.urandom(8 * MiB))
    data = tmp_path / "data"
    t = cloud.issue()
    TokenFile(data).save(Tokens(cloud.url, t["access_token"], t["refresh_token"], None))
    cloud.faults.trickle = 4 * MiB  # bytes/s: the film takes ~2 s

    halfway = cloud.wait_sent(big.id, 7 * MiB)  # past the first 4 MiB block's checkpoint
    proc = await run_sync(data)
    try:
        await asyncio.wait_for(halfway, 30)
    finally:
        proc.kill()  # SIGKILL: no cleanup code runs
        await proc.wait()
    assert proc.returncode == -9

    # nothing unverified is visible: the film is only in .partial, and whatever is visible is exact
    media = data / "media"
    seen = visible_files(media)
    assert "big/film.mp4" not in seen
    truth = {f.path.lstrip("/"): f.hash for f in cloud.files.values()}
    for rel, path in seen.items():
        assert hash_file(path).content_hash == truth[rel]
    finished = library_rows(data)
    assert {f.id for f in small} <= finished and big.id not in finished
    partials = list((media / ".partial").glob("*.partial"))
    assert len(partials) == 1 and partials[0].stat().st_size >= 1 * MiB  # page-cache writes survive SIGKILL
    kept = partials[0].stat().st_size
    sidecar = json.loads(partials[0].with_name(partials[0].name + ".json").read_text())
    saved = len(sidecar["blocks"])  # digests of blocks fsynced before the kill
    assert saved >= 1 or kept < 5 * MiB  # the 4 MiB checkpoint is written before the 5th MiB

    cloud.faults.trickle = None
    before = len(cloud.requests)
    proc = await run_sync(data)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()
    second = cloud.requests[before:]
    assert [r["id"] for r in second] == [big.id]  # finished files were not fetched again
    assert second[0]["range"] == f"bytes={kept}-" and second[0]["status"] == 206
    assert second[0]["sent"] == 8 * MiB - kept  # nothing re-downloaded
    said = " ".join(out.decode().split())
    assert f"{8 * MiB - kept} bytes received, {kept} resumed" in said
    # the block digests saved before the kill were kept: only the block it cut was read back
    rehashed = int(re.search(r"(\d+) re-hashed", said).group(1))  # type: ignore[union-attr]
    assert rehashed == kept - saved * 4 * MiB

    manifest = tmp_path / "manifest"
    manifest.write_text(cloud.manifest())
    r = subprocess.run(["rclone", "check", "--checkfile", "dropbox", str(manifest), str(media)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not list((media / ".partial").iterdir())
