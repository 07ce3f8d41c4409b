"""A small operator cloud for the media tests, with fault injection (not the firmware_sim one).

Written from the API description only; hashes with hashlib directly so it shares nothing with
hub.media's hasher.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def dropbox_hash(data: bytes) -> str:
    blocks = [hashlib.sha256(data[i : i + 4194304]).digest() for i in range(0, len(data), 4194304)]
    return hashlib.sha256(b"".join(blocks)).hexdigest()


@dataclass
class CloudFile:
    id: str
    path: str
    data: bytes
    rev: str
    kind: str = "video"
    duration_ms: int | None = 1000
    modified: str = "2026-01-01T00:00:00Z"

    @property
    def hash(self) -> str:
        return dropbox_hash(self.data)

    def entry(self) -> dict[str, Any]:
        return {
            "tag": "file", "id": self.id, "path": self.path, "rev": self.rev, "size": len(self.data),
            "content_hash": self.hash, "server_modified": self.modified, "media_type": "video/mp4",
            "media": {"kind": self.kind, "width": 1920, "height": 1080, "duration_ms": self.duration_ms},
        }


@dataclass
class Faults:
    statuses: list[tuple[int, str | None]] = field(default_factory=list)  # next responses on /v1/*: (status, Retry-After)
    content_statuses: list[tuple[int, str | None]] = field(default_factory=list)
    cut_after: dict[str, int] = field(default_factory=dict)  # id -> drop the connection after N body bytes (once)
    short_after: dict[str, int] = field(default_factory=dict)  # id -> end the body early (once)
    ignore_range: set[str] = field(default_factory=set)  # ids: always 200 for ranged requests (once each)
    change_after: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # id -> (N, new data): replace after N bytes
    fail_listing_pages: int = 0  # next N requests for a listing page after the first answer 503
    force_410: int = 0  # next N /v1/changes calls with a cursor answer 410
    trickle: float | None = None  # bytes per second for content bodies
    random_rate: float = 0.0  # chance each content request gets a random fault
    injected: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(1))


class FakeCloud:
    def __init__(self) -> None:
        self.files: dict[str, CloudFile] = {}
        self.log: list[tuple[int, dict[str, Any]]] = []
        self.seq = 0
        self.faults = Faults()
        self.tokens: dict[str, float] = {}  # access token -> expiry (loop time)
        self.refresh_tokens: set[str] = set()
        self.grant_script: list[str] = []  # token poll answers before the final one
        self.grant_final = "grant"  # "grant" or an error code
        self.device_codes: dict[str, str] = {}
        self.interval = 5
        self.token_polls = 0
        self.requests: list[dict[str, Any]] = []  # content requests: id, range, if_range, status, sent
        self.body_bytes = 0
        self.sent_by_id: dict[str, int] = {}
        self.progress_waiters: list[tuple[str, int, asyncio.Future]] = []
        self.changed = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.access_ttl = 3600

    # -- data --

    def put(self, path: str, data: bytes, id: str | None = None, **kw: Any) -> CloudFile:
        old = next((f for f in self.files.values() if f.path == path), None)
        fid = id or (old.id if old else f"id{len(self.files) + len(self.log) + 1}")
        f = CloudFile(fid, path, data, rev=secrets.token_hex(4), **kw)
        self.files[fid] = f
        self.seq += 1
        self.log.append((self.seq, f.entry()))
        self.changed.set()
        return f

    def move(self, fid: str, new_path: str) -> None:
        f = self.files[fid]
        self.seq += 1
        self.log.append((self.seq, {"tag": "deleted", "id": fid, "path": f.path}))
        f.path = new_path
        self.seq += 1
        self.log.append((self.seq, f.entry()))
        self.changed.set()

    def forget(self, fid: str) -> None:
        """Delete without a tombstone (as if the tombstone was garbage-collected): only a relist shows it."""
        self.files.pop(fid)

    def delete(self, fid: str) -> None:
        f = self.files.pop(fid)
        self.seq += 1
        self.log.append((self.seq, {"tag": "deleted", "id": fid, "path": f.path}))
        self.changed.set()

    def manifest(self) -> str:
        return "".join(f"{f.hash}  {f.path.lstrip('/')}\n" for f in sorted(self.files.values(), key=lambda f: f.path))

    def issue(self) -> dict[str, Any]:
        access, refresh = secrets.token_hex(8), secrets.token_hex(8)
        self.tokens[access] = asyncio.get_running_loop().time() + self.access_ttl
        self.refresh_tokens.add(refresh)
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.access_ttl, "refresh_token": refresh}

    def wait_sent(self, fid: str, n: int) -> asyncio.Future:
        """A future resolved once at least n body bytes of fid have been sent in one response."""
        fut = asyncio.get_running_loop().create_future()
        self.progress_waiters.append((fid, n, fut))
        return fut

    # -- server --

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/oauth/device/code", self.device_code)
        app.router.add_post("/oauth/token", self.token)
        app.router.add_get("/v1/changes", self.changes)
        app.router.add_get("/v1/changes/wait", self.wait)
        app.router.add_get("/v1/files/{id}/content", self.content)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    async def device_code(self, request: web.Request) -> web.Response:
        form = await request.post()
        code = secrets.token_hex(8)
        self.device_codes[code] = str(form.get("client_id"))
        return web.json_response({
            "device_code": code, "user_code": "WDJB-MJHT", "verification_uri": f"{self.url}/device",
            "verification_uri_complete": f"{self.url}/device?user_code=WDJBMJHT", "expires_in": 60, "interval": self.interval,
        })

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return web.json_response({"error": "invalid_grant"}, status=400)
            body = self.issue()
            body["refresh_token"] = str(form.get("refresh_token"))  # no rotation
            return web.json_response(body)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" or form.get("device_code") not in self.device_codes:
            return web.json_response({"error": "invalid_grant"}, status=400)
        self.token_polls += 1
        if self.grant_script:
            return web.json_response({"error": self.grant_script.pop(0)}, status=400, headers={"Cache-Control": "no-store"})
        if self.grant_final != "grant":
            return web.json_response({"error": self.grant_final}, status=400)
        return web.json_response(self.issue())

    def authorised(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        exp = self.tokens.get(auth.removeprefix("Bearer "))
        return exp is not None and exp > asyncio.get_running_loop().time()

    def injected(self, queue: list[tuple[int, str | None]]) -> web.Response | None:
        if not queue:
            return None
        status, after = queue.pop(0)
        return web.json_response({"error": "injected"}, status=status, headers={"Retry-After": after} if after else {})

    async def changes(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        if (r := self.injected(self.faults.statuses)) is not None:
            return r
        cursor = request.query.get("cursor")
        limit = int(request.query.get("limit", "100"))
        if cursor and self.faults.force_410 > 0:
            self.faults.force_410 -= 1
            return web.json_response({"error": {"code": "cursor_reset"}}, status=410)
        if cursor and cursor.startswith("L:") and self.faults.fail_listing_pages > 0:
            self.faults.fail_listing_pages -= 1
            return web.json_response({"error": "injected"}, status=503)
        if not cursor or cursor.startswith("L:"):
            snap, offset = (int(x) for x in cursor[2:].split(":")) if cursor else (self.seq, 0)
            listing = sorted(self.files.values(), key=lambda f: f.path)
            page = listing[offset : offset + limit]
            more = offset + limit < len(listing)
            nxt = f"L:{snap}:{offset + limit}" if more else f"S:{snap}"
            return web.json_response({"entries": [f.entry() for f in page], "cursor": nxt, "has_more": more})
        since = int(cursor[2:])
        new = [(s, e) for s, e in self.log if s > since][:limit]
        last = new[-1][0] if new else since
        more = any(s > last for s, _ in self.log)
        return web.json_response({"entries": [e for _, e in new], "cursor": f"S:{last}", "has_more": more})

    async def wait(self, request: web.Request) -> web.Response:
        cursor = request.query.get("cursor", "S:0")
        since = int(cursor[2:]) if cursor.startswith("S:") else 0
        timeout = min(float(request.query.get("timeout", "30")), 5.0)
        if not any(s > since for s, _ in self.log):
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        return web.json_response({"changes": any(s > since for s, _ in self.log)})

    async def content(self, request: web.Request) -> web.StreamResponse:
        if not self.authorised(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        fid = request.match_info["id"]
        f = self.files.get(fid)
        rec: dict[str, Any] = {"id": fid, "range": request.headers.get("Range"), "if_range": request.headers.get("If-Range"), "sent": 0}
        self.requests.append(rec)
        if (r := self.injected(self.faults.content_statuses)) is not None:
            rec["status"] = r.status
            return r
        if f is None:
            rec["status"] = 404
            return web.json_response({"error": "not_found"}, status=404)
        fault = None
        if self.faults.random_rate and self.faults.rng.random() < self.faults.random_rate:
            kinds = ["cut", "short", "ignore_range", "429", "503", "corrupt"]
            fault = kinds[self.faults.injected % len(kinds)]  # round robin, so every kind occurs
            self.faults.injected += 1
            rec["fault"] = fault
            if fault in ("429", "503"):
                rec["status"] = int(fault)
                return web.json_response({}, status=int(fault), headers={"Retry-After": "1"})
        data = f.data
        etag = f'"{f.hash}"'
        start = 0
        status = 200
        rng = request.headers.get("Range")
        ignore = bool(rng) and (fid in self.faults.ignore_range or fault == "ignore_range")
        if ignore:
            self.faults.ignore_range.discard(fid)
        if rng and rng.startswith("bytes=") and not ignore:
            if_range = request.headers.get("If-Range")
            if if_range is None or if_range == etag:
                start = int(rng[6:].split("-")[0])
                if start >= len(data):
                    rec["status"] = 416
                    return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
                status = 206
        rec["status"] = status
        body = data[start:]
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = len(body)
        await resp.prepare(request)
        cut = self.faults.cut_after.pop(fid, None)
        short = self.faults.short_after.pop(fid, None)
        if fault == "cut":
            cut = self.faults.rng.randrange(0, max(1, len(body)))
        if fault == "short":
            short = self.faults.rng.randrange(0, max(1, len(body)))
        change = self.faults.change_after.pop(fid, None)
        if fault == "corrupt" and body:
            i = self.faults.rng.randrange(len(body))
            body = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
        pos = 0
        step = 64 * 1024
        stops = [x for x in (cut, short, change[0] if change else None) if x is not None]
        stop = min(stops) if stops else None
        while pos < len(body):
            if stop is not None and pos >= stop:
                if change and pos >= change[0]:
                    self.put(f.path, change[1], id=fid)  # the file changes on the server mid-download
                assert request.transport is not None
                request.transport.close()  # connection drop / short body: the client sees a truncated body
                return resp
            n = min(step, len(body) - pos, (stop - pos) if stop is not None else step)
            if self.faults.trickle:
                await asyncio.sleep(n / self.faults.trickle)
            await resp.write(body[pos : pos + n])
            pos += n
            rec["sent"] = pos
            self.body_bytes += n
            for w in list(self.progress_waiters):
                if w[0] == fid and pos >= w[1] and not w[2].done():
                    w[2].set_result(pos)
                    self.progress_waiters.remove(w)
        await resp.write_eof()
        return resp
