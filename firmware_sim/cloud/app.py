"""The simulated operator cloud as an aiohttp application (API shape: cloudsync research §7).

`create_app(...)` builds it; tests run it in-process with aiohttp's TestServer and reach the
library, the device authority and the fault switches through the AppKeys below.
"""

from __future__ import annotations

import html
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from aiohttp import web

from .auth import DEVICE_CODE_GRANT, DeviceAuthority, TokenError, format_user_code
from .content import serve_content
from .faults import FaultError, FaultSet
from .content_hash import BLOCK_SIZE
from .http_semantics import http_date
from .journal import CursorInvalid, CursorReset
from .store import Library

log = logging.getLogger(__name__)

REALM = "operator-cloud"
MAX_LIMIT = 2000
DEFAULT_LIMIT = 500
MAX_WAIT = 480  # Dropbox longpoll's upper bound


@dataclass(frozen=True)
class CloudSettings:
    """Knobs of one cloud instance."""

    wait_jitter: float = 0.0  # Dropbox adds up to 90 s; off by default for quick tests
    guess_limit: int = 10  # wrong user codes per minute before the page answers 429


LIBRARY = web.AppKey("library", Library)
AUTHORITY = web.AppKey("authority", DeviceAuthority)
FAULTS = web.AppKey("faults", FaultSet)
CLOCK = web.AppKey("clock", Callable[[], float])
SETTINGS = web.AppKey("settings", CloudSettings)
_GUESSES = web.AppKey("guesses", deque)


def error_json(status: int, error: str, description: str = "", **headers: str) -> web.Response:
    body: dict[str, object] = {"error": error}
    if description:
        body["error_description"] = description
    return web.json_response(body, status=status, headers=headers or None)


def throttled(picked: dict[str, float | None], faults: FaultSet) -> web.Response | None:
    """429/503 with Retry-After (RFC 9110 §10.2.3) when one of those faults fired."""
    for status in ("429", "503"):
        if status in picked:
            delay = int(picked[status] or 0)
            if faults.retry_after_as_date():
                after = http_date(datetime.now(timezone.utc) + timedelta(seconds=delay))
            else:
                after = str(delay)
            reason = "rate_limited" if status == "429" else "unavailable"
            return error_json(int(status), reason, "fault injected", **{"Retry-After": after})
    return None


async def read_form(request: web.Request):
    """The urlencoded body, or HTTPBadRequest (JSON) when it is not decodable."""
    try:
        return await request.post()
    except (ValueError, UnicodeDecodeError):
        log.info("undecodable form body on %s", request.path)
        raise web.HTTPBadRequest(
            text='{"error": "invalid_request", "error_description": "body is not a valid form"}',
            content_type="application/json") from None


# -- OAuth: RFC 8628 device grant and RFC 6749 refresh ------------------------------------
async def device_code(request: web.Request) -> web.Response:
    """RFC 8628 §3.1/§3.2: device authorization request and response."""
    form = await read_form(request)
    client_id = str(form.get("client_id", "")).strip()
    if not client_id:
        return error_json(400, "invalid_request", "client_id is required")
    scope = str(form.get("scope", "media.read")).strip() or "media.read"
    grant = request.app[AUTHORITY].start(client_id, scope, request.app[CLOCK]())
    base = f"{request.scheme}://{request.host}/device"
    return web.json_response({
        "device_code": grant.device_code, "user_code": format_user_code(grant.user_code),
        "verification_uri": base,
        "verification_uri_complete": f"{base}?user_code={format_user_code(grant.user_code)}",
        "expires_in": request.app[AUTHORITY].code_ttl, "interval": grant.interval,
    }, headers={"Cache-Control": "no-store"})


