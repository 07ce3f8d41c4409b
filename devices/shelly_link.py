"""The I/O side of one Shelly Gen2 device: RPC frames over HTTP (`POST /rpc`, digest by aiohttp's
own DigestAuthMiddleware) and over the `/rpc` WebSocket (answers matched by id, notifications
pushed). Errors leave here already in the driver SDK's terms."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

from hub.driver import DeviceTimeout, DeviceUnreachable

from . import shelly_rpc as rpc

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


class AuthFailed(Exception):
    """The device refused the credentials (or it wants some and none are configured)."""


def _ws_url(base: str) -> str:
    return "ws" + base[4:] + "/rpc"  # http://h:p → ws://h:p/rpc


class HttpRpc:
    """`POST /rpc` with a whole frame: one frame parser for both channels (docs, RPCChannels).
    One DigestAuthMiddleware per device: it keeps the device's nonce and counts nc (RFC 7616 §3.4)."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, src: str, password: str | None,
                 timeout: float) -> None:
        self.http = http
        self.url = base_url + "/rpc"
        self.src = src
        self.timeout = timeout
        self._middlewares = (aiohttp.DigestAuthMiddleware(rpc.USER, password),) if password else ()
        self._next_id = 0

    async def call(self, method: str, params: dict[str, Any] | None = None) -> rpc.Response:
        """One call; raises DeviceUnreachable, DeviceTimeout, AuthFailed, or ValueError for garbage."""
        self._next_id += 1
        frame = rpc.request(self._next_id, self.src, method, params)
        try:
            async with asyncio.timeout(self.timeout):
                async with self.http.post(self.url, json=frame, middlewares=self._middlewares) as r:
                    body = await r.read()
                    status = r.status
        except TimeoutError:
            raise DeviceTimeout(f"{method}: no answer within {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise DeviceUnreachable(f"{method}: {e or type(e).__name__}") from None
        if status == 401:
            raise AuthFailed("the device refused the password" if self._middlewares else "no password configured")
        parsed = rpc.parse_frame(body)
        if not isinstance(parsed, rpc.Response):
            raise ValueError(f"{method}: the answer is not a response frame")
        return parsed


class RpcSocket:
    """The device's `/rpc` WebSocket. The first request names us (`src`), which is what makes the
    device send us notifications (docs, Notifications); once challenged, every frame carries an
    `auth` object (docs, Authentication)."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, src: str, auth: rpc.FrameAuth | None, *,
                 on_notify: Callable[[rpc.Notification], None], on_garbage: Callable[[str], None],
                 on_closed: Callable[[RpcSocket], None], timeout: float, heartbeat: float) -> None:
        self.http = http
        self.url = _ws_url(base_url)
        self.src = src
        self.auth = auth
        self.timeout = timeout
        self.heartbeat = heartbeat
        self._on_notify, self._on_garbage, self._on_closed = on_notify, on_garbage, on_closed
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[int, asyncio.Future[rpc.Response]] = {}
        self._next_id = 0

    @property
    def closed(self) -> bool:
        return self._ws is None or self._ws.closed

    async def open(self, spawn: Spawn) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                self._ws = await self.http.ws_connect(
                    self.url, heartbeat=self.heartbeat, max_msg_size=rpc.MAX_FRAME,
                    timeout=aiohttp.ClientWSTimeout(ws_close=min(self.timeout, 2.0)))
        except TimeoutError:
            raise DeviceUnreachable(f"{self.url}: no WebSocket within {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise DeviceUnreachable(f"{self.url}: {e or type(e).__name__}") from None
        spawn(self._read(self._ws), f"ws-{self.src}")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One request; its result, or RpcError / AuthFailed / DeviceUnreachable / DeviceTimeout.
        A 401 brings a challenge: answer it once (again only if it says `stale`)."""
        for attempt in range(3):
            response = await self._exchange(method, params)
            if response.error is None:
                return response.result
            if response.error.code != rpc.UNAUTHORIZED:
                raise response.error
            if self.auth is None:
                raise AuthFailed("no password configured")
            try:
                challenge = rpc.challenge_of(response.error)
                if attempt > 0 and challenge.get("stale") is not True:
                    raise AuthFailed("the device refused the password")
                self.auth.challenged(challenge)
            except ValueError as e:
                raise AuthFailed(str(e)) from None
        raise AuthFailed("the device keeps calling our nonce stale")

    async def _exchange(self, method: str, params: dict[str, Any] | None) -> rpc.Response:
        ws = self._ws
        if ws is None or ws.closed:
            raise DeviceUnreachable("WebSocket closed")
        self._next_id += 1
        frame_id = self._next_id
        frame = rpc.request(frame_id, self.src, method, params, self.auth.next() if self.auth else None)
        future: asyncio.Future[rpc.Response] = asyncio.get_running_loop().create_future()
        self._pending[frame_id] = future
        try:
            async with asyncio.timeout(self.timeout):
                await ws.send_str(json.dumps(frame))
                return await future
        except TimeoutError:
            raise DeviceTimeout(f"{method}: no answer within {self.timeout:g} s") from None
        except (aiohttp.ClientError, ConnectionError) as e:
            raise DeviceUnreachable(f"{method}: {e or type(e).__name__}") from None
        finally:
            self._pending.pop(frame_id, None)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    continue
                try:
                    frame = rpc.parse_frame(msg.data)
                except ValueError as e:
                    self._on_garbage(f"dropped a frame: {e}")
                    continue
                if isinstance(frame, rpc.Notification):
                    self._on_notify(frame)
                elif isinstance(frame, rpc.Response):
                    future = self._pending.get(frame.id) if isinstance(frame.id, int) else None
                    if future is not None and not future.done():
                        future.set_result(frame)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(DeviceUnreachable("WebSocket closed"))
            if ws is self._ws:
                self._on_closed(self)
