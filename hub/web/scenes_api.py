"""/api/scenes: save, edit and run scenes; each run answers with a result per device."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core import Hub
from ..media import MediaService
from ..media import library
from ..scenes import InvalidScene, Play, SceneNotFound, Scenes

SCENES = web.AppKey("scenes", Scenes)


class PlayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    media: int = Field(ge=0)
    device: str = Field(min_length=1, max_length=200)


class SceneBody(BaseModel):
    """A scene from explicit states (and a film), or captured from chosen devices as they are now."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=80)
    states: dict[str, dict[str, Any]] | None = Field(None, max_length=500)
    play: PlayBody | None = None
    from_devices: list[str] | None = Field(None, min_length=1, max_length=500)


def _unprocessable(field: str, rule: str, **extra: Any) -> web.Response:
    return web.json_response({"error": f"{field}: {rule}", "field": field, "rule": rule, **extra}, status=422)


def _not_found(scene_id: str) -> web.Response:
    return web.json_response({"error": f"no scene {scene_id!r}"}, status=404)


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def _body(request: web.Request) -> SceneBody | web.Response:
    try:
        raw = await request.json()
    except ValueError:
        return _unprocessable("body", "must be JSON")
    try:
        body = SceneBody.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        return _unprocessable(".".join(str(x) for x in err["loc"]) or "body", err["msg"])
    if body.states is not None and body.from_devices is not None:
        return _unprocessable("from_devices", "give states or from_devices, not both")
    return body


async def _built(request: web.Request, scene_id: str = ""):
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    play = Play(body.play.media, body.play.device) if body.play else None
    try:
        return await request.app[SCENES].build(body.name, body.states, play, body.from_devices, scene_id)
    except InvalidScene as e:
        extra = {"device": e.device} if e.device else {}
        return _unprocessable(e.field, e.rule, **extra)


async def list_scenes(request: web.Request) -> web.Response:
    return web.json_response([s.to_json() for s in request.app[SCENES].list()])


async def create_scene(request: web.Request) -> web.Response:
    scene = await _built(request)
    if isinstance(scene, web.Response):
        return scene
    scene = await request.app[SCENES].create(scene)
    return web.json_response(scene.to_json(), status=201)


async def get_scene(request: web.Request) -> web.Response:
    try:
        return web.json_response(request.app[SCENES].get(request.match_info["id"]).to_json())
    except SceneNotFound:
        return _not_found(request.match_info["id"])


async def put_scene(request: web.Request) -> web.Response:
    scene_id = request.match_info["id"]
    if scene_id not in request.app[SCENES].scenes:
        return _not_found(scene_id)
    scene = await _built(request, scene_id)
    if isinstance(scene, web.Response):
        return scene
    try:
        scene = await request.app[SCENES].replace(scene_id, scene)
    except SceneNotFound:
        return _not_found(scene_id)
    return web.json_response(scene.to_json())


async def delete_scene(request: web.Request) -> web.Response:
    try:
        await request.app[SCENES].delete(request.match_info["id"])
    except SceneNotFound:
        return _not_found(request.match_info["id"])
    return web.Response(status=204)


async def run_scene(request: web.Request) -> web.Response:
    try:
        result = await request.app[SCENES].run(request.match_info["id"], _base_url(request))
    except SceneNotFound:
        return _not_found(request.match_info["id"])
    return web.json_response(result)


def add_routes(app: web.Application, hub: Hub, media: MediaService) -> None:
    """Scenes (REST and MQTT) while the app runs; films come from the media library."""

    async def exists(media_id: int) -> bool:
        return await hub.store.call(lambda db: library.get(db, media_id)) is not None

    def own_url() -> str:
        # runs from MQTT have no request to take the address from: the hub's own listening address
        host = hub.config.http.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '', '::') else host}:{hub.config.http.port}"

    scenes = Scenes(hub, media_url=media.signed_url, media_exists=exists, base_url=lambda: media.public_url or own_url(),
                    clock=hub.clock.now)
    app[SCENES] = scenes

    async def scenes_ctx(app: web.Application):
        await scenes.start()
        yield
        await scenes.stop()

    app.cleanup_ctx.append(scenes_ctx)
    app.router.add_get("/api/scenes", list_scenes)
    app.router.add_post("/api/scenes", create_scene)
    app.router.add_get("/api/scenes/{id}", get_scene)
    app.router.add_put("/api/scenes/{id}", put_scene)
    app.router.add_delete("/api/scenes/{id}", delete_scene)
    app.router.add_post("/api/scenes/{id}/run", run_scene)