async def token(request: web.Request) -> web.Response:
    """RFC 8628 §3.4/§3.5 token polling, and RFC 6749 §6 refresh (tokens not rotated)."""
    form = await read_form(request)
    grant_type = str(form.get("grant_type", ""))
    client_id = str(form.get("client_id", ""))
    authority, now, faults = request.app[AUTHORITY], request.app[CLOCK](), request.app[FAULTS]
    no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if grant_type == DEVICE_CODE_GRANT:
        code = str(form.get("device_code", ""))
        if not code or not client_id:
            return error_json(400, "invalid_request", "device_code and client_id are required")
        if "slow_down" in faults.pick("token"):
            result: object = TokenError("slow_down", "fault injected")
        else:
            result = authority.poll(code, client_id, now)
    elif grant_type == "refresh_token":
        refresh = str(form.get("refresh_token", ""))
        if not refresh:
            return error_json(400, "invalid_request", "refresh_token is required")
        if "invalid_grant" in faults.pick("refresh"):
            result = TokenError("invalid_grant", "fault injected")
        else:
            result = authority.refresh(refresh, client_id, now)
    else:
        return error_json(400, "unsupported_grant_type", f"grant_type {grant_type!r}")
    if isinstance(result, TokenError):
        return error_json(400, result.error, result.description, **no_store)
    return web.json_response(result.as_json(), headers=no_store)  # type: ignore[attr-defined]


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Link a device</title>
<meta name="viewport" content="width=device-width,initial-scale=1"></head>
<body style="font-family:sans-serif;max-width:28em;margin:2em auto"><h1>Link a device</h1>{body}
</body></html>"""
_FORM = """<p>Type the code your hub shows.</p><form method="post" action="/device">
<input name="user_code" value="{code}" autocomplete="off" autofocus
 style="font-size:1.5em;letter-spacing:.1em;text-transform:uppercase" size="10">
<p><button name="action" value="approve">Allow</button>
<button name="action" value="deny">Deny</button></p></form>"""


async def verification_page(request: web.Request) -> web.Response:
    """The verification_uri (RFC 8628 §3.3): the phone side of the grant."""
    code = html.escape(request.query.get("user_code", ""))
    return web.Response(text=_PAGE.format(body=_FORM.format(code=code)), content_type="text/html")


async def verification_submit(request: web.Request) -> web.Response:
    """Approve or deny a user code; wrong guesses are rate-limited (RFC 8628 §5.1)."""
    form = await read_form(request)
    now = request.app[CLOCK]()
    guesses = request.app[_GUESSES]
    while guesses and guesses[0] <= now - 60:
        guesses.popleft()
    if len(guesses) >= request.app[SETTINGS].guess_limit:
        body = "<p>Too many wrong codes. Wait a minute and try again.</p>"
        return web.Response(text=_PAGE.format(body=body), content_type="text/html", status=429)
    approve = str(form.get("action", "approve")) != "deny"
    grant = request.app[AUTHORITY].decide(str(form.get("user_code", "")), approve, now)
    if grant is None:
        guesses.append(now)
        body = ("<p>That code is unknown or has expired.</p>"
                + _FORM.format(code=html.escape(str(form.get("user_code", "")))))
        return web.Response(text=_PAGE.format(body=body), content_type="text/html", status=400)
    verdict = "allowed. You can go back to your hub" if approve else "denied"
    body = f"<p>Device <b>{html.escape(grant.client_id)}</b> {verdict}.</p>"
    return web.Response(text=_PAGE.format(body=body), content_type="text/html")


# -- bearer auth (RFC 6750) ------------------------------------------------------------
@web.middleware
async def bearer_auth(request: web.Request, handler):
    """Every /v1 route needs a valid, unexpired access token (RFC 6750 §2.1, §3)."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return error_json(401, "unauthorized", "a bearer token is required",
                          **{"WWW-Authenticate": f'Bearer realm="{REALM}"'})
    problem = request.app[AUTHORITY].check_access(value.strip(), request.app[CLOCK]())
    if problem is not None:
        challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{problem}"'
        return error_json(401, "invalid_token", problem, **{"WWW-Authenticate": challenge})
    return await handler(request)


