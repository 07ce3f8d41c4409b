"""The operator cloud's HTTP API, client side: change feed, long-poll, content requests.

Retries 429/503 honouring Retry-After (RFC 9110 §10.2.3: seconds or an HTTP-date), connection
drops and timeouts with capped exponential backoff; refreshes the token once on 401.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import aiohttp
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from .auth import RefreshUnavailable, TokenSource
from ..clock import Clock

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
TRANSPORT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError, RefreshUnavailable)


class CursorReset(Exception):
    """410: the cursor is too old; list everything again from scratch."""


class RetryLater(Exception):
    """A transient failure; `after` is the server's Retry-After in seconds, if it gave one."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class CloudError(Exception):
    """A failure retrying won't fix (4xx other than 401/410/429)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --- wire models (pydantic at the edge) ---------------------------------------------------


class MediaInfo(BaseModel):
    kind: str | None = None
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None


class FileEntry(BaseModel):
    tag: Literal["file"]
    id: str = Field(min_length=1)
    path: str = Field(min_length=1)
    rev: str = ""
    size: int = Field(ge=0)
    content_hash: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    server_modified: str | None = None
    media_type: str | None = None
    media: MediaInfo | None = None


class FolderEntry(BaseModel):
    tag: Literal["folder"]
    id: str = ""
    path: str


class DeletedEntry(BaseModel):
    tag: Literal["deleted"]
    id: str | None = None
    path: str


Entry = Annotated[FileEntry | FolderEntry | DeletedEntry, Field(discriminator="tag")]
_entry = TypeAdapter(Entry)


@dataclass(frozen=True)
class ChangesPage:
    entries: list[FileEntry | FolderEntry | DeletedEntry]
    cursor: str
    has_more: bool
    dropped: int = 0  # entries that failed validation (logged)


@dataclass(frozen=True)
class WaitResult:
    changes: bool
    backoff: float | None


def parse_page(body: Any) -> ChangesPage:
    """Validate a /v1/changes body; a bad entry is logged and dropped, a bad page raises CloudError."""
    if not isinstance(body, dict) or not isinstance(body.get("cursor"), str) or not isinstance(body.get("entries"), list):
        raise CloudError("malformed changes page")
    entries: list[FileEntry | FolderEntry | DeletedEntry] = []
    dropped = 0
    for raw in body["entries"]:
        try:
            entries.append(_entry.validate_python(raw))
        except ValidationError as exc:
            dropped += 1
            err = exc.errors()[0]
            log.warning("dropping bad cloud entry: %s %s", ".".join(map(str, err["loc"])), err["msg"])
    return ChangesPage(entries, body["cursor"], bool(body.get("has_more")), dropped)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from now (RFC 9110 §10.2.3), or None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 600.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Wait before retry number `attempt` (1-based): Retry-After if given, else full-jitter backoff."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return rng.uniform(self.base, min(self.cap, self.base * 2 ** (attempt - 1)))


def timeouts(read: float = 60.0) -> aiohttp.ClientTimeout:
    """No total limit (a big file takes as long as it takes); bound connect and read gaps."""
    return aiohttp.ClientTimeout(total=None, connect=30, sock_connect=15, sock_read=read)


class CloudClient:
    """Calls the cloud with auth, retries and backoff; content is streamed by the caller."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        tokens: TokenSource,
        base_url: str,
        clock: Clock,
        retry: RetryPolicy = RetryPolicy(),
        rng: random.Random | None = None,
    ) -> None:
        self.session = session
        self.tokens = tokens
        self.base = base_url.rstrip("/")
        self.clock = clock
        self.retry = retry
        self.rng = rng or random.Random()
        self.retries = 0  # transient failures retried, for the status page

    async def backoff(self, attempt: int, exc: Exception) -> None:
        """Sleep before the next attempt, or re-raise when the budget is spent."""
        if attempt >= self.retry.attempts:
            raise exc
        after = exc.after if isinstance(exc, RetryLater) else None
        delay = self.retry.delay(attempt, after, self.rng)
        self.retries += 1
        log.info("cloud: %s; retry %d in %.1fs", exc or type(exc).__name__, attempt, delay)
        await self.clock.sleep(delay)

    def check(self, resp: aiohttp.ClientResponse) -> None:
        """Map a non-success status to the exception the caller acts on."""
        if resp.status in RETRYABLE_STATUS:
            raise RetryLater(f"HTTP {resp.status}", parse_retry_after(resp.headers.get("Retry-After"), self.clock.now()))
        if resp.status == 410:
            raise CursorReset()
        if resp.status >= 400:
            raise CloudError(f"HTTP {resp.status} for {resp.url.path}", resp.status)

    async def _get_json(self, path: str, params: dict[str, str], read_timeout: float = 60.0) -> Any:
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            try:
                tok = await self.tokens.current()
                async with self.session.get(
                    self.base + path,
                    params=params,
                    headers={"Authorization": f"Bearer {tok.access_token}"},
                    timeout=timeouts(read_timeout),
                ) as resp:
                    if resp.status == 401 and not refreshed:
                        refreshed = True
                        await self.tokens.refresh(tok.access_token)
                        attempt -= 1
                        continue
                    self.check(resp)
                    try:
                        return await resp.json(content_type=None)
                    except ValueError as exc:
                        raise RetryLater("unparseable JSON body") from exc
            except (RetryLater, *TRANSPORT_ERRORS) as exc:
                await self.backoff(attempt, exc)

    async def changes(self, cursor: str | None, limit: int = 500) -> ChangesPage:
        """One page of the change feed; no cursor means a full listing."""
        params = {"limit": str(limit)}
        if cursor:
            params["cursor"] = cursor
        return parse_page(await self._get_json("/v1/changes", params))

    async def wait(self, cursor: str, timeout: int = 30) -> WaitResult:
        """Long-poll until something changes after `cursor` (the server may add jitter)."""
        body = await self._get_json("/v1/changes/wait", {"cursor": cursor, "timeout": str(timeout)}, read_timeout=timeout + 100)
        if not isinstance(body, dict):
            raise CloudError("malformed wait response")
        backoff = body.get("backoff")
        return WaitResult(bool(body.get("changes")), float(backoff) if isinstance(backoff, (int, float)) else None)

    @asynccontextmanager
    async def content(self, cloud_id: str, headers: dict[str, str]) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET the file's bytes once (no retry here: the downloader resumes); refreshes once on 401."""
        from urllib.parse import quote

        url = f"{self.base}/v1/files/{quote(cloud_id, safe='')}/content"
        for first in (True, False):
            tok = await self.tokens.current()
            h = {"Authorization": f"Bearer {tok.access_token}", "Accept-Encoding": "identity", **headers}
            async with self.session.get(url, headers=h, timeout=timeouts(), auto_decompress=False) as resp:
                if resp.status == 401 and first:
                    await self.tokens.refresh(tok.access_token)
                    continue
                yield resp
                return
