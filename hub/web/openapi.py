"""OpenAPI 3.1 for the REST API: a table of operations; each device's set body comes from its exposes.

To describe a new route, add one `Op` to OPERATIONS (and its response schema to SCHEMAS when it
is new), e.g. `Op("get", "/api/scenes/{id}", "one scene", ref("Scene"), (404,))`;
tests/test_openapi.py fails while any `/api/` route of the app is missing here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..media.api import LinkBody, PlayBody
from ..model import Access
from .accounts_api import (
    Credentials,
    NewOwner,
    NewToken,
    NewUser,
    PasswordChange,
    UserPatch,
)

if TYPE_CHECKING:
    from ..core import Hub


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: tuple[str, ...] = (), **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": props}


STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
ANY_OBJECT = {"type": "object"}

SCHEMAS: dict[str, Any] = {
    "Error": obj(("error",), error=STR, field=STR, rule=STR),
    "Expose": obj(("type", "name", "access"),
                  type={"enum": ["binary", "numeric", "enum", "action", "text", "color"]},
                  name=STR, label=STR, description=STR, values=array(STR), unit=STR,
                  category={"enum": ["config", "diagnostic"],
                            "description": "absent: a household control or reading; else plumbing a UI hides"},
                  value_min=NUM, value_max=NUM, value_step=NUM, integer=BOOL, max_length=INT,
                  access={"type": "integer", "minimum": 0, "maximum": 7,
                          "description": "bitmask: 1 state, 2 set, 4 get"}),
    "Device": obj(("id", "name", "driver", "model", "manufacturer", "room", "online", "exposes", "state"),
                  id=STR, name=STR, driver=STR, model=STR, manufacturer=STR, room=STR, online=BOOL,
                  exposes=array(ref("Expose")), state=ANY_OBJECT, error=STR, last_seen=nullable(NUM),
                  inbox={"type": "boolean", "description": "new, waiting for the household"}, ignored=BOOL),
    "History": obj(("device", "property", "unit", "points"), device=STR, property=STR, unit=nullable(STR),
                   points={"type": "array", "description": "[epoch seconds, value], oldest first",
                           "items": {"type": "array", "items": NUM, "minItems": 2, "maxItems": 2}}),
    "Scene": obj(("id", "name", "states", "play"),
                 id={"type": "string", "description": "slug of the name, unique, stable across renames"},
                 name=STR, states={"type": "object", "description": "device id -> partial state",
                                   "additionalProperties": ANY_OBJECT},
                 play=nullable(ref("ScenePlay"))),
    "ScenePlay": {**obj(("media", "device"),
                        media={"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "description": "media id"},
                        device={"type": "string", "minLength": 1, "maxLength": 200, "description": "projector id"}),
                  "additionalProperties": False},
    "SceneBody": {**obj(("name",), name={"type": "string", "minLength": 1, "maxLength": 80},
                        states=nullable({"type": "object", "maxProperties": 500, "additionalProperties": ANY_OBJECT}),
                        play=nullable(ref("ScenePlay")),
                        from_devices=nullable({"type": "array", "items": STR, "minItems": 1, "maxItems": 500,
                                               "description": "capture these devices' current settable state"})),
                  "additionalProperties": False},
    "SceneResult": obj(("scene", "results"), scene=STR, results={"type": "object", "additionalProperties": obj(
        ("status",), status={"enum": ["confirmed", "not_confirmed", "offline", "error"]},
        state=ANY_OBJECT, error=STR)}),
    "User": obj(("id", "name", "role", "created"), id=INT, name=STR, role={"enum": ["owner", "member"]},
                created=NUM),
    "SignedIn": obj(("user",), user=ref("User")),
    "AuthState": obj(("owner_exists", "user", "via", "scope"), owner_exists=BOOL, user=nullable(ref("User")),
                     via=nullable({"enum": ["session", "token"]}), scope=nullable({"enum": ["write", "read"]})),
    "Session": obj(("id", "created", "last_seen", "expires", "device", "address", "current"), id=STR,
                   created=NUM, last_seen=NUM, expires=NUM, device=STR, address=STR, current=BOOL),
    "Token": obj(("id", "name", "scope", "created", "last_used", "user"), id=STR, name=STR,
                 scope={"enum": ["write", "read"]}, created=NUM, last_used=nullable(NUM), user=STR),
    "NewToken": {"allOf": [ref("Token"), obj(("token",), token={"type": "string", "description": "shown once"})]},
    "SetResult": obj(("id", "state"), id=STR, state={"type": "object", "description": "the confirmed state"}),
    "Health": obj(("status", "version", "mqtt", "devices", "online", "drivers"),
                  status={"const": "ok"}, version=STR, mqtt={"enum": ["connected", "disconnected"]},
                  devices=INT, online=INT, drivers=array(STR), mqtt_received=INT, uptime_s=NUM),
    "Media": obj(("id", "path", "name", "size", "kind", "content_hash", "synced_at"),
                 id=INT, path=STR, name=STR, size=INT, kind=nullable(STR), media_type=nullable(STR),
                 width=nullable(INT), height=nullable(INT), duration_ms=nullable(INT),
                 content_hash=STR, rev=nullable(STR), server_modified=nullable(STR), synced_at=NUM),
    "MediaPage": obj(("items", "total", "limit", "offset"),
                     items=array(ref("Media")), total=INT, limit=INT, offset=INT),
    "SyncStatus": obj(("linked", "cloud", "running", "phase"),
                      linked=BOOL, cloud=nullable(STR), running=BOOL, phase=STR,
                      progress=nullable(ANY_OBJECT), last_report=nullable(ANY_OBJECT),
                      last_error=nullable(STR), counters=nullable(ANY_OBJECT), retries=INT),
    "SyncStarted": {"allOf": [ref("SyncStatus"), obj(("started",), started=BOOL, reason=STR)]},
    "LinkState": obj(("state",), state={"enum": ["idle", "starting", "waiting", "linked", "failed"]},
                     cloud=STR, user_code=STR, verification_uri=STR, verification_uri_complete=nullable(STR),
                     expires_at=NUM, error=STR),
    "Cloud": obj(("linked", "cloud", "link"), linked=BOOL, cloud=nullable(STR), link=ref("LinkState")),
    "Unlinked": obj(("linked", "was_linked"), linked={"const": False}, was_linked=BOOL),
    "Played": obj(("media", "device", "url", "result"), media=INT, device=STR, url=STR,
                  result={"type": "object", "description": "the projector's confirmed state"}),
    "OpenAPI": obj(("openapi", "info", "paths"), openapi=STR, info=ANY_OBJECT, paths=ANY_OBJECT),
}

ERRORS = {
    400: "not a WebSocket upgrade", 401: "no or bad credentials", 404: "no such resource",
    403: "not allowed: a read-only token, a member doing an owner's work, or a wrong current password",
    429: "too many failed logins: wait Retry-After seconds",
    409: "conflict: the device is offline or can't do it in its current state (a projector in standby; "
         "names the field and the rule), or the hub is not linked to a cloud",
    422: "invalid input (names the field and the rule)", 502: "the cloud did not answer",
    503: "MQTT broker unreachable, or the device could not be reached (it is marked offline)",
    504: "the device did not confirm in time (the command may still apply later)",
}

DEVICE_PATCH = {"type": "object", "additionalProperties": False, "properties": {  # null or absent: unchanged
    "name": {**nullable({"type": "string", "minLength": 1, "maxLength": 80}), "description": "null: unchanged"},
    "room": {**nullable({"type": "string", "maxLength": 80}), "description": "null: unchanged; \"\": the driver's"},
    "ignored": {**nullable(BOOL), "description": "true: out of Home and the inbox, across restarts"},
    "inbox": {**nullable({"const": False}), "description": "false: accept the device as it is"}}}
PLAY = PlayBody.model_json_schema()  # the same models the handlers validate with
LINK = LinkBody.model_json_schema()
DEVICE_ID = {"type": "string"}  # a device's id: the document lists today's as examples
MEDIA_ID = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}  # hub.media.signing.parse_id: 1-18 digits
MEDIA_QUERY = (
    ("kind", {"type": "string", "maxLength": 40}), ("q", {"type": "string", "maxLength": 200}),
    ("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
    ("offset", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0}),
)


@dataclass(frozen=True)
class Op:
    """One operation: what it answers on success, which errors it may give, what it takes."""

    method: str
    path: str
    summary: str
    ok: dict[str, Any] | None  # the success body's schema
    errors: tuple[int, ...] = ()
    status: int = 200
    body: dict[str, Any] | str | None = None  # a schema, or the name of a dynamic one
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    required: tuple[str, ...] = ()  # query parameters that must be given
    public: bool = False  # no credentials needed (else 401 is added)
    also: tuple[tuple[int, dict[str, Any]], ...] = ()  # other successes: (status, schema)
    links: tuple[tuple[str, str, str], ...] = ()  # (name, operationId, id expression) from the success body
    id: dict[str, Any] = field(default_factory=lambda: dict(STR))  # the schema of `{id}` in the path
    content: str = "application/json"  # the success body's media type

    @property
    def operation_id(self) -> str:
        """`get_api_devices_id` for GET /api/devices/{id}: stable, so links and clients can name it."""
        words = self.path.strip("/").replace("{", "").replace("}", "").replace(".", "_").split("/")
        return "_".join((self.method, *words))


OPERATIONS: tuple[Op, ...] = (
    Op("get", "/api/health", "liveness and what the hub runs", ref("Health"), public=True),
    Op("get", "/api/openapi.json", "this document", ref("OpenAPI")),
    Op("get", "/api/devices", "every device, with exposes and state", array(ref("Device")),
       links=(("device", "get_api_devices_id", "$response.body#/0/id"),)),
    Op("get", "/api/devices/{id}", "one device", ref("Device"), (404,), id=DEVICE_ID),
    Op("patch", "/api/devices/{id}", "rename a device or move it to a room", ref("Device"), (404, 422),
       body=DEVICE_PATCH, id=DEVICE_ID),
    Op("delete", "/api/devices/{id}", "forget a device (found anew if it comes back)", None, (404,), status=204,
       id=DEVICE_ID),
    Op("post", "/api/devices/{id}/set", "change a device; answers with the state the device confirmed "
       "(each device's own body is under /api/devices/<its id>/set)",
       ref("SetResult"), (404, 409, 422, 503, 504), body="DeviceSet"),  # no id examples: see each device's path
    Op("get", "/api/devices/{id}/history", "recorded values of one numeric property (for charts)", ref("History"),
       (404, 422), id=DEVICE_ID, query=(("property", {"type": "string", "minLength": 1, "maxLength": 200}),
                                        ("since", {"type": "number", "minimum": 0, "description": "epoch seconds; default 24 h ago"})),
       required=("property",)),
    Op("get", "/api/ws", "WebSocket of live events (the session cookie, a bearer header, or a first "
       "{\"type\": \"auth\", \"token\"} message)", None, (400,), status=101),
    Op("get", "/api/scenes", "every scene", array(ref("Scene"))),
    Op("post", "/api/scenes", "save a scene (from states, or captured from_devices); runs nothing", ref("Scene"),
       (422,), status=201, body=ref("SceneBody")),
    Op("get", "/api/scenes/{id}", "one scene", ref("Scene"), (404,)),
    Op("put", "/api/scenes/{id}", "replace a scene's name, states and film (the id stays)", ref("Scene"),
       (404, 422), body=ref("SceneBody")),
    Op("delete", "/api/scenes/{id}", "delete a scene", None, (404,), status=204),
    Op("post", "/api/scenes/{id}/run", "run a scene: every device at once, a result per device",
       ref("SceneResult"), (404,)),
    Op("get", "/api/auth/state", "is there an owner yet, and who is asking", ref("AuthState"), public=True),
    Op("post", "/api/onboarding", "first run: create the owner and sign in (sets the session cookie)",
       ref("SignedIn"), (403, 409, 422), status=201, body=NewOwner.model_json_schema(), public=True),
    Op("post", "/api/auth/login", "sign in (sets the session cookie)", ref("SignedIn"), (401, 403, 422, 429),
       body=Credentials.model_json_schema(), public=True),
    Op("post", "/api/auth/logout", "end this session", None, status=204),
    Op("post", "/api/auth/password", "change your own password; your other sessions end", None, (403, 422),
       status=204, body=PasswordChange.model_json_schema()),
    Op("get", "/api/auth/sessions", "where you are signed in", array(ref("Session"))),
    Op("delete", "/api/auth/sessions/{id}", "sign one of your sessions out", None, (404,), status=204),
    Op("get", "/api/users", "the household's accounts (owners)", array(ref("User")), (403,)),
    Op("post", "/api/users", "add an account (owners)", ref("User"), (403, 409, 422), status=201,
       body=NewUser.model_json_schema()),
    Op("patch", "/api/users/{name}", "change a user's role or password (owners)", ref("User"), (403, 404, 409, 422),
       body=UserPatch.model_json_schema()),
    Op("delete", "/api/users/{name}", "remove an account with its sessions and tokens (owners)", None,
       (403, 404, 409), status=204),
    Op("get", "/api/tokens", "your API tokens (an owner: everyone's)", array(ref("Token"))),
    Op("post", "/api/tokens", "make an API token (shown once)", ref("NewToken"), (403, 422), status=201,
       body=NewToken.model_json_schema()),
    Op("delete", "/api/tokens/{id}", "revoke an API token", None, (404,), status=204),
    Op("get", "/api/media", "a page of the media library, newest first", ref("MediaPage"), (422,),
       query=MEDIA_QUERY, links=(("play", "post_api_media_id_play", "$response.body#/items/0/id"),)),
    Op("get", "/api/media/sync", "sync progress and the last report", ref("SyncStatus")),
    Op("post", "/api/media/sync", "start a sync pass now", ref("SyncStarted"), (409,),
       also=((202, ref("SyncStarted")),)),
    Op("post", "/api/media/{id}/play", "play a file on a projector (sends it a signed URL)", ref("Played"),
       (404, 409, 422, 503, 504), body=PLAY, id=MEDIA_ID),
    Op("get", "/api/media/{id}/thumb", "a small JPEG of a film's frame, a picture or a document's first page",
       {"type": "string", "format": "binary"}, (404,), id=MEDIA_ID, content="image/jpeg"),
    Op("get", "/api/cloud", "whether the hub is linked to the operator cloud", ref("Cloud")),
    Op("post", "/api/cloud/link", "start linking (RFC 8628 device code to show the household)",
       ref("LinkState"), (422, 502), status=202, body=LINK),
    Op("delete", "/api/cloud/link", "forget the cloud link (files stay)", ref("Unlinked")),
)


def device_set_schema(exposes) -> dict[str, Any]:
    props = {e.name: {**e.schema(), "description": e.label or e.name} for e in exposes if e.access & Access.SET}
    return {"type": "object", "properties": props, "additionalProperties": False, "minProperties": 1}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _path_params(op: Op, device_ids: list[str]) -> list[dict[str, Any]]:
    if "{name}" in op.path:
        return [{"name": "name", "in": "path", "required": True, "schema": STR}]
    if "{id}" not in op.path:
        return []
    schema = dict(op.id)
    if op.id is DEVICE_ID and device_ids:
        schema["examples"] = device_ids[:5]
    return [{"name": "id", "in": "path", "required": True, "schema": schema}]


def _operation(op: Op, device_ids: list[str]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if op.ok is None:
        responses[str(op.status)] = {"description": "switching protocols" if op.status == 101 else "done"}
    else:
        responses[str(op.status)] = {"description": "OK", "content": {op.content: {"schema": op.ok}}}
    if op.links:
        responses[str(op.status)]["links"] = {
            name: {"operationId": target, "parameters": {"id": expr}} for name, target, expr in op.links}
    for status, schema in op.also:
        responses[str(status)] = {"description": "OK", "content": _json(schema)}
    for code in (*op.errors, *(() if op.public else (401,))):
        if code == 400:
            responses["400"] = {"description": ERRORS[400], "content": {"text/plain": {"schema": STR}}}
        else:
            responses[str(code)] = {"description": ERRORS[code], "content": _json(ref("Error"))}
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "responses": responses}
    params = _path_params(op, device_ids) + [
        {"name": name, "in": "query", "required": name in op.required, "schema": schema} for name, schema in op.query]
    if params:
        out["parameters"] = params
    if op.body is not None:
        schema = ref(op.body) if isinstance(op.body, str) else op.body
        out["requestBody"] = {"required": True, "content": _json(schema)}
    if op.public:
        out["security"] = []
    return out


def openapi(hub: "Hub") -> dict[str, Any]:
    schemas: dict[str, Any] = dict(SCHEMAS)
    set_bodies = []
    for dev in hub.registry.devices.values():
        name = f"Set_{dev.id}"
        schemas[name] = {**device_set_schema(dev.info.exposes), "title": f"set {dev.name}"}
        set_bodies.append(ref(name))
    # anyOf, not oneOf: two devices of one kind have the same body, which oneOf would forbid
    schemas["DeviceSet"] = {"anyOf": set_bodies} if set_bodies else {"type": "object", "minProperties": 1}
    device_ids = sorted(hub.registry.devices)
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, device_ids)
    template = next(op for op in OPERATIONS if op.path == "/api/devices/{id}/set")
    for dev in hub.registry.devices.values():
        # One path per device: its set body is exact there (the template's is only "one of them").
        one = _operation(template, device_ids)
        one.pop("parameters")
        one.update(operationId=f"set_{dev.id}", summary=f"change {dev.name}",
                   requestBody={"required": True, "content": _json(ref(f"Set_{dev.id}"))})
        paths[f"/api/devices/{dev.id}/set"] = {"post": one, "x-instance-of": template.path}
    return {
        "openapi": "3.1.0",
        "info": {"title": "hub", "version": __version__,
                 "description": "Local-first hub API. Authenticate with `Authorization: Bearer <token>`."},
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
