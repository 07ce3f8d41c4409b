"""The simulated cloud's RFC 8628 device grant, token expiry and refresh, over HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession

from firmware_sim.cloud.auth import normalize_user_code
from firmware_sim.cloud.testing import FakeClock, RunningCloud, running_cloud

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def cloud(tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningCloud]:
    async with running_cloud(tmp_path / "lib", clock=clock, token_ttl=60, code_ttl=300,
                             interval=5) as c:
        yield c


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    async with ClientSession() as s:
        yield s


async def start(cloud: RunningCloud, http: ClientSession, client_id: str = "hub-1") -> dict:
    async with http.post(f"{cloud.url}/oauth/device/code",
                         data={"client_id": client_id, "scope": "media.read"}) as r:
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-store"
        return await r.json()


async def poll(cloud: RunningCloud, http: ClientSession, device_code: str,
               client_id: str = "hub-1") -> tuple[int, dict]:
    async with http.post(f"{cloud.url}/oauth/token", data={
            "grant_type": GRANT, "device_code": device_code, "client_id": client_id}) as r:
        return r.status, await r.json()


async def phone(cloud: RunningCloud, http: ClientSession, code: str, action: str) -> int:
    async with http.post(f"{cloud.url}/device", data={"user_code": code, "action": action}) as r:
        await r.text()
        return r.status


async def test_device_code_response_has_rfc8628_fields(cloud: RunningCloud, http: ClientSession):
    grant = await start(cloud, http)
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", grant["user_code"])
    assert grant["verification_uri"] == f"{cloud.url}/device"
    assert grant["verification_uri_complete"].endswith(f"?user_code={grant['user_code']}")
    assert grant["expires_in"] == 300 and grant["interval"] == 5
    assert len(grant["device_code"]) >= 32


async def test_pending_then_approved_through_the_page(cloud, http, clock):
    grant = await start(cloud, http)
    status, body = await poll(cloud, http, grant["device_code"])
    assert (status, body["error"]) == (400, "authorization_pending")
    async with http.get(grant["verification_uri_complete"]) as r:
        page = await r.text()
    assert r.status == 200 and grant["user_code"] in page and "<form" in page
    # people type codes sloppily: lower case, no dash (RFC 8628 §6.1)
    assert await phone(cloud, http, grant["user_code"].lower().replace("-", " "), "approve") == 200
    clock.advance(5)
    status, token = await poll(cloud, http, grant["device_code"])
    assert status == 200
    assert token["token_type"] == "Bearer" and token["expires_in"] == 60
    assert token["access_token"] and token["refresh_token"]
    async with http.get(f"{cloud.url}/v1/changes",
                        headers={"Authorization": f"Bearer {token['access_token']}"}) as r:
        assert r.status == 200
    # a device code is good for one token only
    clock.advance(5)
    status, body = await poll(cloud, http, grant["device_code"])
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_polling_too_fast_gets_slow_down_and_interval_grows(cloud, http, clock):
    grant = await start(cloud, http)
    assert (await poll(cloud, http, grant["device_code"]))[1]["error"] == "authorization_pending"
    clock.advance(2)
    assert (await poll(cloud, http, grant["device_code"]))[1]["error"] == "slow_down"
    # the interval is now 10 s for all later polls (RFC 8628 §3.5)
    clock.advance(6)
    assert (await poll(cloud, http, grant["device_code"]))[1]["error"] == "slow_down"
    clock.advance(15)
    assert (await poll(cloud, http, grant["device_code"]))[1]["error"] == "authorization_pending"
    assert cloud.authority.interval_of(grant["device_code"]) == 15


async def test_denied(cloud, http, clock):
    grant = await start(cloud, http)
    assert await phone(cloud, http, grant["user_code"], "deny") == 200
    clock.advance(5)
    assert await poll(cloud, http, grant["device_code"]) == (
        400, {"error": "access_denied", "error_description": "the user denied the request"})
    # a denied code can't be approved afterwards
    assert await phone(cloud, http, grant["user_code"], "approve") == 400


async def test_expired_code(cloud, http, clock):
    grant = await start(cloud, http)
    clock.advance(301)
    status, body = await poll(cloud, http, grant["device_code"])
    assert (status, body["error"]) == (400, "expired_token")
    assert await phone(cloud, http, grant["user_code"], "approve") == 400


async def test_wrong_client_and_garbage_requests(cloud, http):
    grant = await start(cloud, http)
    status, body = await poll(cloud, http, grant["device_code"], client_id="someone-else")
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await poll(cloud, http, "not-a-code")
    assert (status, body["error"]) == (400, "invalid_grant")
    async with http.post(f"{cloud.url}/oauth/token", data={"grant_type": "password"}) as r:
        assert r.status == 400 and (await r.json())["error"] == "unsupported_grant_type"
    async with http.post(f"{cloud.url}/oauth/device/code", data={"scope": "x"}) as r:
        assert r.status == 400 and (await r.json())["error"] == "invalid_request"
    async with http.post(f"{cloud.url}/oauth/token", data=b"\xff\xfe garbage",
                         headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 400


async def test_access_token_expires_and_refresh_gives_a_new_one(cloud, http, clock):
    token = await cloud.token(http, client_id="hub-1")
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    clock.advance(61)
    async with http.get(f"{cloud.url}/v1/changes", headers=auth) as r:
        assert r.status == 401
        challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    async with http.post(f"{cloud.url}/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": token["refresh_token"],
            "client_id": "hub-1"}) as r:
        assert r.status == 200
        fresh = await r.json()
    assert fresh["access_token"] != token["access_token"]
    assert fresh["refresh_token"] == token["refresh_token"]  # not rotated (documented)
    async with http.get(f"{cloud.url}/v1/changes",
                        headers={"Authorization": f"Bearer {fresh['access_token']}"}) as r:
        assert r.status == 200
    async with http.post(f"{cloud.url}/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": "forged", "client_id": "hub-1"}) as r:
        assert r.status == 400 and (await r.json())["error"] == "invalid_grant"


async def test_v1_needs_a_bearer_token(cloud, http):
    async with http.get(f"{cloud.url}/v1/changes") as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="operator-cloud"'
    async with http.get(f"{cloud.url}/v1/manifest", headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 401
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


async def test_wrong_code_guesses_are_rate_limited(cloud, http):
    statuses = [await phone(cloud, http, f"BBBB-BBB{c}", "approve") for c in "BCDFGHJKLMNP"]
    assert statuses[:10] == [400] * 10
    assert statuses[10:] == [429, 429]


async def test_auto_approve(tmp_path: Path, http: ClientSession):
    async with running_cloud(tmp_path / "lib", auto_approve=True) as cloud:
        grant = await start(cloud, http)
        status, token = await poll(cloud, http, grant["device_code"])
        assert status == 200 and token["token_type"] == "Bearer"


def test_user_code_normalisation():
    assert normalize_user_code("wdjb-mjht") == "WDJBMJHT"
    assert normalize_user_code(" WDJB MJHT ") == "WDJBMJHT"
