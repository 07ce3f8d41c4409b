"""The asyncio side of a simulated Shelly Gen2 device: HTTP RPC, the `/rpc` WebSocket, mDNS.

Shelly docs, General/RPCChannels: `GET /rpc/<Method>?k=v` and `POST /rpc/<Method>` answer with
the bare result (or error object), `POST /rpc` with a whole frame; `GET /shelly` is never behind
auth. The WebSocket at `/rpc` answers frames and, once a client has sent a request with `src`,
pushes `NotifyStatus` (changed fields only) to it. On the bare-result routes an RPC error is sent
with HTTP 500 (404 for an unknown method) and 401 comes with a `WWW-Authenticate: Digest`
challenge, as devices do. General/mDNS: `_shelly._tcp` and `_http._tcp`, TXT `gen`, `app`, `ver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from typing import Any, Protocol

from aiohttp import WSMsgType, web
from zeroconf.asyncio import AsyncServiceInfo

from firmware_sim.common.net import Advertiser, make_zeroconf

from .components import RpcError
from .device import NO_HANDLER, UNAUTHORIZED, ShellyDevice, delta
from .rpc import NO_AUTH_METHODS, Request, answer, error_frame, execute, notification, parse_frame, query_params

log = logging.getLogger(__name__)

SHELLY_SERVICE = "_shelly._tcp.local."
HTTP_SERVICE = "_http._tcp.local."
MAX_WS_CLIENTS = 8  # bounded: devices allow a handful of persistent channels
MAX_BODY = 64 * 1024


class Clock(Protocol):
    """Simulated time (`firmware_sim.common.clock.SimClock` fits)."""

    def now(self) -> float: ...

    def real_seconds(self, sim_seconds: float) -> float: ...


class _Peer:
    """One WebSocket client; gets notifications once it has named itself with `src`."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.src: str | None = None


