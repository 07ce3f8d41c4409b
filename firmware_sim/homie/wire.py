"""Homie 5 on the wire, as pure code: property payloads, nodes, `$description`, topics.

`Property` turns values into Homie 5 payloads and back (with no I/O), `description()` builds the
retained `$description`, `Update` is what a model asks the runtime to publish.
Homie 5 references: homieiot.github.io, convention v5 ("Payload types", "Description",
"Settable and retained properties", "$target").
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

HOMIE_PREFIX = "homie/5"
FAULT_PREFIX = "firmware-sim"
ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", re.ASCII)
DATATYPES = ("boolean", "integer", "float", "string", "enum", "color", "datetime", "duration")
MAX_STRING = 4096
EMPTY_STRING = "\x00"  # Homie 5 "Empty string values"
_INT_RE = re.compile(r"-?[0-9]+", re.ASCII)  # Homie 5 "Integer" (always fullmatch)
# Homie 5 "Float": digits, one optional ".", "-" and "e"/"E"; no "+" anywhere
_FLOAT_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]-?[0-9]+)?", re.ASCII)
_INT64 = (-(2 ** 63), 2 ** 63 - 1)


class InvalidValue(ValueError):
    """A payload or value that the property's datatype and format do not allow."""


def valid_id(value: str) -> bool:
    """Homie 5 IDs: lowercase a-z, 0-9 and hyphens, not starting or ending with a hyphen."""
    return bool(ID_RE.fullmatch(value))


def _parse_range(fmt: str | None) -> tuple[float | None, float | None, float | None]:
    """`min:max[:step]` with either bound optional (Homie 5, "Payload types: integer/float")."""
    if not fmt:
        return None, None, None
    parts = fmt.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"bad number format {fmt!r}")
    lo = float(parts[0]) if parts[0] else None
    hi = float(parts[1]) if parts[1] else None
    step = float(parts[2]) if len(parts) == 3 and parts[2] else None
    return lo, hi, step


def _encode_float(value: float) -> str:
    """Shortest decimal with a `.`; floats never use a comma (Homie 5, "float")."""
    text = repr(float(round(value, 6)))
    return text if "e" not in text else f"{value:.6f}"


