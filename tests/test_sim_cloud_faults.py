"""Every fault switch of the simulated cloud, observed from the client side."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import ClientSession

from firmware_sim.cloud import command
from firmware_sim.cloud.faults import FaultError, FaultSet, parse_spec
from firmware_sim.cloud.content_hash import content_hash
from firmware_sim.cloud.testing import RunningCloud, running_cloud

DATA = os.urandom(200_000)


@pytest.fixture
async def cloud_(tmp_path: Path) -> AsyncIterator[RunningCloud]:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "clip.mp4").write_bytes(DATA)
    (lib / "small.bin").write_bytes(b"s" * 10_000)
    async with running_cloud(lib) as c:
        yield c


@pytest.fixture
async def http(cloud_: RunningCloud) -> AsyncIterator[ClientSession]:
    async with ClientSession() as s:
        token = await cloud_.token(s)
        s.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield s


async def listing(c: RunningCloud, http: ClientSession) -> dict:
    async with http.get(f"{c.url}/v1/changes") as r:
        assert r.status == 200
        return await r.json()


async def url_of(c: RunningCloud, http: ClientSession, path: str = "/clip.mp4") -> tuple[str, dict]:
    entry = next(e for e in (await listing(c, http))["entries"] if e["path"] == path)
    return f"{c.url}/v1/files/{entry['id']}/content", entry


async def read_until_error(resp: aiohttp.ClientResponse) -> tuple[bytes, Exception | None]:
    got = bytearray()
    try:
        async for chunk in resp.content.iter_any():
            got += chunk
    except aiohttp.ClientPayloadError as exc:
        return bytes(got), exc
    return bytes(got), None


async def test_drop_after_n_bytes(cloud_, http):
    url, _ = await url_of(cloud_, http)
    cloud_.faults.set("drop_after=50000*1")
    async with http.get(url) as r:
        assert r.headers["Content-Length"] == str(len(DATA))
        got, error = await read_until_error(r)
    assert error is not None and got == DATA[:50_000]
    # the switch fired once; the next download is whole, and resuming works
    async with http.get(url, headers={"Range": "bytes=50000-"}) as r:
        assert r.status == 206 and got + await r.read() == DATA


async def test_short_body(cloud_, http):
    url, _ = await url_of(cloud_, http)
    cloud_.faults.set("short_body=1000")
    async with http.get(url) as r:
        assert r.headers["Content-Length"] == str(len(DATA))
        got, error = await read_until_error(r)
    assert error is not None and got == DATA[:-1000]


async def test_ignore_range(cloud_, http):
    url, _ = await url_of(cloud_, http)
    cloud_.faults.set("ignore_range")
    async with http.get(url, headers={"Range": "bytes=100-"}) as r:
        assert r.status == 200 and "Content-Range" not in r.headers
        assert await r.read() == DATA


async def test_mutate_mid_download(cloud_, http):
    url, entry = await url_of(cloud_, http)
    cloud_.faults.set("mutate=100000*1")
    async with http.get(url) as r:
        body = await r.read()
        announced = r.headers["ETag"]
    assert announced == f'"{entry["content_hash"]}"'
    assert len(body) == len(DATA) and content_hash(body) != entry["content_hash"]
    assert body[:100_000] == DATA[:100_000]
    # the cloud now lists a new rev and hash, and If-Range with the old ETag gets all of it
    changed = next(e for e in (await listing(cloud_, http))["entries"] if e["path"] == "/clip.mp4")
    assert changed["rev"] != entry["rev"] and changed["content_hash"] != entry["content_hash"]
    async with http.get(url, headers={"Range": "bytes=100000-", "If-Range": announced}) as r:
        assert r.status == 200
        assert content_hash(await r.read()) == changed["content_hash"]


@pytest.mark.parametrize("status", ["429", "503"])
async def test_throttling_with_retry_after(cloud_, http, status):
    url, _ = await url_of(cloud_, http)
    cloud_.faults.set(f"{status}=7*2")
    async with http.get(url) as r:
        assert r.status == int(status) and r.headers["Retry-After"] == "7"
    async with http.get(f"{cloud_.url}/v1/changes") as r:
        assert r.status == int(status)
    async with http.get(url) as r:  # count exhausted
        assert r.status == 200


async def test_retry_after_as_http_date(cloud_, http):
    cloud_.faults.set("503=30")
    cloud_.faults.set("retry_after_date")
    async with http.get(f"{cloud_.url}/v1/manifest") as r:
        assert r.status == 503
        assert parsedate_to_datetime(r.headers["Retry-After"]).tzinfo is not None


async def test_forced_reset_on_changes_and_wait(cloud_, http):
    cursor = (await listing(cloud_, http))["cursor"]
    cloud_.faults.set("reset*2")
    async with http.get(f"{cloud_.url}/v1/changes", params={"cursor": cursor}) as r:
        assert r.status == 410 and (await r.json())["error"] == "reset"
    async with http.get(f"{cloud_.url}/v1/changes/wait", params={"cursor": cursor}) as r:
        assert r.status == 410
    async with http.get(f"{cloud_.url}/v1/changes", params={"cursor": cursor}) as r:
        assert r.status == 200


async def test_reset_does_not_block_relisting(cloud_, http):
    cloud_.faults.set("reset")
    assert len((await listing(cloud_, http))["entries"]) == 2


async def test_trickle_sends_the_body_in_small_pieces(cloud_, http):
    url, _ = await url_of(cloud_, http, "/small.bin")
    cloud_.faults.set("trickle=40000")  # 4000-byte writes, 10 a second
    pieces = []
    async with http.get(url) as r:
        async for chunk in r.content.iter_any():
            pieces.append(chunk)
    assert b"".join(pieces) == b"s" * 10_000
    assert len(pieces) >= 3 and max(len(p) for p in pieces) <= 4000


async def test_backoff_on_long_poll(cloud_, http):
    cursor = (await listing(cloud_, http))["cursor"]
    await cloud_.library.put("/x", b"x")
    cloud_.faults.set("backoff=9")
    async with http.get(f"{cloud_.url}/v1/changes/wait", params={"cursor": cursor}) as r:
        assert await r.json() == {"changes": True, "backoff": 9}


async def test_token_faults(tmp_path: Path):
    async with running_cloud(tmp_path / "lib", auto_approve=True) as c, ClientSession() as s:
        token = await c.token(s)
        c.faults.set("invalid_grant*1")
        form = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"],
                "client_id": "test-hub"}
        async with s.post(f"{c.url}/oauth/token", data=form) as r:
            assert r.status == 400 and (await r.json())["error"] == "invalid_grant"
        async with s.post(f"{c.url}/oauth/token", data=form) as r:
            assert r.status == 200
        c.faults.set("slow_down*1")
        async with s.post(f"{c.url}/oauth/device/code", data={"client_id": "h"}) as r:
            grant = await r.json()
        poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": grant["device_code"], "client_id": "h"}
        async with s.post(f"{c.url}/oauth/token", data=poll) as r:
            assert (await r.json())["error"] == "slow_down"


async def test_admin_endpoint(cloud_, http):
    async with http.post(f"{cloud_.url}/_admin/faults",
                         json={"set": ["ignore_range", "503=2*1"]}) as r:
        state = await r.json()
    assert state["switches"]["ignore_range"] == {"value": None, "remaining": None}
    assert state["switches"]["503"] == {"value": 2.0, "remaining": 1}
    async with http.get(f"{cloud_.url}/v1/manifest") as r:
        assert r.status == 503
    async with http.post(f"{cloud_.url}/_admin/faults", json={"set": ["teleport"]}) as r:
        assert r.status == 400 and (await r.json())["error"] == "invalid_fault"
    async with http.post(f"{cloud_.url}/_admin/faults", data=b"{not json") as r:
        assert r.status == 400
    async with http.post(f"{cloud_.url}/_admin/faults", json={"clear": ["ignore_range"]}) as r:
        assert (await r.json())["switches"] == {}
    async with http.get(f"{cloud_.url}/_admin/faults") as r:
        assert (await r.json())["fired"] == {"503": 1}
    async with http.delete(f"{cloud_.url}/_admin/faults") as r:
        assert r.status == 200


async def test_random_mode_hits_about_the_asked_fraction(cloud_, http):
    url, _ = await url_of(cloud_, http, "/small.bin")
    cloud_.faults.set("random=0.5:1234")
    outcomes = []
    for _ in range(40):
        async with http.get(url, headers={"Range": "bytes=0-"}) as r:
            try:
                body = await r.read()
                outcomes.append("ok" if r.status == 206 and body == b"s" * 10_000 else "fault")
            except aiohttp.ClientPayloadError:
                outcomes.append("fault")
    assert 8 <= outcomes.count("fault") <= 32
    assert sum(cloud_.faults.fired.values()) == outcomes.count("fault")


def test_random_mode_is_reproducible_with_a_seed():
    def run() -> list[dict]:
        faults = FaultSet()
        faults.set("random=0.3:7")
        return [faults.pick("content", 1000) for _ in range(200)]

    first = run()
    assert first == run()
    assert 30 <= sum(1 for p in first if p) <= 90
    never = FaultSet()
    never.set("random=0")
    assert not any(never.pick("content", 10) for _ in range(100))


def test_spec_parsing():
    assert parse_spec("drop_after=1024*3")[1].value == 1024
    assert parse_spec("drop_after=1024*3")[1].remaining == 3
    assert parse_spec("ignore_range*2")[1].remaining == 2
    assert parse_spec("429")[1].value == 1
    for bad in ("nope", "drop_after=abc", "random=2", "503=1*0", "trickle=-5"):
        with pytest.raises(FaultError):
            parse_spec(bad)


def test_cli_rejects_a_bad_fault(tmp_path: Path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--library", str(tmp_path), "--fault", "teleport"])
    assert command.main(args) == 2
    assert "unknown fault" in capsys.readouterr().out
