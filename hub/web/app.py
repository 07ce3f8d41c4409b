"""The REST API, the WebSocket of live events and the UI, on aiohttp."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..bus import Overflow
from ..core import Hub, error_status
from ..media import MediaService, add_routes as add_media_routes
from ..tokens import TokenChecker
from .openapi import openapi

log = logging.getLogger(__name__)

HUB = web.AppKey("hub", Hub)
TOKENS = web.AppKey("tokens", TokenChecker)
STATIC = Path(__file__).parent / "static"
WS_BATCH = 500  # events per WebSocket frame at most, with ?batch=1
PUBLIC = {"/api/health", "/api/openapi.json", "/", "/favicon.ico"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str, **fields: Any) -> web.Response:
    return web.json_response({"error": message, **fields}, status=status)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    # /media/file/ is authorised by its signed, expiring URL: the projector has no session
    if path in PUBLIC or path.startswith(("/static/", "/media/file/")) or request.method == "OPTIONS":
        return await handler(request)
    token = ""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token = header[7:].strip()
    elif path == "/api/ws":
        token = request.query.get("token", "")  # browsers can't set headers on a WebSocket
    if not token or await request.app[TOKENS].check(token) is None:
        return web.json_response({"error": "authentication required"}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="hub"'})
    return await handler(request)


async def read_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise web.HTTPUnprocessableEntity(
            text=json.dumps({"error": f"body is not JSON: {e}", "field": "body", "rule": "must be JSON"}),
            content_type="application/json") from None


async def health(request: web.Request) -> web.Response:
    return web.json_response(request.app[HUB].health())


async def list_devices(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    devices = sorted(hub.registry.devices.values(), key=lambda d: (d.room or "~", d.name.lower()))
    return web.json_response([d.to_json() for d in devices])


def _device_or_404(request: web.Request):
    dev = request.app[HUB].registry.get(request.match_info["id"])
    if dev is None:
        raise web.HTTPNotFound(text=json.dumps({"error": f"no device {request.match_info['id']!r}"}),
                               content_type="application/json")
    return dev


async def get_device(request: web.Request) -> web.Response:
    return web.json_response(_device_or_404(request).to_json())


class DevicePatch(BaseModel):
    """What the household may change about a device."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=80)
    room: str | None = Field(None, max_length=80)


async def patch_device(request: web.Request) -> web.Response:
    dev = _device_or_404(request)
    try:
        patch = DevicePatch.model_validate(await read_json(request))
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "body"
        return error(422, f"{field}: {err['msg']}", field=field, rule=err["msg"])
    dev = await request.app[HUB].rename_device(dev.id, patch.name, patch.room)
    return web.json_response(dev.to_json())


