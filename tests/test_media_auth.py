"""Linking by device code (RFC 8628) against a test cloud, and the token file."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import aiohttp
import pytest
from tests.media_fakecloud import FakeCloud

from hub.media.auth import CloudAuthError, DeviceCode, GrantPoller, Granted, Failed, Poll, TokenFile, TokenSource, link
from hub.media.cli import cloud_unlink
from hub.clock import FakeClock


async def _link(cloud: FakeCloud, tmp_path: Path, clock: FakeClock) -> tuple[list[DeviceCode], object]:
    shown: list[DeviceCode] = []
    async with aiohttp.ClientSession() as s:
        try:
            result: object = await link(s, cloud.url, TokenFile(tmp_path), shown.append, clock=clock)
        except CloudAuthError as exc:
            result = exc
    return shown, result


async def test_pending_then_slow_down_then_granted(cloud: FakeCloud, tmp_path: Path) -> None:
    cloud.grant_script = ["authorization_pending", "slow_down", "authorization_pending", "slow_down"]
    clock = FakeClock()
    shown, tokens = await _link(cloud, tmp_path, clock)
    assert shown[0].user_code == "WDJB-MJHT" and shown[0].verification_uri_complete
    # interval 5 s; each slow_down adds 5 s for this and every later poll (RFC 8628 §3.5)
    assert clock.slept == [5, 5, 10, 10, 15]
    assert cloud.token_polls == 5
    saved = TokenFile(tmp_path).load()
    assert saved is not None and saved.access_token == tokens.access_token  # type: ignore[attr-defined]
    mode = stat.S_IMODE((tmp_path / "secrets" / "cloud.json").stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700


async def test_denied(cloud: FakeCloud, tmp_path: Path) -> None:
    cloud.grant_script = ["authorization_pending"]
    cloud.grant_final = "access_denied"
    _, result = await _link(cloud, tmp_path, FakeClock())
    assert isinstance(result, CloudAuthError) and "denied" in str(result)
    assert TokenFile(tmp_path).load() is None


async def test_expired_by_server_and_by_deadline(cloud: FakeCloud, tmp_path: Path) -> None:
    cloud.grant_final = "expired_token"
    _, result = await _link(cloud, tmp_path, FakeClock())
    assert isinstance(result, CloudAuthError) and "expired" in str(result)
    # the server keeps saying pending: the client stops by itself at expires_in (60 s here)
    cloud.grant_final = "grant"
    cloud.grant_script = ["authorization_pending"] * 1000
    clock = FakeClock()
    polls_before = cloud.token_polls
    _, result = await _link(cloud, tmp_path, clock)
    assert isinstance(result, CloudAuthError) and "expired" in str(result)
    assert sum(clock.slept) <= 60
    assert cloud.token_polls - polls_before == 12  # every 5 s for 60 s, never faster


def test_poller_is_pure() -> None:
    code = DeviceCode(device_code="d", user_code="u", verification_uri="v", expires_in=30)  # interval absent: 5 s
    p = GrantPoller(code, started=100.0)
    assert p.first(100.0) == Poll(5.0)
    assert p.on_response(400, {"error": "slow_down"}, 105.0) == Poll(10.0)
    assert p.on_response(400, {"error": "authorization_pending"}, 115.0) == Poll(10.0)
    assert p.on_response(400, {"error": "authorization_pending"}, 125.0) == Failed("expired_token")
    assert isinstance(p.on_response(200, {"access_token": "a"}, 110.0), Granted)
    assert p.on_response(400, "garbage", 110.0) == Failed("http 400")
    assert p.on_response(200, {"nope": 1}, 110.0) == Failed("invalid token response")


async def test_refresh_after_401_and_on_expiry_saves_first(cloud: FakeCloud, tmp_path: Path) -> None:
    clock = FakeClock()
    _, tokens = await _link(cloud, tmp_path, clock)
    tf = TokenFile(tmp_path)
    async with aiohttp.ClientSession() as s:
        src = TokenSource(s, tf, clock)
        first = await src.current()
        cloud.tokens.clear()  # the cloud revokes the access token
        await src.refresh(first.access_token)
        second = await src.current()
        assert second.access_token != first.access_token
        assert second.refresh_token == first.refresh_token  # no rotation: keep the old one
        assert tf.load().access_token == second.access_token  # type: ignore[union-attr]
        # many callers racing after the same 401 refresh once
        before = len(cloud.tokens)
        await asyncio.gather(*(src.refresh(second.access_token) for _ in range(5)))
        assert len(cloud.tokens) == before + 1
        # expiry by the clock triggers a refresh without any 401
        clock.t += 3600
        third = await src.current()
        assert third.access_token not in (first.access_token, second.access_token)
        cloud.refresh_tokens.clear()  # refresh token revoked: a clear error, tokens kept on disk
        clock.t += 3600
        with pytest.raises(CloudAuthError):
            await src.current()


async def test_unlink_deletes_tokens_keeps_files(cloud: FakeCloud, tmp_path: Path) -> None:
    await _link(cloud, tmp_path, FakeClock())
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "film.mp4").write_bytes(b"x")
    assert cloud_unlink(tmp_path) == 0
    assert not (tmp_path / "secrets" / "cloud.json").exists()
    assert (tmp_path / "media" / "film.mp4").read_bytes() == b"x"


def test_unreadable_token_file_means_not_linked(tmp_path: Path) -> None:
    p = tmp_path / "secrets" / "cloud.json"
    p.parent.mkdir()
    p.write_bytes(b"\xff\x00garbage")
    assert TokenFile(tmp_path).load() is None


async def test_cli_link_shows_the_code_and_sync_reports(cloud: FakeCloud, tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from hub.media.cli import cloud_link, sync

    out = io.StringIO()
    cloud.grant_script = ["authorization_pending"]
    assert await cloud_link(tmp_path, cloud.url, Console(file=out, width=200), clock=FakeClock()) == 0
    text = out.getvalue()
    assert "WDJB-MJHT" in text and f"{cloud.url}/device" in text and "user_code=WDJBMJHT" in text
    cloud.put("/film.mp4", b"x" * 5000)
    out = io.StringIO()
    assert await sync(tmp_path, once=True, console=Console(file=out, width=200)) == 0
    assert "1 downloaded" in out.getvalue()
    assert (tmp_path / "media" / "film.mp4").read_bytes() == b"x" * 5000
    cloud.grant_final = "access_denied"
    out = io.StringIO()
    assert await cloud_link(tmp_path / "other", cloud.url, Console(file=out, width=200), clock=FakeClock()) == 1
    assert "denied" in out.getvalue()
