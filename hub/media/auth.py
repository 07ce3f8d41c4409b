"""Linking the hub to the operator cloud: the device authorization grant and the token file.

RFC 8628 (device grant) for linking, RFC 6749 §6 for refresh. Tokens live in
`<data>/secrets/cloud.json` (mode 0600), written atomically and durably *before* a new token
is used, so a crash can never leave the hub holding a token it did not save.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel, ValidationError

from ..clock import Clock, SystemClock
from .durable import replace_file

log = logging.getLogger(__name__)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CLIENT_ID = "hub"
SCOPE = "media.read offline_access"
EXPIRY_SKEW = 60.0  # refresh this long before the access token's stated expiry


class CloudAuthError(Exception):
    """Linking or refreshing failed for a reason retrying won't fix."""


class RefreshUnavailable(Exception):
    """The token endpoint failed transiently (5xx, 429): retry later with the same refresh token."""


class NotLinked(CloudAuthError):
    """No tokens stored: run `hub cloud link` first."""


@dataclass(frozen=True)
class Tokens:
    cloud_url: str
    access_token: str
    refresh_token: str | None
    expires_at: float | None
    token_type: str = "Bearer"

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at - EXPIRY_SKEW


class DeviceCode(BaseModel):
    """RFC 8628 §3.2 device authorization response."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None = None
    expires_in: float
    interval: float = 5.0  # §3.2: absent means 5 s


class TokenResponse(BaseModel):
    """RFC 6749 §5.1 access token response."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: float | None = None
    refresh_token: str | None = None


def write_secret(path: Path, data: bytes) -> None:
    """Atomically and durably replace `path` with `data`, mode 0600, in a 0700 folder. Blocking."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    replace_file(path, data, 0o600)


class TokenFile:
    """`<data>/secrets/cloud.json`: load, save atomically, delete."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "secrets" / "cloud.json"

    def load(self) -> Tokens | None:
        try:
            raw = json.loads(self.path.read_text())
            return Tokens(**raw)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            log.error("token file %s unreadable (%s); link again", self.path, type(exc).__name__)
            return None

    def save(self, tokens: Tokens) -> None:
        write_secret(self.path, json.dumps(asdict(tokens)).encode())

    def delete(self) -> bool:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


# --- RFC 8628 polling, sans-I/O -------------------------------------------------------------


@dataclass(frozen=True)
class Poll:
    """Poll the token endpoint again after `wait` seconds."""

    wait: float


@dataclass(frozen=True)
class Granted:
    tokens: TokenResponse


@dataclass(frozen=True)
class Failed:
    """The grant ended: `reason` is access_denied, expired_token or another error code."""

    reason: str


class GrantPoller:
    """RFC 8628 §3.4-3.5 client side: what to do after each token-endpoint answer."""

    def __init__(self, code: DeviceCode, started: float) -> None:
        self.interval = max(code.interval, 1.0)
        self.deadline = started + code.expires_in

    def first(self, now: float) -> Poll | Failed:
        return self._next(now)

    def _next(self, now: float) -> Poll | Failed:
        if now + self.interval > self.deadline:
            return Failed("expired_token")
        return Poll(self.interval)

    def on_response(self, status: int, body: Any, now: float) -> Poll | Granted | Failed:
        if status == 200:
            try:
                return Granted(TokenResponse.model_validate(body))
            except ValidationError:
                return Failed("invalid token response")
        error = body.get("error") if isinstance(body, dict) else None
        if error == "authorization_pending":
            return self._next(now)
        if error == "slow_down":  # §3.5: +5 s for this and all later requests
            self.interval += 5.0
            return self._next(now)
        if status >= 500 or status == 429:  # transient: back off like slow_down
            self.interval += 5.0
            return self._next(now)
        return Failed(error if isinstance(error, str) else f"http {status}")


def tokens_from(cloud_url: str, resp: TokenResponse, now: float, old: Tokens | None = None) -> Tokens:
    return Tokens(
        cloud_url=cloud_url,
        access_token=resp.access_token,
        # RFC 6749 §6: the server may keep the old refresh token
        refresh_token=resp.refresh_token or (old.refresh_token if old else None),
        expires_at=(now + resp.expires_in) if resp.expires_in else None,
        token_type=resp.token_type,
    )


