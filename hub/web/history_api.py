"""GET /api/devices/{id}/history: the numeric readings behind the device page's charts."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core import Hub
from ..history import History
from ..model import Numeric

HISTORY = web.AppKey("history", History)
DAY = 86400.0


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    property: str = Field(min_length=1, max_length=200)
    since: float | None = Field(None, ge=0, allow_inf_nan=False, description="epoch seconds; default 24 h ago")


def _unprocessable(field: str, rule: str) -> web.Response:
    return web.json_response({"error": f"{field}: {rule}", "field": field, "rule": rule}, status=422)


async def device_history(request: web.Request) -> web.Response:
    history = request.app[HISTORY]
    device_id = request.match_info["id"]
    dev = history.registry.get(device_id)
    if dev is None:
        return web.json_response({"error": f"no device {device_id!r}"}, status=404)
    try:
        q = HistoryQuery.model_validate(dict(request.query))
    except ValidationError as e:
        err = e.errors()[0]
        return _unprocessable(".".join(str(x) for x in err["loc"]) or "query", err["msg"])
    expose = dev.info.expose(q.property)
    if expose is None:
        numeric = ", ".join(e.name for e in dev.info.exposes if isinstance(e, Numeric))
        return _unprocessable("property", f"unknown property; numeric ones are: {numeric or 'none'}")
    if not isinstance(expose, Numeric):
        return _unprocessable("property", f"{q.property} is not numeric: it has no history")
    since = q.since if q.since is not None else history.clock() - DAY
    points = await history.points(device_id, q.property, since)
    body: dict[str, Any] = {"device": device_id, "property": q.property, "unit": expose.unit or None,
                            "points": points}
    return web.json_response(body)


def add_routes(app: web.Application, hub: Hub) -> None:
    """Record history while the app runs, and serve it."""
    history = History(hub.store, hub.registry, hub.bus, hub.config.history, clock=hub.clock.now)
    app[HISTORY] = history

    async def history_ctx(app: web.Application):
        await history.start()
        yield
        await history.stop()

    app.cleanup_ctx.append(history_ctx)
    app.router.add_get("/api/devices/{id}/history", device_history)
