"""The simulated cloud's change feed: listing, paging, deltas, 410 reset and long-poll."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession

from firmware_sim.cloud.content_hash import content_hash
from firmware_sim.cloud.testing import RunningCloud, running_cloud


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[RunningCloud]:
    lib = tmp_path / "lib"
    (lib / "Films").mkdir(parents=True)
    (lib / "Photos" / "2025").mkdir(parents=True)
    (lib / "Films" / "Holiday 2025.mp4").write_bytes(b"film" * 1000)
    (lib / "Photos" / "2025" / "beach.png").write_bytes(b"png-ish")
    (lib / "Photos" / "cat.jpg").write_bytes(b"jpeg-ish")
    (lib / ".hidden-partial").write_bytes(b"not served")
    async with running_cloud(lib, max_tombstones=3) as c:
        yield c


@pytest.fixture
async def http(cloud: RunningCloud) -> AsyncIterator[ClientSession]:
    async with ClientSession() as s:
        token = await cloud.token(s)
        s.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield s


async def get_changes(cloud: RunningCloud, http: ClientSession, cursor: str | None = None,
                      limit: int | None = None) -> tuple[int, dict]:
    params = {}
    if cursor is not None:
        params["cursor"] = cursor
    if limit is not None:
        params["limit"] = str(limit)
    async with http.get(f"{cloud.url}/v1/changes", params=params) as r:
        return r.status, await r.json()


async def list_all(cloud, http, limit=2) -> tuple[list[dict], str, int]:
    """Follow has_more to the end; returns entries, the final cursor and the page count."""
    entries, cursor, pages = [], None, 0
    while True:
        status, page = await get_changes(cloud, http, cursor, limit)
        assert status == 200
        entries += page["entries"]
        cursor = page["cursor"]
        pages += 1
        if not page["has_more"]:
            return entries, cursor, pages


async def test_full_listing_pages_through_everything_once(cloud, http):
    entries, _, pages = await list_all(cloud, http, limit=2)
    paths = [e["path"] for e in entries]
    assert sorted(paths) == ["/Films", "/Films/Holiday 2025.mp4", "/Photos", "/Photos/2025",
                             "/Photos/2025/beach.png", "/Photos/cat.jpg"]
    assert pages == 3
    # parents come before their children, so a client can apply entries in order
    for i, path in enumerate(paths):
        parent = path.rsplit("/", 1)[0]
        assert parent == "" or paths.index(parent) < i
    film = next(e for e in entries if e["path"] == "/Films/Holiday 2025.mp4")
    assert film["tag"] == "file" and film["size"] == 4000
    assert film["content_hash"] == content_hash(b"film" * 1000)
    assert film["media_type"] == "video/mp4" and film["media"]["kind"] == "video"
    assert film["id"].startswith("f_") and film["rev"]
    assert film["server_modified"].endswith("Z")
    folder = next(e for e in entries if e["path"] == "/Films")
    assert folder == {"tag": "folder", "id": folder["id"], "path": "/Films"}


async def test_nothing_new_means_an_empty_page(cloud, http):
    _, cursor, _ = await list_all(cloud, http)
    status, page = await get_changes(cloud, http, cursor)
    assert status == 200 and page == {"entries": [], "cursor": cursor, "has_more": False}


async def test_deltas_after_add_change_delete(cloud, http):
    entries, cursor, _ = await list_all(cloud, http)
    ids = {e["path"]: e["id"] for e in entries}
    revs = {e["path"]: e.get("rev") for e in entries}

    await cloud.library.put("/Films/New film.mp4", b"new")
    status, page = await get_changes(cloud, http, cursor)
    assert status == 200
    assert [(e["tag"], e["path"]) for e in page["entries"]] == [("file", "/Films/New film.mp4")]
    cursor = page["cursor"]

    await cloud.library.put("/Photos/cat.jpg", b"a different cat")
    status, page = await get_changes(cloud, http, cursor)
    [changed] = page["entries"]
    assert changed["path"] == "/Photos/cat.jpg" and changed["id"] == ids["/Photos/cat.jpg"]
    assert changed["rev"] != revs["/Photos/cat.jpg"]
    assert changed["content_hash"] == content_hash(b"a different cat")
    cursor = page["cursor"]

    await cloud.library.remove("/Films/Holiday 2025.mp4")
    status, page = await get_changes(cloud, http, cursor)
    assert page["entries"] == [{"tag": "deleted", "id": ids["/Films/Holiday 2025.mp4"],
                                "path": "/Films/Holiday 2025.mp4"}]


async def test_files_changed_directly_on_disk_show_up(cloud, http):
    _, cursor, _ = await list_all(cloud, http)
    lib = cloud.library.root
    (lib / "Documents").mkdir()
    (lib / "Documents" / "scan.pdf").write_bytes(b"%PDF-1.4 ...")
    os.unlink(lib / "Photos" / "cat.jpg")
    status, page = await get_changes(cloud, http, cursor)
    got = [(e["tag"], e["path"]) for e in page["entries"]]
    assert got == [("deleted", "/Photos/cat.jpg"), ("folder", "/Documents"),
                   ("file", "/Documents/scan.pdf")]


async def test_removing_a_folder_deletes_children_first(cloud, http):
    _, cursor, _ = await list_all(cloud, http)
    await cloud.library.remove("/Photos/2025")
    status, page = await get_changes(cloud, http, cursor)
    assert [(e["tag"], e["path"]) for e in page["entries"]] == [
        ("deleted", "/Photos/2025/beach.png"), ("deleted", "/Photos/2025")]


async def test_cursor_older_than_the_journal_gets_410(cloud, http):
    _, old_cursor, _ = await list_all(cloud, http)
    for name in ("a", "b", "c", "d"):  # the journal keeps 3 deletions
        await cloud.library.put(f"/tmp-{name}", b"x")
        await cloud.library.remove(f"/tmp-{name}")
    status, body = await get_changes(cloud, http, old_cursor)
    assert status == 410 and body["error"] == "reset"
    # relisting without a cursor works and gives a cursor that works
    entries, cursor, _ = await list_all(cloud, http)
    assert len(entries) == 6
    assert (await get_changes(cloud, http, cursor))[0] == 200


async def test_forced_reset(cloud, http):
    _, cursor, _ = await list_all(cloud, http)
    cloud.library.reset_history()
    assert (await get_changes(cloud, http, cursor)) [0] == 410


async def test_bad_cursor_and_limit(cloud, http):
    status, body = await get_changes(cloud, http, "%%%garbage")
    assert status == 400 and body["error"] == "invalid_cursor"
    _, cursor, _ = await list_all(cloud, http)
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    assert (await get_changes(cloud, http, tampered))[0] in (400, 410)
    for limit in (0, 2001):
        status, body = await get_changes(cloud, http, limit=limit)
        assert status == 400 and body["error"] == "invalid_request"
    async with http.get(f"{cloud.url}/v1/changes", params={"limit": "ten"}) as r:
        assert r.status == 400


async def test_cursor_from_another_server_run_gets_410(tmp_path: Path, cloud, http):
    _, cursor, _ = await list_all(cloud, http)
    async with running_cloud(cloud.library.root) as other, ClientSession() as s:
        token = await other.token(s)
        async with s.get(f"{other.url}/v1/changes", params={"cursor": cursor},
                         headers={"Authorization": f"Bearer {token['access_token']}"}) as r:
            assert r.status == 410


async def test_long_poll_returns_when_a_file_is_added(cloud, http):
    _, cursor, _ = await list_all(cloud, http)

    async def wait() -> dict:
        async with http.get(f"{cloud.url}/v1/changes/wait",
                            params={"cursor": cursor, "timeout": "60"}) as r:
            assert r.status == 200
            return await r.json()

    waiter = asyncio.create_task(wait())
    await asyncio.wait_for(cloud.library.long_poll_parked.wait(), 10)  # parked, then change
    await cloud.library.put("/Photos/new.png", b"new photo")
    assert await asyncio.wait_for(waiter, 10) == {"changes": True}


async def test_long_poll_sees_disk_changes_through_the_watcher(tmp_path: Path):
    lib = tmp_path / "lib"
    lib.mkdir()
    async with running_cloud(lib, scan_interval=0.05) as cloud, ClientSession() as s:
        token = await cloud.token(s)
        s.headers["Authorization"] = f"Bearer {token['access_token']}"
        async with s.get(f"{cloud.url}/v1/changes") as r:
            cursor = (await r.json())["cursor"]
        req = asyncio.create_task(s.get(f"{cloud.url}/v1/changes/wait",
                                        params={"cursor": cursor, "timeout": "60"}))
        await asyncio.wait_for(cloud.library.long_poll_parked.wait(), 10)
        (lib / "dropped.pdf").write_bytes(b"%PDF")
        resp = await asyncio.wait_for(req, 10)
        assert await resp.json() == {"changes": True}
        resp.release()


async def test_long_poll_times_out_without_changes(cloud, http):
    _, cursor, _ = await list_all(cloud, http)
    async with http.get(f"{cloud.url}/v1/changes/wait",
                        params={"cursor": cursor, "timeout": "1"}) as r:
        assert await r.json() == {"changes": False}


async def test_long_poll_on_stale_cursor_is_410(cloud, http):
    _, cursor, _ = await list_all(cloud, http)
    cloud.library.reset_history()
    async with http.get(f"{cloud.url}/v1/changes/wait",
                        params={"cursor": cursor, "timeout": "5"}) as r:
        assert r.status == 410 and (await r.json())["error"] == "reset"
    async with http.get(f"{cloud.url}/v1/changes/wait") as r:
        assert r.status == 400


async def test_latest_cursor_only_sees_future_changes(cloud, http):
    async with http.get(f"{cloud.url}/v1/changes/latest_cursor") as r:
        cursor = (await r.json())["cursor"]
    await cloud.library.put("/later.txt", b"later")
    _, page = await get_changes(cloud, http, cursor)
    assert [e["path"] for e in page["entries"]] == ["/later.txt"]


async def test_changes_made_while_paging_are_not_missed(cloud, http):
    status, first = await get_changes(cloud, http, limit=2)
    seen = {e["path"] for e in first["entries"]}
    # change an item already listed and add a new one mid-listing
    await cloud.library.put("/Films/Holiday 2025.mp4", b"recut")
    await cloud.library.put("/Films/Sequel.mp4", b"sequel")
    cursor = first["cursor"]
    while True:
        status, page = await get_changes(cloud, http, cursor, 2)
        seen |= {e["path"] for e in page["entries"]}
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    assert "/Films/Sequel.mp4" in seen
    assert len(seen) == 7


# -- the journal's core promise, as a property: a client that applies pages in order (and
# relists after a reset) ends with exactly the server's items, whatever happens meanwhile
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.cloud.journal import ChangeJournal, CursorReset, Entry

_ops = st.lists(st.one_of(
    st.tuples(st.just("put"), st.sampled_from("abcdef")),
    st.tuples(st.just("del"), st.sampled_from("abcdef")),
    st.tuples(st.just("page"), st.integers(1, 3)),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops=_ops, max_tombstones=st.integers(1, 4))
def test_paged_client_converges_on_the_server_state(ops, max_tombstones):
    journal = ChangeJournal(max_tombstones)
    view: dict[str, str] = {}
    cursor: tuple[int, int | None] = (0, None)
    building: dict[str, str] | None = {}  # the view a (re)listing is building
    version = 0

    def page(limit: int) -> bool:
        nonlocal cursor, view, building
        try:
            p = journal.changes(cursor[0], cursor[1], limit)
        except CursorReset:
            cursor, building = (0, None), {}
            return True
        target = building if building is not None else view
        for e in p.entries:
            if e.tag == "deleted":
                target.pop(e.path, None)
            else:
                target[e.path] = e.rev
        cursor = (p.next_seq, p.next_known)
        if not p.has_more and building is not None:
            view, building = building, None
        return p.has_more

    for op, arg in ops:
        if op == "put":
            version += 1
            journal.upsert(Entry("file", f"f_{arg}", f"/{arg}", rev=str(version)))
        elif op == "del":
            journal.delete(f"/{arg}")
        else:
            page(arg)
    for _ in range(1000):
        if not page(2) and building is None:
            break
    assert view == {e.path: e.rev for e in journal.live()}


async def test_shutdown_answers_pending_long_polls(tmp_path: Path):
    lib = tmp_path / "lib"
    lib.mkdir()
    async with ClientSession() as s:
        async with running_cloud(lib) as cloud:
            token = await cloud.token(s)
            s.headers["Authorization"] = f"Bearer {token['access_token']}"
            async with s.get(f"{cloud.url}/v1/changes") as r:
                cursor = (await r.json())["cursor"]

            async def wait() -> dict:
                async with s.get(f"{cloud.url}/v1/changes/wait",
                                 params={"cursor": cursor, "timeout": "300"}) as r:
                    return await r.json()

            waiter = asyncio.create_task(wait())
            await asyncio.wait_for(cloud.library.long_poll_parked.wait(), 10)
        # leaving the block stopped the server; it must not sit out the 300 s timeout
        assert await asyncio.wait_for(waiter, 30) == {"changes": False}


@given(garbage=st.text(max_size=60) | st.binary(max_size=60).map(
    lambda b: __import__("base64").urlsafe_b64encode(b).decode()))
def test_garbage_cursors_are_rejected_cleanly(garbage):
    from firmware_sim.cloud.journal import CursorCodec, CursorInvalid

    codec = CursorCodec()
    try:
        codec.decode(garbage)
    except (CursorInvalid, CursorReset):
        pass
    assert codec.decode(codec.encode(5, 3)) == (5, 3)


async def test_a_vanished_library_root_is_not_a_mass_delete(cloud, http):
    _, cursor, _ = await list_all(cloud, http)
    root = cloud.library.root
    root.rename(root.with_name("unmounted"))
    status, page = await get_changes(cloud, http, cursor)
    assert status == 200 and page["entries"] == []
    root.with_name("unmounted").rename(root)
    await cloud.library.put("/back.txt", b"back")
    status, page = await get_changes(cloud, http, cursor)
    assert [e["path"] for e in page["entries"]] == ["/back.txt"]


async def test_unservable_names_are_skipped_and_logged_once(tmp_path: Path, caplog):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "ok.txt").write_bytes(b"ok")
    (lib / "two\nlines.txt").write_bytes(b"x")
    (lib / b"latin1-\xe9.txt".decode("utf-8", "surrogateescape")).write_bytes(b"y")
    async with running_cloud(lib) as cloud:
        for _ in range(3):
            await cloud.library.refresh()
        assert [e.path for e in cloud.library.journal.live()] == ["/ok.txt"]
        assert cloud.library.manifest().count("\n") == 1
    skipped = [r for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 2
