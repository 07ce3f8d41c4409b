"""The media routes: listing, sync control, play, and signed Range-capable file URLs."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub.media import MediaService, add_routes
from hub.media.auth import TokenFile, Tokens
from hub.clock import FakeClock
from hub.store import Store
from tests.media_fakecloud import FakeCloud


class Hub:
    def __init__(self, client: TestClient, service: MediaService, plays: list[tuple[str, str]], clock: FakeClock) -> None:
        self.client, self.service, self.plays, self.clock = client, service, plays, clock


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    store = Store(tmp_path / "hub.db")
    await store.start()
    plays: list[tuple[str, str]] = []

    async def play(device: str, url: str) -> dict[str, Any]:
        plays.append((device, url))
        return {"ok": True}

    clock = FakeClock()
    service = MediaService(store, tmp_path, play=play, clock=clock, url_ttl=600)
    app = web.Application()
    add_routes(app, service)
    await service.start()
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield Hub(client, service, plays, clock)
    await client.close()
    await service.stop()
    await store.stop()


def link(cloud: FakeCloud, data: Path) -> None:
    t = cloud.issue()
    TokenFile(data).save(Tokens(cloud.url, t["access_token"], t["refresh_token"], None))


async def test_sync_needs_a_link(hub: Hub) -> None:
    r = await hub.client.post("/api/media/sync")
    assert r.status == 409 and "link" in (await r.json())["error"]


async def test_sync_list_play_and_fetch(hub: Hub, cloud: FakeCloud, tmp_path: Path) -> None:
    film = cloud.put("/videos/trip.mp4", os.urandom(300_000), duration_ms=812000)
    cloud.put("/photos/cat.jpg", os.urandom(2000), kind="image", duration_ms=None)
    cloud.put("/photos/dog.jpg", os.urandom(3000), kind="image", duration_ms=None)
    link(cloud, tmp_path)
    r = await hub.client.post("/api/media/sync")
    assert r.status == 202 and (await r.json())["started"]
    await hub.service.wait_sync()
    status = await (await hub.client.get("/api/media/sync")).json()
    assert status["linked"] and status["last_report"]["downloaded"] == 3 and not status["running"]
    assert status["progress"]["files_done"] == 3 and status["counters"]["bytes_received"] == 305_000

    page = await (await hub.client.get("/api/media", params={"kind": "image", "limit": "1"})).json()
    assert page["total"] == 2 and len(page["items"]) == 1
    found = await (await hub.client.get("/api/media", params={"q": "TRIP"})).json()
    assert [i["name"] for i in found["items"]] == ["trip.mp4"]
    item = found["items"][0]
    assert item["kind"] == "video" and item["duration_ms"] == 812000

    r = await hub.client.get("/api/media", params={"limit": "0"})
    assert r.status == 422 and (await r.json())["field"] == "limit"

    r = await hub.client.post(f"/api/media/{item['id']}/play", json={"device": "projector-1"})
    assert r.status == 200
    device, url = hub.plays[-1]
    assert device == "projector-1" and url.startswith("http://127.0.0.1:") and "/media/file/" in url

    # the projector fetches it with Range, no session needed
    path = url.split("://", 1)[1].split("/", 1)[1]
    r = await hub.client.get("/" + path)
    body = await r.read()
    assert r.status == 200 and body == film.data
    assert r.headers["X-Content-SHA256"] == hashlib.sha256(film.data).hexdigest()
    assert r.headers["X-Media-Duration-Ms"] == "812000"
    r = await hub.client.get("/" + path, headers={"Range": "bytes=1000-1999"})
    assert r.status == 206 and await r.read() == film.data[1000:2000]
    assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(film.data)}"
    etag = r.headers["ETag"]
    r = await hub.client.get("/" + path, headers={"Range": "bytes=2000-2999", "If-Range": etag})
    assert r.status == 206 and await r.read() == film.data[2000:3000]
    r = await hub.client.get("/" + path, headers={"Range": "bytes=2000-2999", "If-Range": '"stale"'})
    assert r.status == 200 and await r.read() == film.data  # RFC 9110 §13.1.5: changed -> whole file

    # a forged or expired signature is refused
    forged = "/" + path[:-4] + ("0000" if not path.endswith("0000") else "1111")
    assert (await hub.client.get(forged)).status == 403
    assert (await hub.client.get(f"/media/file/{item['id']}")).status == 403
    hub.clock.t += 601
    assert (await hub.client.get("/" + path)).status == 403


async def test_play_rejects_bad_bodies(hub: Hub, cloud: FakeCloud, tmp_path: Path) -> None:
    cloud.put("/a.mp4", b"abc")
    link(cloud, tmp_path)
    await hub.client.post("/api/media/sync")
    await hub.service.wait_sync()
    items = (await (await hub.client.get("/api/media")).json())["items"]
    mid = items[0]["id"]
    for body, field in [({}, "device"), ({"device": ""}, "device"), ({"device": 5}, "device"), ({"device": "p", "x": 1}, "x")]:
        r = await hub.client.post(f"/api/media/{mid}/play", json=body)
        assert r.status == 422 and (await r.json())["field"] == field, body
    r = await hub.client.post(f"/api/media/{mid}/play", data=b"\xff{not json")
    assert r.status == 422 and (await r.json())["field"] == "body"
    r = await hub.client.post("/api/media/99999/play", json={"device": "p"})
    assert r.status == 404
    assert not hub.plays


async def test_numbers_beyond_sqlite_integers_are_client_errors_not_500(hub: Hub) -> None:
    """Found by schemathesis: a 34-digit media id or offset made SQLite's binding raise (500)."""
    huge = "9344358760484748769557223168802816"
    r = await hub.client.post(f"/api/media/{huge}/play", json={"device": "p"})
    assert r.status == 422 and (await r.json())["field"] == "id"
    r = await hub.client.post(f"/api/media/{2**63}/play", json={"device": "p"})
    assert r.status == 422
    r = await hub.client.get("/api/media", params={"offset": huge})
    assert r.status == 422 and (await r.json())["field"] == "offset"
    assert (await hub.client.get(f"/media/file/{huge}", params={"exp": "9" * 5000, "sig": "ab"})).status in (403, 404)
    assert (await hub.client.get("/media/file/1", params={"exp": "9" * 5000, "sig": "ab"})).status == 403


