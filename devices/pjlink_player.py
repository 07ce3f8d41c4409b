"""The projector's media player (a Homie 5 device, node `player`) as `media_*` exposes, pure code.

The player advertises `_homie._tcp` with TXT `type=media-player` and `mac=<projector mac>`;
the PJLink driver claims it so the hub shows ONE projector. Values follow Homie 5 encoding
(devices.homie_mapping); commands go to `<topic>/player/<prop>/set`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hub.driver import Wire, Wiring
from hub.model import Access, Expose, Numeric

from .homie_mapping import (Description, Property, decode_value, encode_value, parse_description, to_expose,
                            topic_filters)

log = logging.getLogger(__name__)

NODE = "player"
PREFIX = "media_"
MAX_RAW = 64  # cached values before the description arrives (bounded; extra ones dropped)
# Plumbing the hub drives, not controls for a household (Zigbee2MQTT's expose categories):
# the UI hides them, the API and MQTT keep them.
CATEGORIES = {"url": "config", "verified": "config", "error": "diagnostic"}


@dataclass(frozen=True)
class PlayerUpdate:
    """What one MQTT message changed: the exposes, some values, or nothing usable (error)."""

    exposes_changed: bool = False
    values: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""
    state: str = ""  # the player's `$state` when that is what changed


class MediaPlayer:
    """Tracks one Homie player: `handle()` each message, read `exposes`, `encode_set()` commands."""

    def __init__(self, topic: str) -> None:
        self.topic = topic.rstrip("/")
        self.description: Description | None = None
        self.state = ""
        self._props: dict[str, Property] = {}  # prop id → property (node `player` only)
        self._wiring = Wiring(())  # prop id ⇄ `media_<prop>`
        self._raw: dict[str, bytes] = {}

    @property
    def topic_filters(self) -> tuple[str, ...]:
        return topic_filters(self.topic)

    @property
    def exposes(self) -> tuple[Expose, ...]:
        return self._wiring.exposes

    def handle(self, topic: str, payload: bytes) -> PlayerUpdate:
        """One message under the player's base topic → what changed (never raises)."""
        if not topic.startswith(self.topic + "/"):
            return PlayerUpdate()
        rest = topic[len(self.topic) + 1:]
        if rest == "$state":
            self.state = payload.decode("utf-8", "replace")[:32]
            return PlayerUpdate(state=self.state)
        if rest == "$description":
            return self._description(payload)
        parts = rest.split("/")
        if len(parts) != 2 or parts[0] != NODE:
            return PlayerUpdate()  # $target, /set echoes, other nodes: not ours to show
        prop_id = parts[1]
        if self.description is None:
            if prop_id in self._raw or len(self._raw) < MAX_RAW:
                self._raw[prop_id] = payload
            return PlayerUpdate()
        return self._decode({prop_id: payload})

    def _description(self, payload: bytes) -> PlayerUpdate:
        try:
            desc = parse_description(payload)
        except ValueError as e:
            return PlayerUpdate(error=f"media player description: {e}")
        props = {p.id: p for p in desc.properties if p.node == NODE}
        changed = props != self._props
        self.description, self._props = desc, props
        if changed:
            self._wiring = Wiring(Wire(_expose(p), p.id, partial(encode_value, p), partial(decode_value, p))
                                  for p in props.values())
        raw, self._raw = self._raw, {}
        update = self._decode(raw)
        return dataclasses.replace(update, exposes_changed=changed)

    def _decode(self, raw: Mapping[str, bytes]) -> PlayerUpdate:
        # Homie: an empty payload means "no value yet" (but is a value of a string)
        present = {k: v for k, v in raw.items() if v or (k in self._props and self._props[k].datatype == "string")}
        values, problems = self._wiring.decode(present)
        return PlayerUpdate(values=values, error="; ".join(problems))

    def encode_set(self, name: str, value: Any) -> tuple[str, str]:
        """(topic, payload) that sets `media_<prop>`; KeyError when the player has no such settable property."""
        wire = self._wiring.wire(name)
        if not wire.expose.access & Access.SET:
            raise KeyError(name)
        return f"{self.topic}/{NODE}/{wire.key}/set", wire.to_device(value)


def _expose(p: Property) -> Expose:
    """A Homie player property as `media_<prop>`; position/duration default to ms."""
    e = to_expose(p)
    changes: dict[str, Any] = {"name": PREFIX + e.name, "label": "Media " + (p.name or p.id).lower(),
                               "category": CATEGORIES.get(p.id)}
    if isinstance(e, Numeric) and not e.unit and p.id in ("position", "duration"):
        changes["unit"] = "ms"
    return dataclasses.replace(e, **changes)
