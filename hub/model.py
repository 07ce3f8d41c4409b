"""Devices and their exposes: the one declaration validation, OpenAPI, UI and MQTT derive from."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")


class Access(enum.IntFlag):
    """What can be done with an expose (after Zigbee2MQTT's bitmask)."""

    STATE = 1  # appears in the published state
    SET = 2  # can be changed with a set command
    GET = 4  # can be read on request


class InvalidCommand(ValueError):
    """A set command broke a rule of the device's exposes; names the field and the rule."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class NotNow(InvalidCommand):
    """A valid command the device can't carry out in its current state (e.g. in standby): 409, not 422."""


@dataclass(frozen=True, kw_only=True)
class Expose:
    """One thing a device has or does; subclasses add the type's rules."""

    type: ClassVar[str] = ""
    name: str
    label: str = ""
    access: Access = Access.STATE
    description: str = ""
    category: str | None = None  # None, "config" or "diagnostic"

    def validate(self, value: Any) -> Any:
        """Return the value normalised, or raise InvalidCommand."""
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        """JSON Schema of one value of this expose."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": self.type,
            "name": self.name,
            "label": self.label or self.name.replace("_", " ").capitalize(),
            "access": int(self.access),
        }
        if self.description:
            d["description"] = self.description
        if self.category:
            d["category"] = self.category
        d.update(self._extra_json())
        return d

    def _extra_json(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, kw_only=True)
class Binary(Expose):
    type: ClassVar[str] = "binary"

    def validate(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        raise InvalidCommand(self.name, "must be true or false")

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True, kw_only=True)
class Numeric(Expose):
    type: ClassVar[str] = "numeric"
    min: float | None = None
    max: float | None = None
    step: float | None = None
    unit: str = ""
    integer: bool = False

    def validate(self, value: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidCommand(self.name, "must be a number")
        if self.integer and value != int(value):
            raise InvalidCommand(self.name, "must be a whole number")
        if self.min is not None and value < self.min:
            raise InvalidCommand(self.name, f"must be >= {_num(self.min)}")
        if self.max is not None and value > self.max:
            raise InvalidCommand(self.name, f"must be <= {_num(self.max)}")
        if self.step:
            base = self.min or 0
            steps = (value - base) / self.step
            if abs(steps - round(steps)) > 1e-6:
                raise InvalidCommand(self.name, f"must be a multiple of {_num(self.step)} from {_num(base)}")
        return int(value) if self.integer else float(value)

    def schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        if self.min is not None:
            s["minimum"] = self.min
        if self.max is not None:
            s["maximum"] = self.max
        if self.step:
            s["multipleOf"] = self.step
        return s

    def _extra_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key, v in (("value_min", self.min), ("value_max", self.max), ("value_step", self.step)):
            if v is not None:
                d[key] = v
        if self.unit:
            d["unit"] = self.unit
        if self.integer:
            d["integer"] = True
        return d


@dataclass(frozen=True, kw_only=True)
class Enum(Expose):
    type: ClassVar[str] = "enum"
    values: tuple[str, ...] = ()

    def validate(self, value: Any) -> str:
        if not isinstance(value, str) or value not in self.values:
            raise InvalidCommand(self.name, f"must be one of {', '.join(self.values)}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.values)}

    def _extra_json(self) -> dict[str, Any]:
        return {"values": list(self.values)}


@dataclass(frozen=True, kw_only=True)
class Action(Enum):
    """A write-only trigger (open, close, stop...): nothing to confirm but the delivery."""

    type: ClassVar[str] = "action"
    access: Access = Access.SET


@dataclass(frozen=True, kw_only=True)
class Text(Expose):
    type: ClassVar[str] = "text"
    max_length: int = 1024

    def validate(self, value: Any) -> str:
        if not isinstance(value, str):
            raise InvalidCommand(self.name, "must be a string")
        if len(value) > self.max_length:
            raise InvalidCommand(self.name, f"must be at most {self.max_length} characters")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "maxLength": self.max_length}

    def _extra_json(self) -> dict[str, Any]:
        return {"max_length": self.max_length}


_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True, kw_only=True)
class Color(Expose):
    """An RGB colour, as "#rrggbb" on every API."""

    type: ClassVar[str] = "color"

    def validate(self, value: Any) -> str:
        if not isinstance(value, str) or not _HEX_COLOR.match(value):
            raise InvalidCommand(self.name, 'must be a colour like "#ff8800"')
        return value.lower()

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": _HEX_COLOR.pattern}


EXPOSE_TYPES: dict[str, type[Expose]] = {
    cls.type: cls for cls in (Binary, Numeric, Enum, Action, Text, Color)
}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True, slots=True)  # one per device: no __dict__ each
class DeviceInfo:
    """What a driver knows about a device: identity and declaration, no live state."""

    id: str
    name: str
    driver: str
    exposes: tuple[Expose, ...]
    model: str = ""
    manufacturer: str = ""
    room: str = ""
    address: str = ""
    error: str = ""  # set when the device described itself badly; shown to the user

    def expose(self, name: str) -> Expose | None:
        for e in self.exposes:
            if e.name == name:
                return e
        return None

    def definition(self) -> dict[str, Any]:
        """The canonical definition published on hub/bridge/devices/<id>."""
        return {
            "id": self.id,
            "name": self.name,
            "driver": self.driver,
            "model": self.model,
            "manufacturer": self.manufacturer,
            "room": self.room,
            "exposes": [e.to_json() for e in self.exposes],
            **({"error": self.error} if self.error else {}),
        }


_DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def valid_device_id(device_id: str) -> bool:
    """Ids end up in MQTT topics and URLs: lowercase letters, digits, - and _ only."""
    return bool(_DEVICE_ID.match(device_id))


def validate_command(exposes: Iterable[Expose], payload: Any) -> dict[str, Any]:
    """Check a partial state against the exposes; return it normalised or raise InvalidCommand."""
    if not isinstance(payload, Mapping):
        raise InvalidCommand("body", "must be a JSON object of property: value")
    if not payload:
        raise InvalidCommand("body", "must name at least one property")
    by_name = {e.name: e for e in exposes}
    out: dict[str, Any] = {}
    for key, value in payload.items():
        expose = by_name.get(key)
        if expose is None:
            settable = ", ".join(n for n, e in by_name.items() if e.access & Access.SET)
            raise InvalidCommand(key, f"unknown property; settable ones are: {settable or 'none'}")
        if not expose.access & Access.SET:
            raise InvalidCommand(key, "is read-only")
        out[key] = expose.validate(value)
    return out


def expose_from_json(d: Mapping[str, Any]) -> Expose:
    """Rebuild an expose from its to_json() form (the registry stores them that way)."""
    cls = EXPOSE_TYPES[d["type"]]
    kw: dict[str, Any] = {
        "name": d["name"], "label": d.get("label", ""), "access": Access(d.get("access", 1)),
        "description": d.get("description", ""), "category": d.get("category"),
    }
    if cls is Numeric:
        kw.update(min=d.get("value_min"), max=d.get("value_max"), step=d.get("value_step"),
                  unit=d.get("unit", ""), integer=bool(d.get("integer", False)))
    elif cls in (Enum, Action):
        kw["values"] = tuple(d.get("values", ()))
    elif cls is Text:
        kw["max_length"] = int(d.get("max_length", 1024))
    return cls(**kw)


@dataclass(slots=True)  # one per device: no __dict__ each
class DeviceState:
    """Live state of one device, owned by the registry."""

    values: dict[str, Any] = field(default_factory=dict)
    online: bool = False
    last_seen: float = 0.0


_SHARED_MAX = 4096  # distinct declarations remembered; past that, start over (sharing only saves memory)
_shared: dict[Any, Any] = {}


def shared(value: T) -> T:
    """The one stored instance equal to `value` (a frozen declaration, a tuple of exposes...):
    1,000 identical plugs then hold one copy of their declaration, not 1,000."""
    try:
        found = _shared.get(value)
    except TypeError:  # unhashable: nothing to share
        return value
    if found is not None:
        return found
    if len(_shared) >= _SHARED_MAX:
        _shared.clear()
    _shared[value] = value
    return value
