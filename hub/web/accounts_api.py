"""Onboarding, login and logout, the signed-in devices, users (owners) and API tokens."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ..accounts import MAX_PASSWORD, NAME_PATTERN, AccountError, Role, Scope
from ..auth import BadLogin, Throttled
from .access import (AUTH, EDGE, PRINCIPAL, clear_cookie, json_error, owner_only, page, parse_body, principal, public,
                     session_cookie)

STATIC = Path(__file__).parent / "static"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Credentials(_Body):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class NewOwner(_Body):
    name: str = Field(pattern=NAME_PATTERN)
    password: str = Field(min_length=8, max_length=MAX_PASSWORD)


class NewUser(NewOwner):
    role: Role = "member"


class UserPatch(_Body):
    role: Role | None = None
    password: str | None = Field(None, min_length=8, max_length=MAX_PASSWORD)


class PasswordChange(_Body):
    current: str = Field(min_length=1, max_length=MAX_PASSWORD)
    new: str = Field(min_length=8, max_length=MAX_PASSWORD)


class NewToken(_Body):
    name: str = Field(min_length=1, max_length=80)
    scope: Scope = "write"


def _refused(e: AccountError) -> web.Response:
    return json_error(e.status, str(e), field=e.field)


def _client(request: web.Request) -> tuple[str, str]:
    return request.headers.get("User-Agent", "")[:300], request.app[EDGE].client_address(request)


def _signed_in(request: web.Request, user, secret: str, status: int = 200) -> web.Response:
    response = web.json_response({"user": user.to_json()}, status=status)
    session_cookie(response, request, secret, request.app[AUTH].session_ttl)
    return response


@public
async def auth_state(request: web.Request) -> web.Response:
    """What the login and set-up pages need: is there an owner yet, and who am I."""
    who = request[PRINCIPAL]
    return web.json_response({
        "owner_exists": await request.app[AUTH].owner_exists(),
        "user": who.user.to_json() if who else None,
        "via": who.via if who else None,
        "scope": who.scope if who else None,
    })


@public
async def onboarding(request: web.Request) -> web.Response:
    body = await parse_body(request, NewOwner)
    agent, address = _client(request)
    try:
        user, secret = await request.app[AUTH].onboard(body.name, body.password, user_agent=agent, address=address)
    except AccountError as e:
        return _refused(e)
    return _signed_in(request, user, secret, 201)


@public
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, Credentials)
    agent, address = _client(request)
    try:
        user, secret = await request.app[AUTH].login(body.name, body.password, user_agent=agent, address=address)
    except Throttled as e:
        return json_error(429, str(e), {"Retry-After": str(e.retry_after)}, retry_after=e.retry_after)
    except BadLogin as e:
        return json_error(401, str(e), field="password")
    return _signed_in(request, user, secret)


async def logout(request: web.Request) -> web.Response:
    await request.app[AUTH].logout(principal(request))
    response = web.Response(status=204)
    clear_cookie(response, request)
    return response


async def change_password(request: web.Request) -> web.Response:
    body = await parse_body(request, PasswordChange)
    try:
        await request.app[AUTH].change_password(principal(request), body.current, body.new)
    except AccountError as e:
        return _refused(e)
    return web.Response(status=204)


async def list_sessions(request: web.Request) -> web.Response:
    return web.json_response(await request.app[AUTH].sessions_of(principal(request)))


async def revoke_session(request: web.Request) -> web.Response:
    if not await request.app[AUTH].revoke_session(principal(request), request.match_info["id"]):
        return json_error(404, "no such session of yours", field="id")
    return web.Response(status=204)


# -- users (owners only) ---------------------------------------------------------------

@owner_only
async def list_users(request: web.Request) -> web.Response:
    return web.json_response([u.to_json() for u in await request.app[AUTH].users()])


@owner_only
async def add_user(request: web.Request) -> web.Response:
    body = await parse_body(request, NewUser)
    try:
        user = await request.app[AUTH].add_user(body.name, body.password, body.role)
    except AccountError as e:
        return _refused(e)
    return web.json_response(user.to_json(), status=201)


@owner_only
async def patch_user(request: web.Request) -> web.Response:
    body = await parse_body(request, UserPatch)
    auth = request.app[AUTH]
    try:
        user = await auth.user_named(request.match_info["name"])
        if body.role is not None:
            user = await auth.set_role(user.id, body.role)
        if body.password is not None:
            # an owner resetting a password ends every session of that user (but their own current one)
            me = principal(request)
            await auth.set_password(user.id, body.password,
                                    keep=me.credential if me.user.id == user.id and me.via == "session" else None)
    except AccountError as e:
        return _refused(e)
    return web.json_response(user.to_json())


@owner_only
async def delete_user(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    try:
        user = await auth.user_named(request.match_info["name"])
        await auth.delete_user(user.id)
    except AccountError as e:
        return _refused(e)
    return web.Response(status=204)


# -- API tokens ---------------------------------------------------------------------

async def list_tokens(request: web.Request) -> web.Response:
    return web.json_response(await request.app[AUTH].tokens(principal(request)))


async def create_token(request: web.Request) -> web.Response:
    body = await parse_body(request, NewToken)
    try:
        token, row = await request.app[AUTH].create_token(principal(request), body.name, body.scope)
    except AccountError as e:
        return _refused(e)
    return web.json_response({**row, "token": token}, status=201)


async def revoke_token(request: web.Request) -> web.Response:
    if not await request.app[AUTH].revoke_token(principal(request), request.match_info["id"]):
        return json_error(404, "no such token of yours", field="id")
    return web.Response(status=204)


# -- pages ----------------------------------------------------------------------------

def _html(name: str) -> web.FileResponse:
    return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})


@public
async def login_page(request: web.Request) -> web.StreamResponse:
    if not await request.app[AUTH].owner_exists():
        raise web.HTTPSeeOther("/setup")
    return _html("login.html")


@public
async def setup_page(request: web.Request) -> web.StreamResponse:
    if await request.app[AUTH].owner_exists():
        raise web.HTTPSeeOther("/login")
    return _html("login.html")


@page
async def account_page(request: web.Request) -> web.StreamResponse:
    return _html("account.html")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/auth/state", auth_state)
    r.add_post("/api/onboarding", onboarding)
    r.add_post("/api/auth/login", login)
    r.add_post("/api/auth/logout", logout)
    r.add_post("/api/auth/password", change_password)
    r.add_get("/api/auth/sessions", list_sessions)
    r.add_delete("/api/auth/sessions/{id}", revoke_session)
    r.add_get("/api/users", list_users)
    r.add_post("/api/users", add_user)
    r.add_patch("/api/users/{name}", patch_user)
    r.add_delete("/api/users/{name}", delete_user)
    r.add_get("/api/tokens", list_tokens)
    r.add_post("/api/tokens", create_token)
    r.add_delete("/api/tokens/{id}", revoke_token)
    r.add_get("/login", login_page)
    r.add_get("/setup", setup_page)
    r.add_get("/account", account_page)