async def _post_form(session: aiohttp.ClientSession, url: str, form: dict[str, str]) -> tuple[int, Any]:
    async with session.post(url, data=form, timeout=aiohttp.ClientTimeout(total=30)) as r:
        try:
            body = await r.json(content_type=None)
        except (ValueError, aiohttp.ContentTypeError):
            body = None
        return r.status, body


async def link(
    session: aiohttp.ClientSession,
    cloud_url: str,
    token_file: TokenFile,
    on_code: Callable[[DeviceCode], None | Awaitable[None]],
    *,
    clock: Clock | None = None,
    client_id: str = CLIENT_ID,
) -> Tokens:
    """Run the device grant to the end; saves and returns the tokens or raises CloudAuthError."""
    clock = clock or SystemClock()
    base = cloud_url.rstrip("/")
    status, body = await _post_form(session, f"{base}/oauth/device/code", {"client_id": client_id, "scope": SCOPE})
    if status != 200:
        raise CloudAuthError(f"device authorization failed: HTTP {status} {body!r}")
    try:
        code = DeviceCode.model_validate(body)
    except ValidationError as exc:
        raise CloudAuthError(f"bad device authorization response: {exc.errors()[0]['loc']}") from exc
    shown = on_code(code)
    if asyncio.iscoroutine(shown):
        await shown
    poller = GrantPoller(code, clock.now())
    step: Poll | Granted | Failed = poller.first(clock.now())
    form = {"grant_type": DEVICE_GRANT, "device_code": code.device_code, "client_id": client_id}
    while isinstance(step, Poll):
        await clock.sleep(step.wait)
        try:
            status, body = await _post_form(session, f"{base}/oauth/token", form)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("token poll failed (%s); retrying", type(exc).__name__)
            status, body = 503, None
        step = poller.on_response(status, body, clock.now())
    if isinstance(step, Failed):
        raise CloudAuthError(
            {
                "access_denied": "the request was denied on the cloud side",
                "expired_token": "the code expired before it was approved; run link again",
            }.get(step.reason, f"linking failed: {step.reason}")
        )
    tokens = tokens_from(cloud_url, step.tokens, clock.now())
    await asyncio.to_thread(token_file.save, tokens)  # durable before any use
    return tokens


class TokenSource:
    """The current access token; refreshes on expiry or after a 401, saving before use."""

    def __init__(self, session: aiohttp.ClientSession, token_file: TokenFile, clock: Clock, client_id: str = CLIENT_ID) -> None:
        self._session = session
        self._file = token_file
        self._clock = clock
        self._client_id = client_id
        self._tokens: Tokens | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> Tokens:
        async with self._lock:
            if self._tokens is None:
                self._tokens = await asyncio.to_thread(self._file.load)
                if self._tokens is None:
                    raise NotLinked("not linked to a cloud: run `hub cloud link --cloud URL`")
            if self._tokens.expired(self._clock.now()):
                await self._refresh_locked(self._tokens.access_token)
            return self._tokens

    async def header(self) -> dict[str, str]:
        t = await self.current()
        return {"Authorization": f"Bearer {t.access_token}"}

    async def refresh(self, rejected_access_token: str) -> None:
        """Called after a 401 with the token that got it; refreshes once even if many callers ask."""
        async with self._lock:
            await self._refresh_locked(rejected_access_token)

    async def _refresh_locked(self, rejected: str) -> None:
        t = self._tokens
        if t is None or (t.access_token != rejected and not t.expired(self._clock.now())):
            return  # another caller already refreshed
        if not t.refresh_token:
            raise CloudAuthError("access token expired and no refresh token: link again")
        form = {"grant_type": "refresh_token", "refresh_token": t.refresh_token, "client_id": self._client_id}
        status, body = await _post_form(self._session, f"{t.cloud_url.rstrip('/')}/oauth/token", form)
        if status != 200:
            err = body.get("error") if isinstance(body, dict) else None
            if status == 400:  # invalid_grant and friends: RFC 6749 §5.2
                raise CloudAuthError(f"refresh refused ({err}): link again")
            raise RefreshUnavailable(f"token endpoint answered HTTP {status}")
        try:
            resp = TokenResponse.model_validate(body)
        except ValidationError as exc:
            raise CloudAuthError("bad refresh response") from exc
        new = tokens_from(t.cloud_url, resp, self._clock.now(), old=t)
        await asyncio.to_thread(self._file.save, new)  # durable before use
        self._tokens = new
        log.info("cloud access token refreshed")

