"""OpenAPI 3.1 for the REST API; each device's set body is derived from its exposes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import __version__
from ..model import Access

if TYPE_CHECKING:
    from ..core import Hub

ERROR = {"$ref": "#/components/schemas/Error"}


def _responses(*codes: int) -> dict[str, Any]:
    text = {200: "OK", 401: "no or bad token", 404: "unknown device", 409: "device offline",
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
            "access": {"type": "integer", "description": "bitmask: 1 state, 2 set, 4 get"}}},
        "Device": {"type": "object", "required": ["id", "name", "driver", "online", "exposes", "state"],
                   "properties": {
                       "id": {"type": "string"}, "name": {"type": "string"}, "driver": {"type": "string"},
                       "model": {"type": "string"}, "room": {"type": "string"}, "online": {"type": "boolean"},
                       "exposes": {"type": "array", "items": {"$ref": "#/components/schemas/Expose"}},
                       "state": {"type": "object"}, "error": {"type": "string"}}},
        "Health": {"type": "object", "properties": {"status": {"const": "ok"},
                                                     "mqtt": {"enum": ["connected", "disconnected"]}}},
    }
    set_bodies = []
    for dev in hub.registry.devices.values():
        name = f"Set_{dev.id}"
        schemas[name] = {**device_set_schema(dev.info.exposes), "title": f"set {dev.name}"}
        set_bodies.append({"$ref": f"#/components/schemas/{name}"})
    device_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
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
                "patch": {"summary": "rename a device or move it to a room", "parameters": [device_id],
                          "requestBody": {"content": {"application/json": {"schema": {
                              "type": "object", "additionalProperties": False,
                              "properties": {"name": {"type": "string"}, "room": {"type": "string"}}}}}},
                          "responses": _responses(200, 401, 404, 422)},
                "delete": {"summary": "forget a device (found anew if it comes back)", "parameters": [device_id],
                           "responses": {"204": {"description": "forgotten"}, **_responses(401, 404)}}},
            "/api/devices/{id}/set": {"post": {
                "summary": "change a device; answers with the state the device confirmed",
                "parameters": [device_id],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "oneOf": set_bodies} if set_bodies else {"type": "object"}}}},
                "responses": _responses(200, 401, 404, 409, 422, 503, 504)}},
            "/api/ws": {"get": {"summary": "WebSocket of live events (token in ?token=)",
                                "responses": {"101": {"description": "switching protocols"}}}},
        },
    }
