"""aiohttp routes for the media library; the lead's middleware applies auth to /api/*.

`/media/file/{id}` is authorised by its signature alone (the projector has no session):
HMAC-SHA256 over "<id>:<exp>", 403 when bad or expired; Range is served per RFC 9110 §14.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..web.access import public
from .service import MediaService, UnknownMedia

SERVICE = web.AppKey("media_service", MediaService)


class PlayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: str = Field(min_length=1, max_length=200)


class LinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cloud: str = Field(min_length=1, max_length=500, pattern=r"^https?://[^\s]+$")


class MediaQuery(BaseModel):
    kind: str | None = Field(default=None, max_length=40)
    q: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0)


class _FileResponse(web.FileResponse):
    """A FileResponse that may be prepared early (with an edited request) and returned."""

    async def prepare(self, request: web.BaseRequest):  # type: ignore[override]
        if self.prepared:
            return self._payload_writer
        return await super().prepare(request)


def _invalid(exc: ValidationError) -> web.Response:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "body"
    return web.json_response({"error": "invalid", "field": field, "rule": err["msg"]}, status=422)


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def list_media(request: web.Request) -> web.Response:
    try:
        q = MediaQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        return _invalid(exc)
    return web.json_response(await request.app[SERVICE].list_media(q.kind, q.q, q.limit, q.offset))


async def start_sync(request: web.Request) -> web.Response:
    status = await request.app[SERVICE].sync_now()
    if status.get("reason") == "not linked":
        return web.json_response({**status, "error": "not linked to a cloud: run `hub cloud link`"}, status=409)
    return web.json_response(status, status=202 if status["started"] else 200)


async def sync_status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[SERVICE].sync_status())


async def play(request: web.Request) -> web.Response:
    try:
        media_id = int(request.match_info["id"])
    except ValueError:
        return web.json_response({"error": "invalid", "field": "id", "rule": "must be an integer"}, status=422)
    try:
        raw: Any = await request.json()
    except ValueError:
        return web.json_response({"error": "invalid", "field": "body", "rule": "must be JSON"}, status=422)
    try:
        body = PlayBody.model_validate(raw)
    except ValidationError as exc:
        return _invalid(exc)
    try:
        result = await request.app[SERVICE].play(media_id, body.device, _base_url(request))
    except UnknownMedia:
        return web.json_response({"error": "no such media", "id": media_id}, status=404)
    return web.json_response(result)


@public  # the projector has no session: the URL's signature is its authority
async def media_file(request: web.Request) -> web.StreamResponse:
    try:
        media_id = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    try:
        found = await request.app[SERVICE].file_for(media_id, request.query.get("exp"), request.query.get("sig"))
    except UnknownMedia:
        raise web.HTTPNotFound() from None
    if found is None:
        raise web.HTTPForbidden(text="bad or expired signature")
    path, row = found
    headers = {"X-Content-SHA256": row["sha256"], "Cache-Control": "private, max-age=3600"}
    if row.get("duration_ms") is not None:
        headers["X-Media-Duration-Ms"] = str(row["duration_ms"])
    resp = _FileResponse(path, headers=headers)
    if row.get("media_type"):
        resp.content_type = row["media_type"]
    if_range = request.headers.get("If-Range", "")
    if request.headers.get("Range") and if_range.startswith(('"', "W/")):
        # aiohttp evaluates If-Range only as a date; an entity tag is ours to check (RFC 9110
        # §13.1.5): strong comparison with the tag FileResponse sends, else the whole file.
        st = await asyncio.to_thread(path.stat)
        if if_range != f'"{st.st_mtime_ns:x}-{st.st_size:x}"':
            plain = request.clone(headers={k: v for k, v in request.headers.items() if k.lower() not in ("range", "if-range")})
            await resp.prepare(plain)
    return resp


async def cloud_status(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    status = await service.sync_status()
    return web.json_response({"linked": status["linked"], "cloud": status["cloud"], "link": service.link_status()})


async def cloud_link(request: web.Request) -> web.Response:
    try:
        body = LinkBody.model_validate(await request.json())
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            return _invalid(exc)
        return web.json_response({"error": "invalid", "field": "body", "rule": "must be JSON"}, status=422)
    state = await request.app[SERVICE].start_link(body.cloud)
    if state["state"] == "failed":
        return web.json_response({"error": state["error"], "field": "cloud", "rule": "cloud must answer"},
                                 status=502)
    return web.json_response(state, status=202)


async def cloud_unlink(request: web.Request) -> web.Response:
    was = await request.app[SERVICE].unlink()
    return web.json_response({"linked": False, "was_linked": was})


def add_routes(app: web.Application, service: MediaService) -> None:
    """Register the media routes; the caller owns service.start()/stop() (e.g. in cleanup_ctx)."""
    app[SERVICE] = service
    app.router.add_get("/api/media", list_media)
    app.router.add_post("/api/media/sync", start_sync)
    app.router.add_get("/api/media/sync", sync_status)
    app.router.add_post("/api/media/{id}/play", play)
    app.router.add_get("/api/cloud", cloud_status)
    app.router.add_post("/api/cloud/link", cloud_link)
    app.router.add_delete("/api/cloud/link", cloud_unlink)
    app.router.add_get("/media/file/{id}", media_file)