# -- the change feed ---------------------------------------------------------------------
def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f'{{"error": "invalid_request", "error_description": '
                                      f'"{name} must be an integer"}}',
                                 content_type="application/json") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f'{{"error": "invalid_request", "error_description": '
                                      f'"{name} must be within {low}..{high}"}}',
                                 content_type="application/json")
    return value


async def changes(request: web.Request) -> web.Response:
    """One page of the change feed; no cursor = full listing from the start."""
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    cursor = request.query.get("cursor") or None
    faults = request.app[FAULTS]
    picked = faults.pick("changes")
    if (resp := throttled(picked, faults)) is not None:
        return resp
    if cursor and "reset" in picked:
        return error_json(410, "reset", "fault injected: relist without a cursor")
    library = request.app[LIBRARY]
    await library.refresh()
    try:
        page, next_cursor = library.changes(cursor, limit)
    except CursorInvalid as exc:
        return error_json(400, "invalid_cursor", str(exc))
    except CursorReset as exc:
        return error_json(410, "reset", f"{exc}: relist without a cursor")
    return web.json_response({"entries": [e.as_json() for e in page.entries],
                              "cursor": next_cursor, "has_more": page.has_more})


async def latest_cursor(request: web.Request) -> web.Response:
    """A cursor at the head of the feed, for clients that only want future changes."""
    library = request.app[LIBRARY]
    await library.refresh()
    return web.json_response({"cursor": library.cursors.encode(library.journal.seq)})


async def changes_wait(request: web.Request) -> web.Response:
    """Long-poll: answers {"changes": true} as soon as the feed moves past the cursor."""
    cursor = request.query.get("cursor", "")
    if not cursor:
        return error_json(400, "invalid_request", "cursor is required")
    timeout = _int_param(request, "timeout", 30, 1, MAX_WAIT)
    faults = request.app[FAULTS]
    picked = faults.pick("wait")
    if (resp := throttled(picked, faults)) is not None:
        return resp
    if "reset" in picked:
        return error_json(410, "reset", "fault injected: relist without a cursor")
    jitter = request.app[SETTINGS].wait_jitter
    if jitter:
        timeout += random.uniform(0, jitter)
    try:
        changed = await request.app[LIBRARY].wait_for_change(cursor, timeout)
    except CursorInvalid as exc:
        return error_json(400, "invalid_cursor", str(exc))
    except CursorReset as exc:
        return error_json(410, "reset", f"{exc}: relist without a cursor")
    body: dict[str, object] = {"changes": changed}
    if "backoff" in picked:
        body["backoff"] = int(picked["backoff"] or 0)
    return web.json_response(body)


async def blocks(request: web.Request) -> web.Response:
    """The hash of each 4 MiB block; sha256(concat(blocks)) == content_hash, so a client can
    verify a resumed partial block by block (cloudsync research §7)."""
    library = request.app[LIBRARY]
    entry = library.file(request.match_info["id"])
    if entry is None:
        return error_json(404, "not_found")
    try:
        hashes = await library.blocks(entry)
    except OSError:
        hashes = None
    if hashes is None:
        return error_json(503, "changing", "file is changing", **{"Retry-After": "1"})
    return web.json_response({"block_size": BLOCK_SIZE, "blocks": list(hashes),
                              "content_hash": entry.content_hash, "rev": entry.rev},
                             headers={"ETag": f'"{entry.content_hash}"'})


async def manifest(request: web.Request) -> web.Response:
    """`<content_hash>  <path>` lines for `rclone check --checkfile dropbox`."""
    faults = request.app[FAULTS]
    if (resp := throttled(faults.pick("manifest"), faults)) is not None:
        return resp
    library = request.app[LIBRARY]
    await library.refresh()
    return web.Response(text=library.manifest(), content_type="text/plain")


async def content(request: web.Request) -> web.StreamResponse:
    """GET/HEAD of a file's bytes with Range, If-Range and strong ETags (RFC 9110 §13, §14)."""
    return await serve_content(request, request.app[LIBRARY], request.app[FAULTS], throttled)


