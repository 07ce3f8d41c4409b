"""Homie 5 ⇄ exposes, as pure functions: `$description` to exposes, payloads to values and back."""

from __future__ import annotations

import colorsys
import json
import math
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

from hub.model import Access, Action, Binary, Color, Enum, Expose, Numeric, Text, shared

HOMIE_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
DATATYPES = ("integer", "float", "boolean", "string", "enum", "color", "datetime", "duration", "json")
MAX_DESCRIPTION = 256 * 1024
EMPTY_STRING = "\x00"  # Homie 5: an empty string is sent as one 0x00 byte (an empty payload deletes)


@dataclass(frozen=True)
class Property:
    """One Homie property (convention v5 §Properties) and the expose it becomes."""

    node: str
    id: str
    expose_name: str
    datatype: str
    format: str = ""
    settable: bool = False
    retained: bool = True
    unit: str = ""
    name: str = ""

    @property
    def topic_suffix(self) -> str:
        return f"{self.node}/{self.id}"


@dataclass(frozen=True)
class Description:
    name: str
    type: str
    version: int
    properties: tuple[Property, ...]

    def by_topic(self) -> dict[str, Property]:
        return self._by_topic

    @cached_property
    def _by_topic(self) -> dict[str, Property]:
        # looked up for every value message: built once per description, not per message
        return {p.topic_suffix: p for p in self.properties}

    def by_expose(self) -> dict[str, Property]:
        return {p.expose_name: p for p in self.properties}


def parse_description(payload: bytes) -> Description:
    """Parse a `$description` document; raise ValueError saying what is wrong."""
    if len(payload) > MAX_DESCRIPTION:
        raise ValueError(f"$description larger than {MAX_DESCRIPTION} bytes")
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"$description is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError("$description must be a JSON object")
    homie = str(doc.get("homie", ""))
    if not homie.startswith("5."):
        raise ValueError(f"$description homie version {homie!r} is not 5.x")
    nodes = doc.get("nodes", {})
    if not isinstance(nodes, dict):
        raise ValueError("$description nodes must be an object")
    raw: list[tuple[str, str, dict[str, Any]]] = []
    for node_id, node in nodes.items():
        if not isinstance(node_id, str) or not HOMIE_ID.match(node_id) or not isinstance(node, dict):
            raise ValueError(f"node {node_id!r} is not a valid Homie node")
        props = node.get("properties", {})
        if not isinstance(props, dict):
            raise ValueError(f"node {node_id}: properties must be an object")
        for prop_id, spec in props.items():
            if not isinstance(prop_id, str) or not HOMIE_ID.match(prop_id) or not isinstance(spec, dict):
                raise ValueError(f"property {node_id}/{prop_id!r} is not valid")
            if spec.get("datatype") not in DATATYPES:
                raise ValueError(f"property {node_id}/{prop_id}: unknown datatype {spec.get('datatype')!r}")
            raw.append((node_id, prop_id, spec))
    counts: dict[str, int] = {}
    for _, prop_id, _ in raw:
        counts[prop_id] = counts.get(prop_id, 0) + 1
    properties = []
    for node_id, prop_id, spec in raw:
        name = prop_id if counts[prop_id] == 1 else f"{node_id}_{prop_id}"
        properties.append(Property(
            node=node_id, id=prop_id, expose_name=name.replace("-", "_"), datatype=spec["datatype"],
            format=str(spec.get("format", "")), settable=bool(spec.get("settable", False)),
            retained=bool(spec.get("retained", True)), unit=str(spec.get("unit", "")),
            name=str(spec.get("name", "")),
        ))
        _check_format(properties[-1])
    version = doc.get("version", 0)
    return Description(
        name=str(doc.get("name", "")), type=str(doc.get("type", "")),
        version=version if isinstance(version, int) else 0, properties=shared(tuple(properties)))


@lru_cache(maxsize=1024)  # every numeric value message asks; a fleet has few distinct formats
def _number_range(fmt: str) -> tuple[float | None, float | None, float | None]:
    if not fmt:
        return None, None, None
    parts = fmt.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"number format {fmt!r} is not min:max[:step]")
    nums = [float(p) if p.strip() else None for p in parts]
    step = nums[2] if len(nums) == 3 else None
    return nums[0], nums[1], step


def _check_format(p: Property) -> None:
    try:
        if p.datatype in ("integer", "float"):
            _number_range(p.format)
        elif p.datatype == "enum" and not [v for v in p.format.split(",") if v]:
            raise ValueError("enum without values")
        elif p.datatype == "color" and not p.format:
            raise ValueError("color without format")
    except ValueError as e:
        raise ValueError(f"property {p.topic_suffix}: {e}") from None


def to_expose(p: Property) -> Expose:
    """The expose a Homie property becomes (its access from settable/retained)."""
    label = p.name or p.expose_name.replace("_", " ").capitalize()
    access = Access.STATE | (Access.SET if p.settable else Access(0))
    if p.datatype == "boolean":
        return Binary(name=p.expose_name, label=label, access=access)
    if p.datatype in ("integer", "float"):
        lo, hi, step = _number_range(p.format)
        if p.datatype == "integer" and step is None:
            step = 1
        return Numeric(name=p.expose_name, label=label, access=access, min=lo, max=hi, step=step,
                       unit=p.unit, integer=p.datatype == "integer")
    if p.datatype == "enum":
        values = tuple(v for v in p.format.split(",") if v)
        if p.settable and not p.retained:
            return Action(name=p.expose_name, label=label, values=values)
        return Enum(name=p.expose_name, label=label, access=access, values=values)
    if p.datatype == "color":
        return Color(name=p.expose_name, label=label, access=access)
    return Text(name=p.expose_name, label=label, access=access)


