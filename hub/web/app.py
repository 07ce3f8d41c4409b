"""The REST API, the WebSocket of live events and the UI, on aiohttp."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Literal

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..auth import Auth, Principal
from ..bus import Overflow
from ..commands import WS_COMMANDS_IN_FLIGHT, DeviceNotFound, error_status
from ..core import Hub
from ..media import MediaService
from ..media import add_routes as add_media_routes
from . import accounts_api, history_api, scenes_api
from .access import (
    AUTH,
    EDGE,
    PRINCIPAL,
    Edge,
    edge_middleware,
    page,
    public,
    read_body,
)
from .access import websocket as websocket_route
from .openapi import openapi

log = logging.getLogger(__name__)

HUB = web.AppKey("hub", Hub)
STATIC = Path(__file__).parent / "static"
WS_AUTH_TIMEOUT = 10.0  # seconds a WebSocket without a cookie has to send {"type": "auth", "token": ...}
WS_BATCH = 500  # events per WebSocket frame at most, with ?batch=1


def error(status: int, message: str, **fields: Any) -> web.Response:
    return web.json_response({"error": message, **fields}, status=status)


@public
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

    model_config = ConfigDict(extra="forbid", strict=True)  # JSON true/false only: no "0" for False
    name: str | None = Field(None, min_length=1, max_length=80)
    room: str | None = Field(None, max_length=80)
    ignored: bool | None = None
    inbox: Literal[False] | None = None  # only out of the inbox; the hub alone puts a device in

    @field_validator("inbox", mode="before")
    @classmethod
    def _only_false(cls, v: Any) -> Any:
        if v is not None and v is not False:  # Literal[False] alone lets 0 through (0 == False)
            raise ValueError("only false: the hub alone puts a device in the inbox")
        return v


async def patch_device(request: web.Request) -> web.Response:
    dev = _device_or_404(request)
    try:
        patch = DevicePatch.model_validate(await read_body(request))
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "body"
        return error(422, f"{field}: {err['msg']}", field=field, rule=err["msg"])
    try:
        dev = await request.app[HUB].rename_device(dev.id, patch.name, patch.room, ignored=patch.ignored,
                                                   inbox=patch.inbox)
    except DeviceNotFound:  # forgotten meanwhile by another request
        return error(404, f"no device {dev.id!r}")
    return web.json_response(dev.to_json())


async def delete_device(request: web.Request) -> web.Response:
    """Forget a device: 204; it is found anew if it comes back."""
    dev = _device_or_404(request)
    try:
        await request.app[HUB].forget_device(dev.id)
    except DeviceNotFound:  # forgotten meanwhile by another request
        return error(404, f"no device {dev.id!r}")
    return web.Response(status=204)


async def set_device(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    device_id = request.match_info["id"]
    body = await read_body(request)
    try:
        state = await hub.set_state(device_id, body)
    except Exception as e:
        status, fields = error_status(e)
        if status == 500:
            log.exception("set %s failed", device_id)
            return error(500, "internal error")
        return error(status, str(e) if status != 404 else f"no device {device_id!r}", **fields)
    return web.json_response({"id": device_id, "state": state})


@websocket_route
async def websocket(request: web.Request) -> web.StreamResponse:
    """Live events: a snapshot of every device first, then each change as it happens.

    Browsers authenticate with the session cookie; other clients with a bearer header or a
    first message {"type": "auth", "token": "hub_..."} (never a token in the URL: URLs end up
    in logs and browser history). With `?batch=1` the events that piled up since the last send
    go as one frame, `{"type": "batch", "events": [...]}`: a thousand devices coming online is
    a few frames, not thousands, and a browser keeps up instead of being cut off as too slow.
    """
    hub = request.app[HUB]
    if "token" in request.query:
        return error(400, "tokens in URLs are refused: send {\"type\": \"auth\", \"token\": ...} "
                          "as the first message", field="token")
    batched = request.query.get("batch") == "1"
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    who: Principal | None = request[PRINCIPAL]
    if who is None:
        who = await _ws_authenticate(ws, request.app[AUTH])
        if who is None:
            await ws.close(code=4401, message=b"authentication required")
            return ws
        await ws.send_json({"type": "auth", "status": "ok", "user": who.user.name, "scope": who.scope})
    with hub.bus.subscribe(maxsize=2000) as sub:
        devices = [d.to_json() for d in hub.registry.devices.values()]
        await ws.send_json({"type": "snapshot", "devices": devices, "health": hub.health()})
        reader = asyncio.get_running_loop().create_task(_ws_reader(ws, hub, who))
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


async def _ws_authenticate(ws: web.WebSocketResponse, auth: Auth) -> Principal | None:
    try:
        msg = await ws.receive(timeout=WS_AUTH_TIMEOUT)
    except asyncio.TimeoutError:
        return None
    if msg.type != WSMsgType.TEXT:
        return None
    try:
        data = json.loads(msg.data)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "auth" or not isinstance(data.get("token"), str):
        return None
    return await auth.token(data["token"])


async def _ws_reader(ws: web.WebSocketResponse, hub: Hub, who: Principal) -> None:
    """Commands over the socket: {"type": "set", "id": ..., "state": {...}, "request_id": ...}."""
    commands: set[asyncio.Task[None]] = set()  # referenced until done; cancelled with the socket
    try:
        await _ws_read(ws, hub, commands, who)
    finally:
        for task in commands:
            task.cancel()


async def _ws_read(ws: web.WebSocketResponse, hub: Hub, commands: set[asyncio.Task[None]],
                   who: Principal) -> None:
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
        if not who.can_write:
            await ws.send_json({"type": "result", "request_id": data.get("request_id"), "status": 403,
                                "error": "this token is read-only", "field": "scope"})
            continue
        if len(commands) >= WS_COMMANDS_IN_FLIGHT:
            await ws.send_json({"type": "result", "status": 429, "request_id": data.get("request_id"),
                                "id": data.get("id"), "error": f"too many commands in flight on this "
                                f"connection ({WS_COMMANDS_IN_FLIGHT}); wait for their results"})
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


@page
async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@public
async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)


def make_app(hub: Hub, media: MediaService) -> web.Application:
    """The web application; the hub and its media service are started and stopped by whoever runs it."""
    app = web.Application(middlewares=[edge_middleware], client_max_size=1024 * 1024)
    app[HUB] = hub
    app[AUTH] = Auth(hub.store)
    app[EDGE] = Edge(hub.config.http.allowed_hosts, hub.config.http.trusted_proxies)
    add_media_routes(app, media)
    history_api.add_routes(app, hub)
    scenes_api.add_routes(app, hub, media)

    async def services_ctx(app: web.Application):
        await app[AUTH].start()
        yield
        await app[AUTH].stop()

    app.cleanup_ctx.append(services_ctx)
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/devices", list_devices)
    app.router.add_get("/api/devices/{id}", get_device)
    app.router.add_patch("/api/devices/{id}", patch_device)
    app.router.add_delete("/api/devices/{id}", delete_device)
    app.router.add_post("/api/devices/{id}/set", set_device)
    app.router.add_get("/api/ws", websocket)
    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_get("/", index)
    app.router.add_get("/favicon.ico", favicon)
    accounts_api.add_routes(app)
    app.router.add_static("/static/", STATIC)
    return app
