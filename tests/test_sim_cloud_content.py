"""Downloads from the simulated cloud: strong ETags, Range, If-Range, 416 (RFC 9110 §13–14)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from aiohttp import ClientSession
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.cloud.content_hash import content_hash
from firmware_sim.cloud.http_semantics import parse_range, plan_download
from firmware_sim.cloud.testing import RunningCloud, running_cloud

DATA = os.urandom(300_000)


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[RunningCloud]:
    lib = tmp_path / "lib"
    (lib / "Films").mkdir(parents=True)
    (lib / "Films" / "clip.mp4").write_bytes(DATA)
    (lib / "empty.txt").write_bytes(b"")
    async with running_cloud(lib) as c:
        yield c


@pytest.fixture
async def http(cloud: RunningCloud) -> AsyncIterator[ClientSession]:
    async with ClientSession() as s:
        token = await cloud.token(s)
        s.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield s


async def file_url(cloud: RunningCloud, http: ClientSession, path: str) -> tuple[str, dict]:
    async with http.get(f"{cloud.url}/v1/changes") as r:
        entries = (await r.json())["entries"]
    entry = next(e for e in entries if e["path"] == path)
    return f"{cloud.url}/v1/files/{entry['id']}/content", entry


async def test_full_download_has_strong_content_etag(cloud, http):
    url, entry = await file_url(cloud, http, "/Films/clip.mp4")
    async with http.get(url) as r:
        body = await r.read()
    assert r.status == 200 and body == DATA
    assert r.headers["ETag"] == f'"{entry["content_hash"]}"' == f'"{content_hash(DATA)}"'
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Length"] == str(len(DATA))
    assert r.headers["Content-Type"] == "video/mp4"
    assert "Content-Encoding" not in r.headers
    assert "Last-Modified" in r.headers


@pytest.mark.parametrize("header,start,end", [
    ("bytes=0-99", 0, 100),
    ("bytes=1000-", 1000, len(DATA)),
    ("bytes=-500", len(DATA) - 500, len(DATA)),
    ("bytes=299990-400000", 299_990, len(DATA)),  # last-pos past the end is clipped
])
async def test_single_range_gives_206(cloud, http, header, start, end):
    url, _ = await file_url(cloud, http, "/Films/clip.mp4")
    async with http.get(url, headers={"Range": header}) as r:
        body = await r.read()
    assert r.status == 206
    assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert r.headers["Content-Length"] == str(end - start)
    assert body == DATA[start:end]


async def test_if_range_matching_etag_resumes_else_sends_everything(cloud, http):
    url, entry = await file_url(cloud, http, "/Films/clip.mp4")
    etag = f'"{entry["content_hash"]}"'
    async with http.get(url, headers={"Range": "bytes=100000-", "If-Range": etag}) as r:
        assert r.status == 206 and await r.read() == DATA[100_000:]
    for stale in ('"0000"', f"W/{etag}"):  # weak tags never match (RFC 9110 §13.1.5)
        async with http.get(url, headers={"Range": "bytes=100000-", "If-Range": stale}) as r:
            assert r.status == 200 and await r.read() == DATA
    async with http.get(url, headers={"Range": "bytes=10-",
                                      "If-Range": r.headers["Last-Modified"]}) as r:
        assert r.status == 206 and await r.read() == DATA[10:]


async def test_file_changed_since_resume_point_gives_200_with_new_content(cloud, http):
    url, entry = await file_url(cloud, http, "/Films/clip.mp4")
    new = b"recut" * 1000
    await cloud.library.put("/Films/clip.mp4", new)
    async with http.get(url, headers={"Range": "bytes=100-",
                                      "If-Range": f'"{entry["content_hash"]}"'}) as r:
        assert r.status == 200 and await r.read() == new
        assert r.headers["ETag"] == f'"{content_hash(new)}"'


async def test_unsatisfiable_range_is_416_with_the_size(cloud, http):
    url, _ = await file_url(cloud, http, "/Films/clip.mp4")
    for header in (f"bytes={len(DATA)}-", "bytes=999999999-", "bytes=-0"):
        async with http.get(url, headers={"Range": header}) as r:
            assert r.status == 416
            assert r.headers["Content-Range"] == f"bytes */{len(DATA)}"
            assert await r.read() == b""


async def test_multiple_or_bad_ranges_are_ignored(cloud, http):
    url, _ = await file_url(cloud, http, "/Films/clip.mp4")
    for header in ("bytes=0-1,5-6", "bytes=9-3", "items=0-3", "bytes=abc"):
        async with http.get(url, headers={"Range": header}) as r:
            assert r.status == 200 and await r.read() == DATA


async def test_if_none_match_and_head(cloud, http):
    url, entry = await file_url(cloud, http, "/Films/clip.mp4")
    async with http.get(url, headers={"If-None-Match": f'"{entry["content_hash"]}"'}) as r:
        assert r.status == 304
    async with http.head(url) as r:
        assert r.status == 200 and r.headers["Content-Length"] == str(len(DATA))
        assert r.headers["ETag"] == f'"{entry["content_hash"]}"'


async def test_empty_file(cloud, http):
    url, entry = await file_url(cloud, http, "/empty.txt")
    assert entry["content_hash"] == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    async with http.get(url) as r:
        assert r.status == 200 and await r.read() == b""
    async with http.get(url, headers={"Range": "bytes=0-"}) as r:
        assert r.status == 416 and r.headers["Content-Range"] == "bytes */0"


async def test_unknown_or_deleted_file_is_404(cloud, http):
    url, _ = await file_url(cloud, http, "/Films/clip.mp4")
    async with http.get(f"{cloud.url}/v1/files/f_nope/content") as r:
        assert r.status == 404
    os.unlink(cloud.library.root / "Films" / "clip.mp4")
    async with http.get(url) as r:
        assert r.status == 404


async def test_manifest_lists_every_file_relative_to_the_root(cloud, http):
    async with http.get(f"{cloud.url}/v1/manifest") as r:
        text = await r.text()
    assert text == (f"{content_hash(DATA)}  Films/clip.mp4\n"
                    f"{content_hash(b'')}  empty.txt\n")


# -- the pure planner ----------------------------------------------------------------------
@given(size=st.integers(0, 10_000), first=st.integers(0, 12_000) | st.none(),
       last=st.integers(0, 12_000) | st.none())
def test_plan_never_leaves_the_representation(size, first, last):
    header = f"bytes={'' if first is None else first}-{'' if last is None else last}"
    plan = plan_download(size=size, etag='"x"', range_header=header)
    assert plan.status in (200, 206, 416)
    if plan.status == 206:
        assert 0 <= plan.start < plan.end <= size
        if first is not None:
            assert plan.start == first
        else:
            assert plan.end == size and plan.length == min(last, size)
    if plan.status == 200:
        assert (plan.start, plan.end) == (0, size)
    if plan.status == 416:
        assert plan.content_range() == f"bytes */{size}"


def test_parse_range_cases():
    assert parse_range("bytes=0-0", 10) == (0, 1)
    assert parse_range("bytes=-20", 10) == (0, 10)
    assert parse_range("bytes=10-", 10) == "unsatisfiable"
    assert parse_range("bytes=-5", 0) is None
    assert parse_range("bytes=5-2", 10) is None


def test_if_range_date_must_equal_last_modified():
    when = datetime(2025, 6, 1, 10, 0, 0, tzinfo=timezone.utc)
    kwargs = dict(size=100, etag='"e"', last_modified=when, range_header="bytes=5-")
    assert plan_download(**kwargs, if_range="Sun, 01 Jun 2025 10:00:00 GMT").status == 206
    assert plan_download(**kwargs, if_range="Sun, 01 Jun 2025 09:00:00 GMT").status == 200
    assert plan_download(**kwargs, if_range="not a date").status == 200


async def test_block_hashes_verify_against_the_content_hash(tmp_path: Path):
    import hashlib

    from firmware_sim.cloud.content_hash import BLOCK_SIZE

    lib = tmp_path / "lib"
    lib.mkdir()
    data = os.urandom(2 * BLOCK_SIZE + 10)
    (lib / "big.bin").write_bytes(data)
    async with running_cloud(lib) as cloud, ClientSession() as s:
        token = await cloud.token(s)
        s.headers["Authorization"] = f"Bearer {token['access_token']}"
        url, entry = await file_url(cloud, s, "/big.bin")
        async with s.get(url.replace("/content", "/blocks")) as r:
            body = await r.json()
    assert body["block_size"] == BLOCK_SIZE and len(body["blocks"]) == 3
    assert body["blocks"][2] == hashlib.sha256(data[2 * BLOCK_SIZE:]).hexdigest()
    joined = b"".join(bytes.fromhex(b) for b in body["blocks"])
    assert hashlib.sha256(joined).hexdigest() == entry["content_hash"] == content_hash(data)
