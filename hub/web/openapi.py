"""OpenAPI 3.1 for the REST API; each device's set body is derived from its exposes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import __version__
from ..model import Access

if TYPE_CHECKING:
    from ..core import Hub

ERROR = {"$ref": "#/components/schemas/Error"}


def _responses(*codes: int) -> dict[str, Any]:
    text = {200: "OK", 401: "no or bad token", 404: "unknown device (or scene)", 409: "device offline",
            422: "invalid value (names the field and the rule)", 503: "MQTT broker unreachable",
            504: "the device did not confirm in time"}
    out: dict[str, Any] = {}
    for c in codes:
        out[str(c)] = {"description": text[c]}
        if c != 200:
            out[str(c)]["content"] = {"application/json": {"schema": ERROR}}
    return out


def device_set_schema(exposes) -> dict[str, Any]:
    props = {e.name: {**e.schema(), "description": e.label or e.name} for e in exposes if e.access & Access.SET}
    return {"type": "object", "properties": props, "additionalProperties": False, "minProperties": 1}


def openapi(hub: "Hub") -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string"}, "field": {"type": "string"}, "rule": {"type": "string"}}},
        "Expose": {"type": "object", "required": ["type", "name", "access"], "properties": {
            "type": {"enum": ["binary", "numeric", "enum", "action", "text", "color"]},
            "name": {"type": "string"}, "label": {"type": "string"},
            "access": {"type": "integer", "description": "bitmask: 1 state, 2 set, 4 get"},
            "category": {"enum": ["config", "diagnostic"],
                         "description": "absent: a household control or reading; else plumbing a UI hides"}}},
        "Device": {"type": "object", "required": ["id", "name", "driver", "online", "exposes", "state"],
                   "properties": {
                       "id": {"type": "string"}, "name": {"type": "string"}, "driver": {"type": "string"},
                       "model": {"type": "string"}, "room": {"type": "string"}, "online": {"type": "boolean"},
                       "exposes": {"type": "array", "items": {"$ref": "#/components/schemas/Expose"}},
                       "state": {"type": "object"}, "error": {"type": "string"},
                       "last_seen": {"type": ["number", "null"], "description": "epoch seconds"},
                       "inbox": {"type": "boolean", "description": "new, waiting for the household"},
                       "ignored": {"type": "boolean"}}},
        "History": {"type": "object", "required": ["device", "property", "unit", "points"], "properties": {
            "device": {"type": "string"}, "property": {"type": "string"}, "unit": {"type": ["string", "null"]},
            "points": {"type": "array", "description": "[epoch seconds, value], oldest first",
                       "items": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}]}}}},
        "Scene": {"type": "object", "required": ["id", "name", "states", "play"], "properties": {
            "id": {"type": "string", "description": "slug of the name, unique, stable across renames"},
            "name": {"type": "string"},
            "states": {"type": "object", "description": "device id -> partial state",
                       "additionalProperties": {"type": "object"}},
            "play": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/ScenePlay"}]}}},
        "ScenePlay": {"type": "object", "required": ["media", "device"], "additionalProperties": False,
                      "properties": {"media": {"type": "integer", "description": "media library id"},
                                     "device": {"type": "string", "description": "projector id"}}},
        "SceneBody": {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 80},
            "states": {"type": "object", "additionalProperties": {"type": "object"}},
            "play": {"$ref": "#/components/schemas/ScenePlay"},
            "from_devices": {"type": "array", "items": {"type": "string"},
                             "description": "capture these devices' current settable state instead of states"}}},
        "SceneResult": {"type": "object", "required": ["scene", "results"], "properties": {
            "scene": {"type": "string"},
            "results": {"type": "object", "additionalProperties": {"type": "object", "required": ["status"], "properties": {
                "status": {"enum": ["confirmed", "not_confirmed", "offline", "error"]},
                "state": {"type": "object"}, "error": {"type": "string"}}}}}},
        "Health": {"type": "object", "properties": {"status": {"const": "ok"},
                                                     "mqtt": {"enum": ["connected", "disconnected"]}}},
    }
    set_bodies = []
    for dev in hub.registry.devices.values():
        name = f"Set_{dev.id}"
        schemas[name] = {**device_set_schema(dev.info.exposes), "title": f"set {dev.name}"}
        set_bodies.append({"$ref": f"#/components/schemas/{name}"})
    device_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    scene_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}

    def body(ref: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}

    def ok(ref: str, status: str = "200", many: bool = False) -> dict[str, Any]:
        schema: dict[str, Any] = {"$ref": f"#/components/schemas/{ref}"}
        return {status: {"description": "OK", "content": {"application/json": {
            "schema": {"type": "array", "items": schema} if many else schema}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "hub", "version": __version__,
                 "description": "Local-first hub API. Authenticate with `Authorization: Bearer <token>`."},
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/api/health": {"get": {"summary": "liveness; no auth", "security": [],
                                    "responses": {"200": {"description": "OK", "content": {
                                        "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}}},
            "/api/devices": {"get": {"summary": "every device, with exposes and state", "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {
                    "type": "array", "items": {"$ref": "#/components/schemas/Device"}}}}},
                **_responses(401)}}},
            "/api/devices/{id}": {
                "get": {"summary": "one device", "parameters": [device_id], "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/Device"}}}}, **_responses(401, 404)}},
                "patch": {"summary": "rename, move to a room, accept (out of the inbox) or ignore a device", "parameters": [device_id],
                          "requestBody": {"content": {"application/json": {"schema": {
                              "type": "object", "additionalProperties": False,
                              "properties": {"name": {"type": "string"}, "room": {"type": "string"},
                                             "ignored": {"type": "boolean"}, "inbox": {"const": False}}}}}},
                          "responses": _responses(200, 401, 404, 422)},
                "delete": {"summary": "forget a device (found anew if it comes back)", "parameters": [device_id],
                           "responses": {"204": {"description": "forgotten"}, **_responses(401, 404)}}},
            "/api/devices/{id}/set": {"post": {
                "summary": "change a device; answers with the state the device confirmed",
                "parameters": [device_id],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "oneOf": set_bodies} if set_bodies else {"type": "object"}}}},
                "responses": _responses(200, 401, 404, 409, 422, 503, 504)}},
            "/api/devices/{id}/history": {"get": {
                "summary": "recorded values of one numeric property (for charts)",
                "parameters": [device_id,
                               {"name": "property", "in": "query", "required": True, "schema": {"type": "string"}},
                               {"name": "since", "in": "query", "schema": {"type": "number"},
                                "description": "epoch seconds; default 24 h ago"}],
                "responses": {**ok("History"), **_responses(401, 404, 422)}}},
            "/api/scenes": {
                "get": {"summary": "every scene", "responses": {**ok("Scene", many=True), **_responses(401)}},
                "post": {"summary": "save a scene (from states, or captured from_devices); runs nothing",
                         "requestBody": body("SceneBody"),
                         "responses": {**ok("Scene", "201"), **_responses(401, 422)}}},
            "/api/scenes/{id}": {
                "get": {"summary": "one scene", "parameters": [scene_id],
                        "responses": {**ok("Scene"), **_responses(401, 404)}},
                "put": {"summary": "replace a scene's name, states and film (the id stays)", "parameters": [scene_id],
                        "requestBody": body("SceneBody"), "responses": {**ok("Scene"), **_responses(401, 404, 422)}},
                "delete": {"summary": "delete a scene", "parameters": [scene_id],
                           "responses": {"204": {"description": "deleted"}, **_responses(401, 404)}}},
            "/api/scenes/{id}/run": {"post": {
                "summary": "run a scene: every device at once, a result per device",
                "parameters": [scene_id], "responses": {**ok("SceneResult"), **_responses(401, 404)}}},
            "/api/ws": {"get": {"summary": "WebSocket of live events (token in ?token=)",
                                "responses": {"101": {"description": "switching protocols"}}}},
        },
    }
