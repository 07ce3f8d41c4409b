"""How the media service reaches the hub's devices: play a URL on a projector's player, and
which library files the players are showing now (those are kept until playback stops)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ..commands import error_status
from ..core import Hub
from .signing import parse_id

PLAYING_STATES = frozenset({"playing", "paused"})  # a paused film is still being watched

_HTTP_ERRORS: dict[int, type[web.HTTPException]] = {
    404: web.HTTPNotFound, 409: web.HTTPConflict, 422: web.HTTPUnprocessableEntity,
    503: web.HTTPServiceUnavailable, 504: web.HTTPGatewayTimeout,
}


def media_id_of(url: object) -> int | None:
    """The library id in a signed media URL (`.../media/file/<id>?...`), else None."""
    if not isinstance(url, str):
        return None
    path = urlsplit(url).path
    head, _, tail = path.rpartition("/")
    return parse_id(tail) if head.endswith("/media/file") else None


def playing_media(hub: Hub) -> Callable[[], set[int]]:
    """The ids of library files some player is playing or has paused, from the devices' state."""

    def playing() -> set[int]:
        out = set()
        for dev in hub.registry.devices.values():
            if not dev.state.online:  # a state remembered from before a restart is no playback
                continue
            values = dev.state.values
            if values.get("media_state") in PLAYING_STATES and (mid := media_id_of(values.get("media_url"))) is not None:
                out.add(mid)
        return out

    return playing


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