class ShellySim:
    """Serves one `ShellyDevice`; `start()` opens the HTTP server, ticker and mDNS, `stop()` closes them."""

    def __init__(self, device: ShellyDevice, clock: Clock, *, host: str = "127.0.0.1", port: int = 0,
                 mdns_interface: str | None = None) -> None:
        self.device = device
        self.clock = clock
        self.host = host
        self.port = port
        self.mdns_interface = mdns_interface
        self.peers: set[_Peer] = set()
        self._stack: contextlib.AsyncExitStack | None = None
        self._snapshot: dict[str, Any] = {}
        self._wake = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            app = web.Application(client_max_size=MAX_BODY)
            app.add_routes([web.get("/shelly", self._shelly), web.get("/rpc", self._rpc_root),
                            web.post("/rpc", self._rpc_root), web.get("/rpc/{method}", self._rpc_method),
                            web.post("/rpc/{method}", self._rpc_method)])
            app.on_response_prepare.append(_one_shot)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = runner.addresses[0][1]  # the real port when 0 asked for any free one
            stack.push_async_callback(self._close_peers)

            self._snapshot = self._component_status()
            ticker = asyncio.create_task(self._tick(), name=f"shelly-tick-{self.device.identity.device_id}")
            stack.push_async_callback(_cancel, ticker)

            if self.mdns_interface is not None:
                aiozc = make_zeroconf(self.mdns_interface)
                stack.push_async_callback(aiozc.async_close)
                advertiser = Advertiser(aiozc)
                await advertiser.register(self.service_infos())
                stack.push_async_callback(advertiser.unregister)  # goodbye (TTL 0) before closing
            log.info("shelly %s (%s) on %s, auth %s", self.device.identity.device_id,
                     self.device.identity.app, self.url, "on" if self.device.guard.enabled else "off")
            self._stack = stack.pop_all()

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> ShellySim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def service_infos(self) -> list[AsyncServiceInfo]:
        """The `_shelly._tcp` and `_http._tcp` records; instance and host named by the device id."""
        ident = self.device.identity
        txt = {"gen": str(ident.gen), "app": ident.app, "ver": ident.ver, "id": ident.device_id}
        addr = socket.inet_aton(self.host)
        return [AsyncServiceInfo(stype, f"{ident.device_id}.{stype}", addresses=[addr], port=self.port,
                                 properties=txt, server=f"{ident.device_id}.local.")
                for stype in (SHELLY_SERVICE, HTTP_SERVICE)]

    async def _close_peers(self) -> None:
        for peer in list(self.peers):
            await peer.ws.close()
        self.peers.clear()

    # -- time and notifications ------------------------------------------------------------------

    def _component_status(self) -> dict[str, Any]:
        now = self.clock.now()
        return {key: comp.status(now) for key, comp in self.device.components.items()}

    async def _tick(self) -> None:
        """Advance simulated time when something is due (a cover arriving, a metering minute)."""
        while True:
            now = self.clock.now()
            due = self.device.next_deadline(now)
            timeout = None if due is None else max(0.0, self.clock.real_seconds(due - now)) + 0.005
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that lands as
            # the event is set (a call during stop()), and the ticker would never end
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self.device.advance(self.clock.now())
            await self._notify_changes()

    async def _notify_changes(self) -> None:
        after = self._component_status()
        changes = delta(self._snapshot, after)
        self._snapshot = after
        if changes:
            params = {"ts": round(self.clock.now(), 2), **changes}
            await self._broadcast("NotifyStatus", params)
        events = self.device.take_events()
        if events:
            await self._broadcast("NotifyEvent", {"ts": round(self.clock.now(), 2), "events": events})

    async def _broadcast(self, method: str, params: dict[str, Any]) -> None:
        for peer in list(self.peers):
            if peer.src is None or peer.ws.closed:
                continue
            frame = notification(self.device.identity.device_id, peer.src, method, params)
            try:
                async with asyncio.timeout(5):  # not wait_for: see _tick
                    await peer.ws.send_str(json.dumps(frame))
            except (ConnectionError, TimeoutError, RuntimeError):
                log.debug("dropping notification to %s", peer.src)

    def _changed(self) -> None:
        """A call may have changed state: the ticker re-reads deadlines and notifies."""
        self._wake.set()

    # -- HTTP ------------------------------------------------------------------------------------

    async def _shelly(self, request: web.Request) -> web.Response:
        return web.json_response(self.device.device_info())

    def _http_auth(self, request: web.Request) -> str:
        """'ok', 'stale' or 'bad' for the request's `Authorization` header (uri must match)."""
        header = request.headers.get("Authorization")
        if not self.device.guard.enabled:
            return "ok"
        return self.device.guard.verify_header(header, request.method, request.raw_path, self.clock.now())

    def _unauthorized(self, stale: bool, body: Any) -> web.Response:
        challenge = self.device.guard.challenge_header(self.clock.now(), stale=stale)
        return web.json_response(body, status=401, headers={"WWW-Authenticate": challenge})

    async def _rpc_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await request.read()
        if method not in NO_AUTH_METHODS:  # challenge first: digest clients probe with an empty body
            verdict = self._http_auth(request)
            if verdict != "ok":
                return self._unauthorized(verdict == "stale", {"code": UNAUTHORIZED, "message": "Unauthorized"})
        if request.method == "POST":
            try:
                params = json.loads(body or b"{}")
            except (ValueError, UnicodeDecodeError):
                return web.json_response(RpcError(-32700, "Parse error").as_dict(), status=400)
        else:
            params = query_params(request.query.items())
        try:
            result = self.device.call(method, params, self.clock.now())
        except RpcError as err:
            return web.json_response(err.as_dict(), status=404 if err.code == NO_HANDLER else 500)
        finally:
            self._changed()
        return web.json_response(result)

    async def _rpc_root(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await self._websocket(request)
            return web.json_response({"code": NO_HANDLER, "message": "No handler for /rpc"}, status=404)
        parsed = parse_frame(await request.read())
        verdict = self._http_auth(request)
        authenticated = verdict == "ok"
        # Digest clients (curl) probe without a body first: challenge before judging the frame.
        if self.device.guard.enabled and not authenticated and (
                not isinstance(parsed, Request) or (parsed.auth is None and parsed.method not in NO_AUTH_METHODS)):
            frame_id, src = (parsed.id, parsed.src) if isinstance(parsed, Request) else (None, None)
            frame = error_frame(frame_id, self.device.identity.device_id, src, RpcError(UNAUTHORIZED, "Unauthorized"))
            return self._unauthorized(verdict == "stale", frame)
        if not isinstance(parsed, Request):
            return web.json_response(parsed, status=400)
        try:
            return web.json_response(answer(self.device, parsed, self.clock.now(), authenticated=authenticated))
        finally:
            self._changed()

    # -- WebSocket -------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if len(self.peers) >= MAX_WS_CLIENTS:
            return web.json_response({"code": -108, "message": "Too many connections"}, status=503)
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        peer = _Peer(ws)
        self.peers.add(peer)
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                reply = self._ws_frame(peer, msg.data)
                if reply is not None:
                    await ws.send_str(json.dumps(reply))
                self._changed()
        finally:
            self.peers.discard(peer)
        return ws

    def _ws_frame(self, peer: _Peer, data: str | bytes) -> dict[str, Any] | None:
        parsed = parse_frame(data)
        if not isinstance(parsed, Request):
            parsed["src"] = self.device.identity.device_id
            return parsed
        if parsed.src:
            peer.src = parsed.src  # docs, Notifications: notify only peers that named themselves
        if parsed.id is None:
            try:  # a notification from the client: run it, answer nothing
                execute(self.device, parsed, self.clock.now())
            except RpcError:
                pass
            return None
        return answer(self.device, parsed, self.clock.now())


async def _one_shot(request: web.Request, response: web.StreamResponse) -> None:
    """HTTP is one-shot on the device: no keep-alive (docs, RPCChannels: `Connection: close`)."""
    if not isinstance(response, web.WebSocketResponse):
        response.force_close()
        response.headers["Connection"] = "close"


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
