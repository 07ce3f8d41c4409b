"""The canonical MQTT API, as pure functions: topic names, payloads, and parsing of commands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 §4.7 filter matching; `#` and `+` never match a leading `$` level."""
    return levels_match(topic_filter.split("/"), topic.split("/"))


def levels_match(f: Sequence[str], t: Sequence[str]) -> bool:
    """`topic_matches` on filter and topic already split at `/` (split once, match many)."""
    if t and t[0].startswith("$") and f and f[0] in ("#", "+"):
        return False
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t):
            return False
        if level != "+" and level != t[i]:
            return False
    return len(f) == len(t)


@dataclass(frozen=True)
class Topics:
    """Topic names under the base (default `hub`), per DESIGN.md's canonical API."""

    base: str = "hub"

    @property
    def bridge_state(self) -> str:
        return f"{self.base}/bridge/state"

    def state(self, device_id: str) -> str:
        return f"{self.base}/{device_id}"

    def availability(self, device_id: str) -> str:
        return f"{self.base}/{device_id}/availability"

    def set(self, device_id: str) -> str:
        return f"{self.base}/{device_id}/set"

    def set_result(self, device_id: str) -> str:
        return f"{self.base}/{device_id}/set/result"

    def definition(self, device_id: str) -> str:
        return f"{self.base}/bridge/devices/{device_id}"

    @property
    def set_filter(self) -> str:
        return f"{self.base}/+/set"

    def parse_set(self, topic: str) -> str | None:
        """The device id of a `<base>/<id>/set` topic, else None."""
        prefix = self.base + "/"
        if not topic.startswith(prefix) or not topic.endswith("/set"):
            return None
        device_id = topic[len(prefix):-len("/set")]
        if not device_id or "/" in device_id or device_id == "bridge":
            return None
        return device_id

    def scene_set(self, scene_id: str) -> str:
        return f"{self.base}/scene/{scene_id}/set"

    def scene_result(self, scene_id: str) -> str:
        return f"{self.base}/scene/{scene_id}/result"

    @property
    def scene_set_filter(self) -> str:
        return f"{self.base}/scene/+/set"

    def parse_scene_set(self, topic: str) -> str | None:
        """The scene id of a `<base>/scene/<id>/set` topic, else None."""
        prefix = self.base + "/scene/"
        if not topic.startswith(prefix) or not topic.endswith("/set"):
            return None
        scene_id = topic[len(prefix):-len("/set")]
        return scene_id if scene_id and "/" not in scene_id else None


class BadPayload(ValueError):
    """An MQTT payload that is not what the topic expects."""


def parse_json_object(payload: bytes) -> dict[str, Any]:
    """A command payload: a JSON object, UTF-8, at most 64 KiB."""
    if len(payload) > 65536:
        raise BadPayload("payload larger than 64 KiB")
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadPayload(f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise BadPayload("must be a JSON object of property: value")
    return value


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
