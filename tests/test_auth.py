"""Accounts, sessions, tokens and the edge's rules, over real HTTP against a running hub."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from hub.broker import Broker, free_port
from hub.service import running_hub
from hub.throttle import Throttle
from hub.web.access import AUTH, COOKIE, access_of
from hub.web.app import make_app
from tests.conftest import OWNER, OWNER_PASSWORD, RunningHub, hub_config

# Declared public on purpose; a new public route must be added here, knowingly.
PUBLIC = {("GET", "/api/health"), ("GET", "/api/auth/state"), ("POST", "/api/onboarding"),
          ("POST", "/api/auth/login"), ("GET", "/login"), ("GET", "/setup"), ("GET", "/favicon.ico"),
          ("GET", "/media/file/{id}"), ("GET", "/static/{filename}")}
PAGES = {("GET", "/"), ("GET", "/account")}


def session(url: str, **headers: str) -> aiohttp.ClientSession:
    # unsafe: the hub is reached by address (127.0.0.1), whose cookies aiohttp refuses by default
    return aiohttp.ClientSession(url, cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 headers={"Origin": url, **headers})


async def login(s: aiohttp.ClientSession, name: str = OWNER, password: str = OWNER_PASSWORD) -> aiohttp.ClientResponse:
    async with s.post("/api/auth/login", json={"name": name, "password": password}) as r:
        await r.read()
        return r


def routes(app: web.Application) -> list[tuple[str, str, str]]:
    """(method, path template, declared access) of every route the app serves."""
    out = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path") or (info.get("prefix", "") + "/{filename}")
        access = "public" if isinstance(route.resource, web.StaticResource) else getattr(route.handler, "access", "user")
        out.append((route.method, path, access))
    return out


async def test_every_route_without_credentials_is_refused(running: RunningHub) -> None:
    app = make_app(running.hub, watch_cloud=False)
    table = routes(app)
    assert {(m, p) for m, p, a in table if a == "public"} == PUBLIC
    assert {(m, p) for m, p, a in table if a == "page"} == PAGES
    checked = 0
    async with aiohttp.ClientSession(running.url) as s:
        for method, path, access in table:
            if access == "public":
                continue
            url = re.sub(r"\{[^}]+\}", "x", path)
            async with s.request(method, url, json={}, allow_redirects=False) as r:
                if access == "page":
                    assert r.status == 303 and r.headers["Location"] == "/login", (method, path)
                else:
                    assert r.status == 401, (method, path, r.status)
                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
                checked += 1
    assert checked >= 25  # the devices, media, cloud, users, tokens, sessions, WebSocket and OpenAPI routes


async def test_openapi_needs_a_login(running: RunningHub) -> None:
    async with aiohttp.ClientSession(running.url) as s:
        async with s.get("/api/openapi.json") as r:
            assert r.status == 401
            assert "paths" not in await r.text()
        async with s.get("/api/openapi.json", headers=running.headers) as r:
            assert r.status == 200 and "/api/devices" in (await r.json())["paths"]


async def test_login_sets_a_strict_http_only_cookie_and_logout_ends_it(running: RunningHub) -> None:
    async with session(running.url) as s:
        r = await login(s)
        assert r.status == 200
        cookie = r.headers["Set-Cookie"]
        assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Path=/" in cookie and "Secure" not in cookie  # plain HTTP here: Secure would drop it
        async with s.get("/api/devices") as r:
            assert r.status == 200
        async with s.get("/api/auth/sessions") as r:
            sessions = await r.json()
        assert len(sessions) == 1 and sessions[0]["current"] and sessions[0]["device"] == "aiohttp"
        stolen = s.cookie_jar.filter_cookies(URL(running.url))[COOKIE].value
        async with s.post("/api/auth/logout") as r:
            assert r.status == 204
        async with s.get("/api/devices") as r:
            assert r.status == 401
    async with aiohttp.ClientSession(running.url, cookies={COOKIE: stolen}) as s:
        async with s.get("/api/devices") as r:
            assert r.status == 401  # ended on the server, not just forgotten by the browser


async def test_wrong_password_is_401_and_says_not_which(running: RunningHub) -> None:
    async with session(running.url) as s:
        assert (await login(s, password="wrong password")).status == 401
        assert (await login(s, name="nobody")).status == 401
        async with s.get("/api/devices") as r:
            assert r.status == 401


async def test_a_cross_origin_post_with_the_cookie_is_refused(running: RunningHub) -> None:
    async with session(running.url) as s:
        await login(s)
        lamp = {"name": "x"}
        async with s.post("/api/tokens", json=lamp, headers={"Origin": "http://evil.example"}) as r:
            assert r.status == 403 and (await r.json())["field"] == "Origin"
        async with s.post("/api/tokens", json=lamp, headers={"Origin": "null"}) as r:
            assert r.status == 403
        async with s.post("/api/tokens", json=lamp, skip_auto_headers=["Origin"], headers={"Origin": ""}) as r:
            assert r.status == 403
        async with s.post("/api/tokens", json=lamp) as r:
            assert r.status == 201  # same origin
    # a bearer token is never sent by a browser on its own: no Origin needed
    async with aiohttp.ClientSession(running.url, headers=running.headers) as s:
        async with s.post("/api/tokens", json={"name": "script"}) as r:
            assert r.status == 201


async def test_a_login_from_another_site_is_refused(running: RunningHub) -> None:
    async with session(running.url, Origin="http://evil.example") as s:
        assert (await login(s)).status == 403


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "attacker.local.evil.example", ""])
async def test_a_rebinding_host_gets_421(running: RunningHub, host: str) -> None:
    async with aiohttp.ClientSession(running.url, headers={**running.headers, "Host": host}) as s:
        for path in ("/api/devices", "/api/health", "/login"):
            async with s.get(path) as r:
                assert r.status == 421, (host, path)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "192.168.1.20:8080", "[::1]:8080", "[fe80::1]"])
async def test_addresses_and_our_own_names_are_answered(running: RunningHub, host: str) -> None:
    async with aiohttp.ClientSession(running.url, headers={**running.headers, "Host": host}) as s:
        async with s.get("/api/devices") as r:
            assert r.status == 200, host


async def test_revoked_token_is_refused_on_its_next_request(running: RunningHub) -> None:
    async with aiohttp.ClientSession(running.url, headers=running.headers) as s:
        async with s.post("/api/tokens", json={"name": "tablet"}) as r:
            made = await r.json()
        tablet = {"Authorization": f"Bearer {made['token']}"}
        async with s.get("/api/devices", headers=tablet) as r:
            assert r.status == 200  # now cached
        async with s.get("/api/tokens") as r:
            listed = {t["id"]: t for t in await r.json()}
        assert listed[made["id"]]["name"] == "tablet" and listed[made["id"]]["last_used"] is not None
        assert "token" not in listed[made["id"]] and "hash" not in listed[made["id"]]
        async with s.delete(f"/api/tokens/{made['id']}") as r:
            assert r.status == 204
        async with s.get("/api/devices", headers=tablet) as r:
            assert r.status == 401


async def test_a_read_token_reads_and_changes_nothing(running: RunningHub) -> None:
    async with aiohttp.ClientSession(running.url, headers=running.headers) as s:
        async with s.post("/api/tokens", json={"name": "wall", "scope": "read"}) as r:
            token = (await r.json())["token"]
    async with aiohttp.ClientSession(running.url, headers={"Authorization": f"Bearer {token}"}) as s:
        async with s.get("/api/devices") as r:
            assert r.status == 200
        async with s.post("/api/devices/lamp/set", json={"on": True}) as r:
            assert r.status == 403 and (await r.json())["field"] == "scope"
        async with s.post("/api/tokens", json={"name": "more"}) as r:
            assert r.status == 403
        async with s.ws_connect("/api/ws") as ws:
            assert (await ws.receive_json())["type"] == "snapshot"
            await ws.send_json({"type": "set", "id": "lamp", "state": {"on": True}, "request_id": 1})
            while (msg := await ws.receive_json())["type"] != "result":
                pass
            assert msg["status"] == 403


async def test_members_cannot_manage_users_but_can_change_their_password(running: RunningHub) -> None:
    async with aiohttp.ClientSession(running.url, headers=running.headers) as s:
        async with s.post("/api/users", json={"name": "kid", "password": "short"}) as r:
            assert r.status == 422 and (await r.json())["field"] == "password"
        async with s.post("/api/users", json={"name": "kid", "password": "kid password"}) as r:
            assert r.status == 201 and (await r.json())["role"] == "member"
        async with s.post("/api/users", json={"name": "KID", "password": "kid password"}) as r:
            assert r.status == 409  # names are case-insensitive
    async with session(running.url) as laptop, session(running.url) as phone:
        assert (await login(laptop, "kid", "kid password")).status == 200
        assert (await login(phone, "Kid", "kid password")).status == 200
        async with laptop.get("/api/users") as r:
            assert r.status == 403
        async with laptop.post("/api/users", json={"name": "x", "password": "xxxxxxxx"}) as r:
            assert r.status == 403
        async with laptop.get("/account", allow_redirects=False) as r:
            assert r.status == 200  # the page is theirs; the household section stays hidden
        async with laptop.post("/api/auth/password", json={"current": "nope", "new": "new kid password"}) as r:
            assert r.status == 403 and (await r.json())["field"] == "current"
        async with laptop.post("/api/auth/password", json={"current": "kid password", "new": "new kid password"}) as r:
            assert r.status == 204
        async with laptop.get("/api/devices") as r:
            assert r.status == 200  # this session goes on
        async with phone.get("/api/devices") as r:
            assert r.status == 401  # the other one ended
    async with session(running.url) as s:
        assert (await login(s, "kid", "kid password")).status == 401
        assert (await login(s, "kid", "new kid password")).status == 200


async def test_the_last_owner_stays(running: RunningHub) -> None:
    async with aiohttp.ClientSession(running.url, headers=running.headers) as s:
        async with s.patch(f"/api/users/{OWNER}", json={"role": "member"}) as r:
            assert r.status == 409
        async with s.delete(f"/api/users/{OWNER}") as r:
            assert r.status == 409
        async with s.post("/api/users", json={"name": "gran", "password": "gran password", "role": "owner"}) as r:
            assert r.status == 201
        async with s.delete("/api/users/gran") as r:
            assert r.status == 204
        async with s.delete("/api/users/gran") as r:
            assert r.status == 404


async def test_websocket_takes_the_cookie_or_a_first_message_token_never_the_url(running: RunningHub) -> None:
    async with session(running.url) as s:
        await login(s)
        async with s.ws_connect("/api/ws") as ws:
            assert (await ws.receive_json())["type"] == "snapshot"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with s.ws_connect("/api/ws", headers={"Origin": "http://evil.example"}):
                pass
        assert refused.value.status == 403  # cross-site WebSocket hijacking
    async with aiohttp.ClientSession(running.url) as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with s.ws_connect(f"/api/ws?token={running.token}"):
                pass
        assert refused.value.status == 400
        async with s.ws_connect("/api/ws") as ws:
            await ws.send_json({"type": "auth", "token": running.token})
            assert (await ws.receive_json())["status"] == "ok"
            assert (await ws.receive_json())["type"] == "snapshot"
        async with s.ws_connect("/api/ws") as ws:
            await ws.send_json({"type": "auth", "token": "hub_wrong"})
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4401


# -- first run --------------------------------------------------------------------------

@pytest.fixture
async def fresh(tmp_path: Path, broker: Broker) -> AsyncIterator[str]:
    """A hub with no accounts at all, as after installing it."""
    async with running_hub(hub_config(tmp_path, broker)) as (_, url):
        yield url


async def test_first_run_sets_up_the_owner_once(fresh: str) -> None:
    async with session(fresh) as s:
        for path in ("/", "/login", "/account"):
            async with s.get(path, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/setup", path
        async with s.get("/api/auth/state") as r:
            assert await r.json() == {"owner_exists": False, "user": None, "via": None, "scope": None}
        async with s.post("/api/onboarding", json={"name": "Ann", "password": "short"}) as r:
            assert r.status == 422 and (await r.json())["field"] == "password"
        async with s.post("/api/onboarding", json={"name": "Ann", "password": "ann's password"}) as r:
            assert r.status == 201 and (await r.json())["user"]["role"] == "owner"
        async with s.get("/api/devices") as r:
            assert r.status == 200  # signed in by setting up
        async with s.get("/setup", allow_redirects=False) as r:
            assert r.headers["Location"] == "/login"
    async with session(fresh) as s:
        async with s.post("/api/onboarding", json={"name": "Mallory", "password": "mallory's password"}) as r:
            assert r.status == 409
        assert (await login(s, "Mallory", "mallory's password")).status == 401


# -- throttling, on a clock the test moves ------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def throttled(running: RunningHub) -> AsyncIterator[tuple[str, Clock]]:
    """A second web app on the same hub whose login throttle runs on a fake clock."""
    clock = Clock()
    app = make_app(running.hub, watch_cloud=False)
    app[AUTH].throttle = Throttle(clock=clock)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", clock
    finally:
        await runner.cleanup()


async def test_wrong_passwords_slow_down_then_decay(throttled: tuple[str, Clock]) -> None:
    url, clock = throttled
    statuses = []
    async with session(url) as s:
        for _ in range(10):
            async with s.post("/api/auth/login", json={"name": OWNER, "password": "guess"}) as r:
                statuses.append(r.status)
                if r.status == 429:
                    retry = int(r.headers["Retry-After"])
                    assert retry >= 1 and (await r.json())["retry_after"] == retry
        assert statuses[:5] == [401] * 5 and 429 in statuses
        # blocked: even the right password waits
        r = await login(s)
        assert r.status == 429
        first_wait = int(r.headers["Retry-After"])
        clock.now += first_wait
        # the next wrong one blocks for longer
        async with s.post("/api/auth/login", json={"name": OWNER, "password": "guess"}) as r:
            assert r.status == 401
        r = await login(s)
        assert r.status == 429 and int(r.headers["Retry-After"]) > first_wait
        clock.now += int(r.headers["Retry-After"])
        assert (await login(s)).status == 200  # no ban: in again after the delay


async def test_throttle_is_per_address_too(throttled: tuple[str, Clock]) -> None:
    url, _ = throttled
    async with session(url) as s:
        names = [f"user{i}" for i in range(8)]  # one guess at many accounts from one address
        statuses = []
        for name in names:
            async with s.post("/api/auth/login", json={"name": name, "password": "guess"}) as r:
                statuses.append(r.status)
        assert statuses[-1] == 429


async def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(throttled: tuple[str, Clock]) -> None:
    url, _ = throttled
    async with session(url) as s:
        for i in range(8):  # each guess claims another client address
            async with s.post("/api/auth/login", json={"name": f"u{i}", "password": "guess"},
                              headers={"X-Forwarded-For": f"10.0.0.{i}"}) as r:
                last = r.status
        assert last == 429  # still throttled: the socket's address counts