async def set_device(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    device_id = request.match_info["id"]
    body = await read_json(request)
    try:
        state = await hub.set_state(device_id, body)
    except Exception as e:
        status, fields = error_status(e)
        if status == 500:
            log.exception("set %s failed", device_id)
            return error(500, "internal error")
        return error(status, str(e) if status != 404 else f"no device {device_id!r}", **fields)
    return web.json_response({"id": device_id, "state": state})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Live events: a snapshot of every device first, then each change as it happens.

    With `?batch=1` the events that piled up since the last send go as one frame,
    `{"type": "batch", "events": [...]}`: a thousand devices coming online is a few frames, not
    thousands, and a browser keeps up instead of being cut off as too slow.
    """
    hub = request.app[HUB]
    batched = request.query.get("batch") == "1"
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    with hub.bus.subscribe(maxsize=2000) as sub:
        devices = [d.to_json() for d in hub.registry.devices.values()]
        await ws.send_json({"type": "snapshot", "devices": devices, "health": hub.health()})
        reader = asyncio.get_running_loop().create_task(_ws_reader(ws, hub))
        try:
            while not ws.closed:
                get = asyncio.ensure_future(sub.get_batch(WS_BATCH) if batched else sub.get())
                done, _ = await asyncio.wait({get, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    get.cancel()
                    break
                try:
                    got = get.result()
                except Overflow:
                    await ws.close(code=4000, message=b"too slow: reconnect and reload")
                    break
                if batched:
                    await ws.send_json({"type": "batch", "events": [e.to_json() for e in got]})
                else:
                    await ws.send_json(got.to_json())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            reader.cancel()
    return ws


async def _ws_reader(ws: web.WebSocketResponse, hub: Hub) -> None:
    """Commands over the socket: {"type": "set", "id": ..., "state": {...}, "request_id": ...}."""
    commands: set[asyncio.Task[None]] = set()  # referenced until done; cancelled with the socket
    try:
        await _ws_read(ws, hub, commands)
    finally:
        for task in commands:
            task.cancel()


async def _ws_read(ws: web.WebSocketResponse, hub: Hub, commands: set[asyncio.Task[None]]) -> None:
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        try:
            data = json.loads(msg.data)
            if not isinstance(data, dict) or data.get("type") != "set":
                raise ValueError("expected {type: set, id, state}")
        except ValueError as e:
            await ws.send_json({"type": "result", "status": 422, "error": str(e)})
            continue
        task = asyncio.get_running_loop().create_task(_ws_set(ws, hub, data))
        commands.add(task)
        task.add_done_callback(commands.discard)


async def _ws_set(ws: web.WebSocketResponse, hub: Hub, data: dict[str, Any]) -> None:
    result: dict[str, Any] = {"type": "result", "request_id": data.get("request_id"), "id": data.get("id")}
    try:
        result.update(status=200, state=await hub.set_state(str(data.get("id")), data.get("state")))
    except Exception as e:
        status, fields = error_status(e)
        result.update(status=status, error=str(e) if status != 500 else "internal error", **fields)
    if not ws.closed:
        await ws.send_json(result)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi(request.app[HUB]))


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


_HTTP_ERRORS: dict[int, type[web.HTTPException]] = {
    404: web.HTTPNotFound, 409: web.HTTPConflict, 422: web.HTTPUnprocessableEntity,
    503: web.HTTPServiceUnavailable, 504: web.HTTPGatewayTimeout,
}


def media_player(hub: Hub):
    """The media service's `play`: send the signed URL to the projector's player, then play."""

    async def play(device_id: str, url: str) -> dict[str, Any]:
        values: dict[str, Any] = {"media_url": url, "media_command": "play"}
        dev = hub.registry.get(device_id)
        if dev is not None and dev.info.expose("power") and dev.state.values.get("power") is False:
            values = {"power": True, **values}  # a film on a projector that is off: switch it on too
        try:
            return await hub.set_state(device_id, values)
        except Exception as e:
            status, fields = error_status(e)
            if status == 500:
                raise
            if status == 404 or fields.get("field") in ("media_url", "media_command"):
                fields = {"field": "device", "rule": "must be a projector with a media player"}
                status = 422 if status != 404 else 404
            raise _HTTP_ERRORS[status](text=json.dumps({"error": str(e), **fields}),
                                       content_type="application/json") from None

    return play


def make_app(hub: Hub, *, watch_cloud: bool = True) -> web.Application:
    """The web application; the hub is started and stopped by whoever runs it."""
    app = web.Application(middlewares=[auth_middleware], client_max_size=1024 * 1024)
    app[HUB] = hub
    app[TOKENS] = TokenChecker(hub.store)
    media = MediaService(hub.store, hub.config.data_dir, play=media_player(hub), watch=watch_cloud,
                         on_progress=lambda progress: hub.bus.publish("sync_progress", **progress))
    add_media_routes(app, media)

    async def services_ctx(app: web.Application):
        await app[TOKENS].start()
        await media.start()
        yield
        await media.stop()

    app.cleanup_ctx.append(services_ctx)
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/devices", list_devices)
    app.router.add_get("/api/devices/{id}", get_device)
    app.router.add_patch("/api/devices/{id}", patch_device)
    app.router.add_post("/api/devices/{id}/set", set_device)
    app.router.add_get("/api/ws", websocket)
    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC)
    return app