@pytest.mark.parametrize("url", ["http://0", "https://" + "0" * 300, "http://999.1.1.1", "http://x:99999", "http://a b"])
async def test_a_cloud_url_aiohttp_cannot_connect_to_is_422_not_502(hub: Hub, url: str) -> None:
    """Found by schemathesis: `http://0` passed validation and failed later as a 502 from the cloud."""
    r = await hub.client.post("/api/cloud/link", json={"cloud": url})
    assert r.status == 422 and (await r.json())["field"] == "cloud"


async def test_malformed_signed_urls_are_403_never_500(hub: Hub, cloud: FakeCloud, tmp_path: Path) -> None:
    cloud.put("/a.mp4", b"abc")
    link(cloud, tmp_path)
    await hub.client.post("/api/media/sync")
    await hub.service.wait_sync()
    mid = (await (await hub.client.get("/api/media")).json())["items"][0]["id"]
    good = hub.service.signer.url(mid, 600, hub.clock.now())
    exp, sig = (kv.split("=", 1)[1] for kv in good.split("?", 1)[1].split("&"))
    assert (await hub.client.get(good)).status == 200
    for path, query in [
        (f"/media/file/{mid}", {"exp": "\u00b2", "sig": sig}),  # "²".isdigit() is True
        (f"/media/file/{mid}", {"exp": "\u0663" * 10, "sig": sig}),  # Arabic-Indic digits: int() takes them
        (f"/media/file/{mid}", {"exp": "9" * 5000, "sig": sig}),  # past int()'s digit limit
        (f"/media/file/{mid}", {"exp": f" {exp}", "sig": sig}),
        (f"/media/file/{mid}", {"exp": f"+{exp}", "sig": sig}),
        (f"/media/file/{mid}", {"exp": exp, "sig": "\u00e9" * 64}),  # compare_digest refuses non-ASCII str
        (f"/media/file/{mid}", {"exp": exp, "sig": sig[:-1]}),
        (f"/media/file/{mid}", {"exp": exp}),
        (f"/media/file/\u0663{mid}", {"exp": exp, "sig": sig}),
        ("/media/file/x", {"exp": exp, "sig": sig}),
    ]:
        r = await hub.client.get(path, params=query)
        assert r.status == 403, (path, query, r.status)