def decode_value(p: Property, payload: bytes) -> Any:
    """A property payload as an expose value; ValueError when it breaks the description."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{p.topic_suffix}: payload is not UTF-8") from None
    if p.datatype == "boolean":
        if text not in ("true", "false"):
            raise ValueError(f"{p.topic_suffix}: {text!r} is not true/false")
        return text == "true"
    if p.datatype in ("integer", "float"):
        try:
            number: float = int(text) if p.datatype == "integer" else float(text)
        except ValueError:
            raise ValueError(f"{p.topic_suffix}: {text!r} is not a {p.datatype}") from None
        if not math.isfinite(number):
            raise ValueError(f"{p.topic_suffix}: {text!r} is not finite")
        lo, hi, _ = _number_range(p.format)
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise ValueError(f"{p.topic_suffix}: {text} is out of range {p.format}")
        return number
    if p.datatype == "enum":
        if text not in p.format.split(","):
            raise ValueError(f"{p.topic_suffix}: {text!r} is not one of {p.format}")
        return text
    if p.datatype == "color":
        return _color_to_hex(p, text)
    return "" if text == EMPTY_STRING else text


def _color_to_hex(p: Property, text: str) -> str:
    """Homie 5.0.0 colours are `rgb,r,g,b` or `hsv,h,s,v`; a bare `a,b,c` is read in the first format."""
    parts = text.split(",")
    formats = [f for f in p.format.split(",") if f]
    fmt = formats[0] if formats else "rgb"
    if len(parts) == 4:
        fmt, parts = parts[0], parts[1:]
        if fmt not in formats:
            raise ValueError(f"{p.topic_suffix}: colour format {fmt!r} is not one of {p.format}")
    try:
        nums = [float(x) for x in parts]
    except ValueError:
        nums = []
    if len(nums) != 3 or not all(math.isfinite(n) for n in nums):
        raise ValueError(f"{p.topic_suffix}: {text[:40]!r} is not a colour triple")
    if fmt == "rgb":
        if not all(0 <= n <= 255 for n in nums):
            raise ValueError(f"{p.topic_suffix}: {text!r} out of 0-255")
        r, g, b = (int(round(n)) for n in nums)
    elif fmt == "hsv":
        h, s, v = nums
        if not (0 <= h <= 360 and 0 <= s <= 100 and 0 <= v <= 100):
            raise ValueError(f"{p.topic_suffix}: {text!r} out of h 0-360, s/v 0-100")
        r, g, b = (int(round(c * 255)) for c in colorsys.hsv_to_rgb(h / 360, s / 100, v / 100))
    else:
        raise ValueError(f"{p.topic_suffix}: unsupported colour format {fmt!r}")
    return f"#{r:02x}{g:02x}{b:02x}"


def encode_value(p: Property, value: Any) -> str:
    """An expose value as the Homie payload for `<prop>/set`."""
    if p.datatype == "boolean":
        return "true" if value else "false"
    if p.datatype == "integer":
        return str(int(value))
    if p.datatype == "float":
        return repr(float(value))
    if p.datatype == "color":
        r, g, b = (int(value[i:i + 2], 16) for i in (1, 3, 5))
        if p.format.split(",")[0] == "hsv":
            h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
            return f"hsv,{round(h * 360)},{round(s * 100)},{round(v * 100)}"
        return f"rgb,{r},{g},{b}"
    text = str(value)
    return text if text else EMPTY_STRING


class Topic(NamedTuple):
    """A parsed `homie/5/<device>/...` topic (a tuple: one is made per message received)."""

    device_id: str
    kind: str  # "state", "description", "value", "target", "set", "other"
    suffix: str = ""  # node/prop for value/target/set


def topic_filters(base: str) -> tuple[str, ...]:
    """What a controller of the device(s) at `base` ("homie/5/+" for all, "homie/5/<id>" for one)
    subscribes to: `$state`, `$description`, values and `$target`. Not `#`: that brings back every
    `/set` any controller sends, the hub's own included, each one more message to read and
    acknowledge in the middle of a command's round trip."""
    return (f"{base}/$state", f"{base}/$description", f"{base}/+/+", f"{base}/+/+/$target")


def parse_topic(topic: str, root: str = "homie/5/") -> Topic | None:
    if not topic.startswith(root):
        return None
    parts = topic[len(root):].split("/")
    device_id = parts[0]
    if not HOMIE_ID.match(device_id) or len(parts) < 2:
        return None
    rest = parts[1:]
    if rest == ["$state"]:
        return Topic(device_id, "state")
    if rest == ["$description"]:
        return Topic(device_id, "description")
    if len(rest) == 2 and not rest[0].startswith("$") and not rest[1].startswith("$"):
        return Topic(device_id, "value", "/".join(rest))
    if len(rest) == 3 and rest[2] == "$target":
        return Topic(device_id, "target", "/".join(rest[:2]))
    if len(rest) == 3 and rest[2] == "set":
        return Topic(device_id, "set", "/".join(rest[:2]))
    return Topic(device_id, "other")
