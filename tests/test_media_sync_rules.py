"""Who may sync, and what a sync may touch: one sync per data directory across processes (`hub sync`
vs a running hub), and a file being played is neither trashed nor replaced until playback stops."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hub.media.lock import SyncBusy
from hub.media.players import media_id_of, playing_media
from tests.media_fakecloud import FakeCloud
from tests.test_media_sync import Rig, make_rig  # noqa: F401 - the fixture

ROOT = Path(__file__).parent.parent
MiB = 1 << 20


async def hub_sync_once(data: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", "sync", "--once", "--quiet", "--data", str(data),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, " ".join(out.decode().split())


async def test_hub_sync_stands_aside_while_the_hub_syncs(make_rig: Any, cloud: FakeCloud) -> None:
    film = cloud.put("/film.mp4", os.urandom(2 * MiB))
    cloud.faults.trickle = MiB  # bytes/s: the hub's pass is still running when `hub sync` starts
    rig: Rig = await make_rig()
    started = cloud.wait_sent(film.id, 64 * 1024)
    hubs_pass = asyncio.create_task(rig.engine.sync_once())
    await asyncio.wait_for(started, 30)
    rc, out = await hub_sync_once(rig.data)
    assert rc == 3, out
    assert f"hub (pid {os.getpid()}) is syncing {rig.data}" in out
    assert len(cloud.requests) == 1  # it fetched nothing
    cloud.faults.trickle = None
    report = await asyncio.wait_for(hubs_pass, 60)
    assert report.downloaded == 1
    rc, out = await hub_sync_once(rig.data)  # the hub's pass is over: now it may, and finds it done
    assert rc == 0, out
    assert "0 downloaded" in out and len(cloud.requests) == 1
    rig.assert_converged()


async def test_the_hub_waits_for_hub_sync(make_rig: Any, cloud: FakeCloud) -> None:
    film = cloud.put("/film.mp4", os.urandom(2 * MiB))
    cloud.faults.trickle = MiB
    rig: Rig = await make_rig()
    started = cloud.wait_sent(film.id, 64 * 1024)
    cli = asyncio.create_task(hub_sync_once(rig.data))
    await asyncio.wait_for(started, 30)
    with pytest.raises(SyncBusy, match=r"hub sync \(pid \d+\) is syncing"):
        await rig.engine.sync_once()
    assert "hub sync (pid" in (rig.engine.status()["last_error"] or "")
    cloud.faults.trickle = None
    rc, out = await asyncio.wait_for(cli, 60)
    assert rc == 0 and "1 downloaded" in out, out
    report = await rig.engine.sync_once()  # after it: nothing left to fetch, nothing fetched twice
    assert report.downloaded == 0 and len(cloud.requests) == 1
    rig.assert_converged()


async def test_a_file_being_played_is_kept_until_playback_stops(make_rig: Any, cloud: FakeCloud) -> None:
    gone = cloud.put("/films/gone.mp4", b"A" * 1000)
    changed = cloud.put("/films/changed.mp4", b"B" * 1000)
    rig: Rig = await make_rig()
    await rig.engine.sync_once()
    ids = {i["path"]: i["id"] for i in (await rig.library())["items"]}
    playing = {ids["/films/gone.mp4"], ids["/films/changed.mp4"]}
    rig.engine.in_use = lambda: playing
    cloud.delete(gone.id)
    cloud.put("/films/changed.mp4", b"new B", id=changed.id)

    report = await rig.engine.sync_once()
    assert (report.deferred, report.deleted, report.downloaded) == (2, 0, 0)
    assert (rig.media / "films/gone.mp4").read_bytes() == gone.data  # still there, still the same bytes
    assert (rig.media / "films/changed.mp4").read_bytes() == changed.data
    assert not (rig.data / "media-trash").exists()

    playing.clear()  # playback stopped
    report = await rig.engine.sync_once()
    assert (report.deferred, report.deleted, report.downloaded) == (0, 1, 1)
    assert [p.name for p in (rig.data / "media-trash").rglob("*") if p.is_file()] == ["gone.mp4"]
    rig.assert_converged()


def test_which_files_the_players_are_showing() -> None:
    def device(online: bool, **values: Any) -> SimpleNamespace:
        return SimpleNamespace(state=SimpleNamespace(online=online, values=values))

    url = "http://hub:8080/media/file/{}?exp=1&sig=ab"
    hub = SimpleNamespace(registry=SimpleNamespace(devices={
        "a": device(True, media_state="playing", media_url=url.format(7)),
        "b": device(True, media_state="paused", media_url=url.format(8)),
        "c": device(True, media_state="stopped", media_url=url.format(9)),
        "d": device(False, media_state="playing", media_url=url.format(10)),  # remembered, not live
        "e": device(True, media_state="playing", media_url="http://elsewhere/film.mp4"),
        "f": device(True, power=True),
    }))
    assert playing_media(hub)() == {7, 8}  # type: ignore[arg-type]
    assert media_id_of("/media/file/12?exp=1") == 12
    for bad in (None, 5, "", "/media/file/", "/media/file/\u00b2", "/other/file/3", "/media/file/3/x"):
        assert media_id_of(bad) is None