# -- admin (simulator only, unauthenticated: loopback test control) -----------------------
async def admin_faults_get(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAULTS].snapshot())


async def admin_faults_post(request: web.Request) -> web.Response:
    """Body {"set": ["503=2*1", ...], "clear": ["503"] | "all"}; answers the new state."""
    try:
        body = await request.json()
    except ValueError:
        return error_json(400, "invalid_request", "body must be JSON")
    if not isinstance(body, dict):
        return error_json(400, "invalid_request", "body must be a JSON object")
    faults = request.app[FAULTS]
    clear = body.get("clear", [])
    set_ = body.get("set", [])
    if not isinstance(set_, list) or not all(isinstance(s, str) for s in set_):
        return error_json(400, "invalid_request", '"set" must be a list of fault specs')
    try:
        if clear == "all":
            faults.clear()
        elif isinstance(clear, list):
            for name in clear:
                faults.clear(str(name))
        for spec in set_:
            faults.set(spec)
    except FaultError as exc:
        return error_json(400, "invalid_fault", str(exc))
    return web.json_response(faults.snapshot())


async def admin_faults_delete(request: web.Request) -> web.Response:
    request.app[FAULTS].clear()
    return web.json_response(request.app[FAULTS].snapshot())


async def index(request: web.Request) -> web.Response:
    lib = request.app[LIBRARY]
    files = sum(1 for e in lib.journal.live() if e.tag == "file")
    return web.json_response({"service": "operator-cloud simulator", "files": files,
                              "seq": lib.journal.seq, "device_page": "/device"})


def create_app(library_dir: Path | str, *, auto_approve: bool = False, token_ttl: int = 3600,
               code_ttl: int = 900, interval: int = 5, faults: Iterable[str] = (),
               fault_seed: int | None = None, scan_interval: float = 2.0,
               max_tombstones: int = 1000, wait_jitter: float = 0.0,
               clock: Callable[[], float] = time.monotonic) -> web.Application:
    """The operator cloud serving `library_dir`. Raises FaultError on a bad fault spec."""
    app = web.Application(middlewares=[bearer_auth])
    app[LIBRARY] = Library(Path(library_dir), max_tombstones=max_tombstones,
                           scan_interval=scan_interval)
    app[AUTHORITY] = DeviceAuthority(token_ttl=token_ttl, code_ttl=code_ttl, interval=interval,
                                     auto_approve=auto_approve)
    fault_set = FaultSet(seed=fault_seed)
    for spec in faults:
        fault_set.set(spec)
    app[FAULTS] = fault_set
    app[CLOCK] = clock
    app[SETTINGS] = CloudSettings(wait_jitter=wait_jitter)
    app[_GUESSES] = deque(maxlen=1000)

    async def library_ctx(app: web.Application) -> AsyncIterator[None]:
        await app[LIBRARY].start()
        yield
        await app[LIBRARY].stop()

    async def wake_long_polls(app: web.Application) -> None:
        app[LIBRARY].wake_waiters()  # so shutdown doesn't wait out every pending long-poll

    app.cleanup_ctx.append(library_ctx)
    app.on_shutdown.append(wake_long_polls)
    r = app.router
    r.add_get("/", index)
    r.add_post("/oauth/device/code", device_code)
    r.add_post("/oauth/token", token)
    r.add_get("/device", verification_page)
    r.add_post("/device", verification_submit)
    r.add_get("/v1/changes", changes)
    r.add_get("/v1/changes/latest_cursor", latest_cursor)
    r.add_get("/v1/changes/wait", changes_wait)
    r.add_get("/v1/files/{id}/content", content)
    r.add_get("/v1/files/{id}/blocks", blocks)
    r.add_get("/v1/manifest", manifest)
    r.add_get("/_admin/faults", admin_faults_get)
    r.add_post("/_admin/faults", admin_faults_post)
    r.add_delete("/_admin/faults", admin_faults_delete)
    return app