@dataclass(frozen=True)
class Property:
    """One Homie 5 property: its declaration and the rules for its values."""

    id: str
    name: str
    datatype: str
    format: str | None = None
    settable: bool = False
    retained: bool = True
    unit: str | None = None

    def __post_init__(self) -> None:
        if not valid_id(self.id):
            raise ValueError(f"bad property id {self.id!r}")
        if self.datatype not in DATATYPES:
            raise ValueError(f"bad datatype {self.datatype!r}")
        if self.datatype == "enum" and not self.format:
            raise ValueError(f"enum property {self.id} needs a format")
        if self.datatype == "color" and self.format not in ("rgb", "hsv"):
            raise ValueError(f"color property {self.id} needs format rgb or hsv")
        if self.datatype in ("integer", "float"):
            _parse_range(self.format)

    @property
    def enum_values(self) -> tuple[str, ...]:
        return tuple(self.format.split(",")) if self.datatype == "enum" and self.format else ()

    def to_json(self) -> dict[str, Any]:
        """The property object of `$description` (Homie 5, "Description")."""
        out: dict[str, Any] = {"name": self.name, "datatype": self.datatype}
        if self.format is not None:
            out["format"] = self.format
        out["settable"] = self.settable
        out["retained"] = self.retained
        if self.unit is not None:
            out["unit"] = self.unit
        return out

    def _number(self, value: float) -> float:
        lo, hi, step = _parse_range(self.format)
        if not math.isfinite(value):
            raise InvalidValue(f"{self.id}: {value} is not a finite number")
        if step:
            # Homie 5 "Formats": base is min, else max; round half up with floor(x + 0.5)
            base = lo if lo is not None else hi if hi is not None else 0.0
            value = base + math.floor((value - base) / step + 0.5) * step
        if (lo is not None and value < lo - 1e-9) or (hi is not None and value > hi + 1e-9):
            raise InvalidValue(f"{self.id}: {value} outside {self.format}")
        return value

    def coerce(self, value: Any) -> Any:
        """Check a Python value (from a model, a saved file or params); return it normalised."""
        dt = self.datatype
        if dt == "boolean":
            if not isinstance(value, bool):
                raise InvalidValue(f"{self.id}: {value!r} is not a boolean")
            return value
        if dt == "integer":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
                raise InvalidValue(f"{self.id}: {value!r} is not an integer")
            return int(round(self._number(float(value))))
        if dt == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidValue(f"{self.id}: {value!r} is not a number")
            return float(self._number(float(value)))
        if dt == "enum":
            if value not in self.enum_values:
                raise InvalidValue(f"{self.id}: {value!r} not one of {self.format}")
            return value
        if dt == "color":
            if not isinstance(value, (list, tuple)) or len(value) != 3:
                raise InvalidValue(f"{self.id}: {value!r} is not a 3-component colour")
            limits = (255, 255, 255) if self.format == "rgb" else (360, 100, 100)
            out = []
            for component, limit in zip(value, limits):
                if isinstance(component, bool) or not isinstance(component, int) or not 0 <= component <= limit:
                    raise InvalidValue(f"{self.id}: {value!r} out of range for {self.format}")
                out.append(component)
            return tuple(out)
        if not isinstance(value, str) or len(value) > MAX_STRING:
            raise InvalidValue(f"{self.id}: {value!r} is not a string of at most {MAX_STRING} chars")
        return value

    def encode(self, value: Any) -> str:
        """The Homie 5 payload for a (valid) value: `true`, `42`, `21.5`, `heat`, `255,0,0`.

        An empty string goes out as a single 0x00 byte (Homie 5, "Empty string values"): an
        empty MQTT payload would delete the retained topic instead.
        """
        value = self.coerce(value)
        if self.datatype == "boolean":
            return "true" if value else "false"
        if self.datatype == "integer":
            return str(value)
        if self.datatype == "float":
            return _encode_float(value)
        if self.datatype == "color":
            return ",".join([self.format, *(str(c) for c in value)])  # Homie 5.0.0: "rgb,255,136,0"
        return value if value != "" else EMPTY_STRING

    def decode(self, payload: bytes | bytearray | str) -> Any:
        """Parse a payload (e.g. from `/set`); raise InvalidValue on anything the format forbids."""
        if isinstance(payload, (bytes, bytearray)):
            try:
                text = bytes(payload).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidValue(f"{self.id}: payload is not UTF-8") from None
        else:
            text = payload
        dt = self.datatype
        if dt == "boolean":
            if text not in ("true", "false"):
                raise InvalidValue(f"{self.id}: {text[:40]!r} is not true/false")
            return text == "true"
        if dt == "integer":
            if not _INT_RE.fullmatch(text) or len(text) > 20 or not _INT64[0] <= int(text) <= _INT64[1]:
                raise InvalidValue(f"{self.id}: {text[:40]!r} is not a 64-bit integer")
            return self.coerce(int(text))
        if dt == "float":
            if not _FLOAT_RE.fullmatch(text) or len(text) > 1000:
                raise InvalidValue(f"{self.id}: {text[:40]!r} is not a float")
            return self.coerce(float(text))
        if dt == "color":
            return self._decode_color(text)
        if dt == "string":
            if text == "":
                raise InvalidValue(f"{self.id}: empty payload (Homie 5 sends an empty string as 0x00)")
            if text == EMPTY_STRING:
                return ""
        return self.coerce(text)

    def _decode_color(self, text: str) -> tuple[int, ...]:
        """The v5.0.0 spec's `rgb,r,g,b` (float parts allowed); also the older bare `r,g,b`."""
        parts = text.split(",")
        if len(parts) == 4 and parts[0] == self.format:
            parts = parts[1:]
            numbers = [float(p) if _FLOAT_RE.fullmatch(p) and len(p) <= 64 else None for p in parts]
        else:
            numbers = [float(p) if _INT_RE.fullmatch(p) and len(p) <= 4 else None for p in parts]
        if len(numbers) != 3 or any(n is None for n in numbers):
            raise InvalidValue(f"{self.id}: {text[:40]!r} is not {self.format} as a,b,c")
        return self.coerce(tuple(math.floor(n + 0.5) for n in numbers))  # type: ignore[operator]


@dataclass(frozen=True)
class Node:
    """A Homie 5 node: a named group of properties."""

    id: str
    name: str
    type: str
    properties: tuple[Property, ...]

    def prop(self, prop_id: str) -> Property | None:
        return next((p for p in self.properties if p.id == prop_id), None)


@dataclass(frozen=True)
class Update:
    """A value to publish: on the property topic, or on its `$target` (Homie 5, "$target")."""

    node: str
    prop: str
    value: Any
    target: bool = False


def description(name: str, kind: str, nodes: Iterable[Node]) -> dict[str, Any]:
    """The `$description` document; `version` is a checksum so it changes with the content."""
    doc: dict[str, Any] = {
        "homie": "5.0",
        "name": name,
        "type": kind,
        "nodes": {
            n.id: {"name": n.name, "type": n.type, "properties": {p.id: p.to_json() for p in n.properties}}
            for n in nodes
        },
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return {"homie": "5.0", "version": zlib.crc32(canonical), **{k: v for k, v in doc.items() if k != "homie"}}


def topic(device_id: str, *parts: str) -> str:
    return "/".join((HOMIE_PREFIX, device_id, *parts))


class Model(Protocol):
    """What the runtime needs from a device model (implemented in firmware_sim.homie.devices)."""

    kind: str

    def nodes(self) -> tuple[Node, ...]: ...
    def begin(self, now: float) -> list[Update]: ...
    def snapshot(self) -> list[Update]: ...
    def command(self, node: str, prop: str, value: Any, now: float) -> list[Update]: ...
    def tick(self, now: float) -> list[Update]: ...
    def next_tick(self, now: float) -> float | None: ...
    def fault(self, data: Mapping[str, Any], now: float) -> list[Update]: ...
    def saved(self) -> dict[str, Any]: ...
    def restore(self, data: Mapping[str, Any]) -> None: ...


