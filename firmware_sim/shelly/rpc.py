"""JSON-RPC frames in, frames out: the channel-independent part of a Shelly Gen2 device.

Shelly docs, General/RPCProtocol: a request is `{"id", "src", "method", "params"?, "auth"?}`; a
response echoes `id`, names the device in `src` and the caller in `dst`, and holds either
`result` or `error`; a notification has no `id`. General/RPCChannels: `GET /rpc/<Method>?k=v`
takes scalar values where `true`/`false`/numbers (and JSON objects) are parsed, anything else
is a string. Frames the docs don't cover (not JSON, not an object, no method) are answered as
JSON-RPC 2.0 §5.1 would: -32700 parse error / -32600 invalid request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .components import RpcError
from .device import UNAUTHORIZED, ShellyDevice

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
NO_AUTH_METHODS = frozenset({"Shelly.GetDeviceInfo"})  # docs, General/Authentication
MAX_FRAME = 64 * 1024


@dataclass(frozen=True)
class Request:
    """One parsed request frame."""

    id: Any
    src: str | None
    method: str
    params: Any
    auth: Any


def parse_frame(data: bytes | str) -> Request | dict[str, Any]:
    """A Request, or the error frame to send back for a frame that is not one."""
    if len(data) > MAX_FRAME:
        return error_frame(None, None, None, RpcError(INVALID_REQUEST, "Frame too large"))
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return error_frame(None, None, None, RpcError(PARSE_ERROR, "Parse error"))
    if not isinstance(obj, dict):
        return error_frame(None, None, None, RpcError(INVALID_REQUEST, "Invalid request: not an object"))
    frame_id, src = obj.get("id"), obj.get("src")
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        return error_frame(frame_id, None, src if isinstance(src, str) else None,
                           RpcError(INVALID_REQUEST, "Invalid request: missing 'method'"))
    return Request(frame_id, src if isinstance(src, str) else None, method, obj.get("params"), obj.get("auth"))


def error_frame(frame_id: Any, device_id: str | None, dst: str | None, err: RpcError) -> dict[str, Any]:
    out: dict[str, Any] = {"id": frame_id, "src": device_id}
    if dst:
        out["dst"] = dst
    out["error"] = err.as_dict()
    return out


def result_frame(frame_id: Any, device_id: str, dst: str | None, result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": frame_id, "src": device_id}
    if dst:
        out["dst"] = dst
    out["result"] = result
    return out


def notification(device_id: str, dst: str | None, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """`NotifyStatus`/`NotifyFullStatus`/`NotifyEvent` frame (docs, Notifications)."""
    out: dict[str, Any] = {"src": device_id}
    if dst:
        out["dst"] = dst
    out.update(method=method, params=params)
    return out


def auth_challenge(device: ShellyDevice, now: float, stale: bool = False) -> RpcError:
    """401 whose message is the JSON challenge (the WS form aioshelly's AuthData reads)."""
    return RpcError(UNAUTHORIZED, json.dumps(device.guard.challenge_object(now, stale=stale)))


def execute(device: ShellyDevice, request: Request, now: float, *, authenticated: bool = False) -> Any:
    """Run a request, checking its `auth` object unless the channel already authenticated it."""
    if device.guard.enabled and not authenticated and request.method not in NO_AUTH_METHODS:
        verdict = device.guard.verify_object(request.auth, now) if request.auth is not None else "bad"
        if verdict != "ok":
            raise auth_challenge(device, now, stale=verdict == "stale")
    return device.call(request.method, request.params, now)


def answer(device: ShellyDevice, request: Request, now: float, *, authenticated: bool = False) -> dict[str, Any]:
    """The response frame to a request (result or error)."""
    dev_id = device.identity.device_id
    try:
        result = execute(device, request, now, authenticated=authenticated)
    except RpcError as err:
        return error_frame(request.id, dev_id, request.src, err)
    return result_frame(request.id, dev_id, request.src, result)


def query_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query-string pairs -> params (docs, RPCChannels "GET with query string")."""
    out: dict[str, Any] = {}
    for key, raw in pairs:
        out[key] = _query_value(raw)
    return out


def _query_value(raw: str) -> Any:
    if raw in ("true", "false", "null") or raw[:1] in ('{', '[', '"'):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, (int, float)) else raw
