"""One rule for every route: each declares who may call it; the edge checks Host, Origin and who.

A handler without a declaration needs a signed-in user (session or token): a route added
without thinking is closed, not open. Declarations: `@public` (health, the login and set-up
pages, signed media URLs), `@page` (an HTML page: without a session, redirect to the login
page rather than answer 401), `@owner_only`, `@websocket` (its token may come in the first
message, so the upgrade itself may arrive unauthenticated). Static files are public: they
are the pages' code, the same for everyone, with no household data in them.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..auth import Auth, Principal

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

AUTH = web.AppKey("auth", Auth)
PRINCIPAL = web.RequestKey("principal", "Principal | None")
COOKIE = "hub_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ACCESS_LEVELS = ("public", "page", "user", "owner", "websocket")


def _declare(level: str) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        handler.access = level  # type: ignore[attr-defined]
        return handler
    return mark


public = _declare("public")
page = _declare("page")
owner_only = _declare("owner")
websocket = _declare("websocket")


def access_of(match_info: web.UrlMappingMatchInfo) -> str:
    """The declared access of the route a request matched ('user' unless declared)."""
    route = match_info.route
    if route is not None and isinstance(route.resource, web.StaticResource):
        return "public"
    return getattr(match_info.handler, "access", "user")


def principal(request: web.Request) -> Principal:
    """The caller of a route that needs one (the middleware has checked)."""
    who = request[PRINCIPAL]
    assert who is not None, "a route that needs a caller was declared public"
    return who


def json_error(status: int, message: str, headers: dict[str, str] | None = None, **fields: Any) -> web.Response:
    return web.json_response({"error": message, **fields}, status=status, headers=headers)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


class Edge:
    """What the edge knows of its own names and of the proxies it may trust."""

    def __init__(self, allowed_hosts: Iterable[str] = (), trusted_proxies: Iterable[str] = ()) -> None:
        me = socket.gethostname().lower()
        self.names = {"localhost", me, f"{me}.local", *(h.lower().rstrip(".") for h in allowed_hosts)}
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def host_allowed(self, host: str) -> bool:
        """DNS rebinding sends the attacker's name in Host: accept only ours, or an address
        (a page loaded from an address can't be rebound)."""
        name = host.lower()
        if name.startswith("["):
            name = name[: name.find("]") + 1]
        elif name.count(":") == 1:
            name = name.rsplit(":", 1)[0]
        name = name.rstrip(".")
        if not name:
            return False
        if _is_ip(name) or name in self.names:
            return True
        return any(n.startswith(".") and name.endswith(n) for n in self.names)

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.proxies)

    def client_address(self, request: web.Request) -> str:
        """The socket's peer; a forwarded header only when that peer is a configured proxy."""
        remote = request.remote or ""
        if not self.proxies or not self._trusted(remote):
            return remote
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._trusted(hop):
                return hop if _is_ip(hop) else remote
        return remote

    def secure(self, request: web.Request) -> bool:
        if request.secure:
            return True
        return self._trusted(request.remote or "") and request.headers.get("X-Forwarded-Proto") == "https"


EDGE = web.AppKey("edge", Edge)


def same_origin(request: web.Request) -> bool | None:
    """True/False when the request says where it comes from; None when it says nothing."""
    origin = request.headers.get("Origin")
    if origin is None:
        site = request.headers.get("Sec-Fetch-Site")
        return None if site is None else site in ("same-origin", "none")
    if origin == "null":
        return False
    return origin.split("://", 1)[-1].lower() == request.host.lower()


async def _who(request: web.Request) -> Principal | None:
    auth = request.app[AUTH]
    cookie = request.cookies.get(COOKIE)
    if cookie:
        who = await auth.session(cookie)
        if who is not None:
            return who
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return await auth.token(header[7:].strip())
    return None


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    edge = request.app[EDGE]
    if not edge.host_allowed(request.host):
        return json_error(421, f"this hub does not answer to the name {request.host!r}: "
                               "add it to [http] allowed_hosts", field="Host")
    level = access_of(request.match_info)
    who = await _who(request)
    request[PRINCIPAL] = who
    unsafe = request.method not in SAFE_METHODS
    origin_ok = same_origin(request)
    # a cookie rides along on cross-site requests; a bearer token never does
    if origin_ok is False and (unsafe or level == "websocket") and (COOKIE in request.cookies or level == "public"):
        return json_error(403, "cross-origin request refused", field="Origin")
    if who is not None and who.via == "session" and unsafe and origin_ok is None:
        return json_error(403, "a request with a session cookie must say its Origin", field="Origin")
    if level == "public":
        return await handler(request)
    if who is None:
        if level == "page":
            owner = await request.app[AUTH].owner_exists()
            raise web.HTTPSeeOther("/login" if owner else "/setup")
        if level == "websocket" and request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)  # the token comes in the first message
        return json_error(401, "authentication required", {"WWW-Authenticate": 'Bearer realm="hub"'})
    if unsafe and not who.can_write:
        return json_error(403, "this token is read-only", field="scope")
    if level == "owner" and not who.is_owner:
        return json_error(403, "only an owner may do this", field="role")
    return await handler(request)


def session_cookie(response: web.StreamResponse, request: web.Request, secret: str, max_age: float) -> None:
    response.set_cookie(COOKIE, secret, max_age=int(max_age), path="/", httponly=True, samesite="Strict",
                        secure=request.app[EDGE].secure(request))


def clear_cookie(response: web.StreamResponse, request: web.Request) -> None:
    response.del_cookie(COOKIE, path="/", samesite="Strict", secure=request.app[EDGE].secure(request))


M = TypeVar("M", bound=BaseModel)


def unprocessable(field: str, rule: str, message: str | None = None) -> web.HTTPUnprocessableEntity:
    return web.HTTPUnprocessableEntity(
        text=json.dumps({"error": message or f"{field}: {rule}", "field": field, "rule": rule}),
        content_type="application/json")


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The JSON body as `model`, or a 422 naming the first bad field and its rule."""
    try:
        return model.model_validate(await read_body(request))
    except ValidationError as e:
        err = e.errors()[0]
        raise unprocessable(".".join(str(p) for p in err["loc"]) or "body", err["msg"]) from None


async def read_body(request: web.Request) -> Any:
    """The request's JSON body, or a 422 naming it."""
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise web.HTTPUnprocessableEntity(
            text=json.dumps({"error": f"body is not JSON: {e}", "field": "body", "rule": "must be JSON"}),
            content_type="application/json") from None
