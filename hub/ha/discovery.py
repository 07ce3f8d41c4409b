"""Home Assistant MQTT discovery derived from a device's exposes, as pure functions.

One device-based discovery payload per device (HA's `<prefix>/device/<id>/config`, with `dev`,
`o` and `cmps`). Every entity reads the hub's own retained state on `<base>/<id>` through a
value template and commands go to `<base>/<id>/set` as the same JSON partial state REST takes,
so HA sees only what the hub confirmed and its commands are validated like any other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..model import Access, Action, Binary, Color, DeviceInfo, Enum, Expose, Numeric, Text
from ..topics import Topics

# HA climate modes (climate.mqtt: `modes`); a mode enum with other values stays a select.
CLIMATE_MODES = ("off", "heat", "cool", "auto", "dry", "fan_only", "heat_cool")
COVER_STATES = ("open", "opening", "closed", "closing", "stopped")
LOCK_STATES = ("locked", "unlocked", "locking", "unlocking", "jammed", "open", "opening")
TEXT_MAX = 255  # HA's text entity refuses a longer max
_KEY = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True)
class Origin:
    """Who publishes the discovery (`o`, required for device-based discovery)."""

    name: str
    sw_version: str


def config_topic(prefix: str, device_id: str) -> str:
    """`<prefix>/device/<id>/config`; device ids are already [a-z0-9_-]."""
    return f"{prefix}/device/{device_id}/config"


def _get(name: str) -> str:
    """Jinja for one state value; "None" (HA's unknown) while the device has not reported it.

    The default covers the empty payload that clears a forgotten device's retained state.
    """
    return f"(value_json | default({{}})).get({json.dumps(name)})"


def _value(name: str) -> str:
    return "{{ " + _get(name) + " }}"


def _bool_template(name: str, on: str, off: str) -> str:
    v = _get(name)
    return "{{ None if " + v + " is none else ('" + on + "' if " + v + " else '" + off + "') }}"


def _json(d: dict[str, Any]) -> str:
    return json.dumps(d, separators=(",", ":"))


def _set_template(name: str) -> str:
    """A command template sending HA's `value` as this expose's JSON value."""
    return "{" + json.dumps(name) + ":{{ value | to_json }}}"


def _n(x: float) -> float | int:
    """A bound as HA's schemas like it: 100, not 100.0 (some of them coerce to int)."""
    return int(x) if float(x).is_integer() else x


def _label(e: Expose) -> str:
    return e.label or e.name.replace("_", " ").capitalize()


def _settable(e: Expose | None) -> bool:
    return e is not None and bool(e.access & Access.SET)


class _Builder:
    """Collects the components of one device; each expose is used by at most one of them."""

    def __init__(self, info: DeviceInfo, topics: Topics, uid_prefix: str) -> None:
        self.info = info
        self.state_topic = topics.state(info.id)
        self.command_topic = topics.set(info.id)
        self.uid_prefix = uid_prefix
        self.by_name = {e.name: e for e in info.exposes}
        self.used: set[str] = set()
        self.components: dict[str, dict[str, Any]] = {}

    def find(self, names: Iterable[str], pred: Callable[[Expose], bool] = lambda e: True) -> Expose | None:
        for n in names:
            e = self.by_name.get(n)
            if e is not None and n not in self.used and pred(e):
                return e
        return None

    def add(self, key: str, platform: str, expose: Expose | None, name: str | None, **cfg: Any) -> None:
        key = _KEY.sub("_", key)
        body: dict[str, Any] = {"p": platform, "unique_id": f"{self.uid_prefix}_{key}", "name": name}
        if expose is not None and expose.category in ("config", "diagnostic"):
            # HA refuses "config" on what cannot be changed (sensors): that is a diagnostic there
            read_only = platform in ("sensor", "binary_sensor")
            body["entity_category"] = "diagnostic" if read_only else expose.category
        body.update(cfg)
        self.components[key] = body

    def reads(self, template: str) -> dict[str, Any]:
        return {"state_topic": self.state_topic, "value_template": template}

    def writes(self) -> dict[str, Any]:
        return {"command_topic": self.command_topic}


# -- composite entities: several exposes make one HA entity ----------------------------------


def _light(b: _Builder) -> None:
    brightness = b.find(["brightness"], lambda e: isinstance(e, Numeric) and _settable(e))
    ct = b.find(["color_temperature", "color_temp"],
                lambda e: isinstance(e, Numeric) and _settable(e) and e.unit.lower() in ("mired", "k"))
    color = next((e for e in b.info.exposes if isinstance(e, Color) and _settable(e) and e.name not in b.used), None)
    is_light = brightness or ct or color or "light" in b.info.model.lower()
    on = b.find(["on", "state", "power"], lambda e: isinstance(e, Binary) and _settable(e))
    if not is_light or on is None:
        return
    on_parts = [f"{json.dumps(on.name)}: true"]
    cfg: dict[str, Any] = {
        "schema": "template", "optimistic": False, "state_topic": b.state_topic,
        "command_topic": b.command_topic,
        "state_template": _bool_template(on.name, "on", "off"),
        "command_off_template": _json({on.name: False}),
    }
    if isinstance(brightness, Numeric):
        lo, hi = _n(brightness.min or 0), _n(brightness.max if brightness.max is not None else 100)
        scale = f"({hi} - {lo})"
        v = _get(brightness.name)
        cfg["brightness_template"] = (
            "{{ None if " + v + " is none else ((" + v + f" - {lo}) / {scale} * 255) | round(0) | int }}}}")
        step = _n(brightness.step or 1)  # HA's 0-255 onto the device's range, on its steps
        to_hub = f"({lo} + ((brightness / 255 * {scale} / {step}) | round(0)) * {step})"
        if brightness.integer or float(step).is_integer():
            to_hub = f"({to_hub} | int)"
        on_parts.append("{% if brightness is defined %}, " + json.dumps(brightness.name) + ": {{ " + to_hub
                        + " }}{% endif %}")
    if isinstance(ct, Numeric):
        mired = ct.unit.lower() == "mired"
        lo, hi = ct.min, ct.max
        if mired:
            kmin = round(1_000_000 / hi) if hi else 2000
            kmax = round(1_000_000 / lo) if lo else 6500
            v = _get(ct.name)
            cfg["color_temp_template"] = "{{ None if " + v + " is none else (1000000 / " + v + ") | round(0) | int }}"
            to_hub = "(1000000 / color_temp) | round(0) | int"
        else:
            kmin, kmax = int(lo or 2000), int(hi or 6500)
            cfg["color_temp_template"] = _value(ct.name)
            to_hub = "color_temp | int"
        if lo is not None and hi is not None:
            to_hub = f"[[{to_hub}, {lo:g}] | max, {hi:g}] | min"
        cfg.update(color_temp_kelvin=True, min_kelvin=kmin, max_kelvin=kmax)
        on_parts.append("{% if color_temp is defined %}, " + json.dumps(ct.name) + ": {{ " + to_hub
                        + " }}{% endif %}")
    if color is not None:
        v = _get(color.name)
        for i, channel in enumerate(("red", "green", "blue")):
            cfg[f"{channel}_template"] = (
                "{{ None if " + v + " is none else " + v + f"[{1 + 2 * i}:{3 + 2 * i}] | int(base=16) }}}}")
        on_parts.append("{% if red is defined %}, " + json.dumps(color.name)
                        + ": \"#{{ '%02x%02x%02x' | format(red, green, blue) }}\"{% endif %}")
    cfg["command_on_template"] = "{" + "".join(on_parts) + "}"
    b.used.update(e.name for e in (on, brightness, ct, color) if e is not None)
    b.add("light", "light", on, None, **cfg)


def _cover(b: _Builder) -> None:
    position = b.find(["position"], lambda e: isinstance(e, Numeric) and _settable(e))
    if not isinstance(position, Numeric):
        return
    cfg: dict[str, Any] = {
        "optimistic": False,
        "position_topic": b.state_topic, "position_template": _value(position.name),
        "set_position_topic": b.command_topic,
        # `value` is the position in the device's range; `position` would be HA's percentage
        "set_position_template": "{" + json.dumps(position.name) + ":{{ value }}}",
        "position_open": _n(position.max if position.max is not None else 100),
        "position_closed": _n(position.min or 0),
    }
    b.used.add(position.name)
    state = b.find(["state"], lambda e: isinstance(e, Enum) and not isinstance(e, Action)
                   and set(e.values) <= set(COVER_STATES))
    if state is not None:
        cfg.update(b.reads(_value(state.name)))
        b.used.add(state.name)
    action = next((e for e in b.info.exposes if isinstance(e, Action) and {"open", "close"} <= set(e.values)
                   and e.name not in b.used), None)
    if action is not None:
        cfg.update(b.writes(), payload_open=_json({action.name: "open"}), payload_close=_json({action.name: "close"}),
                   payload_stop=_json({action.name: "stop"}) if "stop" in action.values else None)
        b.used.add(action.name)
    else:
        cfg["command_topic"] = None  # position only
    b.add("cover", "cover", position, None, **cfg)


def _climate(b: _Builder) -> None:
    target = b.find(["target_temperature", "setpoint", "target_temp"],
                    lambda e: isinstance(e, Numeric) and _settable(e))
    if not isinstance(target, Numeric):
        return
    unit = "F" if target.unit.endswith("F") else "C"
    cfg: dict[str, Any] = {
        "optimistic": False, "temperature_unit": unit,
        "temperature_command_topic": b.command_topic, "temperature_command_template": _set_template(target.name),
        "temperature_state_topic": b.state_topic, "temperature_state_template": _value(target.name),
    }
    if target.min is not None:
        cfg["min_temp"] = _n(target.min)
    if target.max is not None:
        cfg["max_temp"] = _n(target.max)
    if target.step:
        cfg["temp_step"] = _n(target.step)
        cfg["precision"] = 0.1 if target.step < 0.5 else (0.5 if target.step < 1 else 1.0)
    b.used.add(target.name)
    mode = b.find(["mode", "hvac_mode", "system_mode"], lambda e: isinstance(e, Enum) and _settable(e)
                  and not isinstance(e, Action) and set(e.values) <= set(CLIMATE_MODES))
    if isinstance(mode, Enum):
        cfg.update(modes=list(mode.values), mode_command_topic=b.command_topic,
                   mode_command_template=_set_template(mode.name),
                   mode_state_topic=b.state_topic, mode_state_template=_value(mode.name))
        b.used.add(mode.name)
    else:
        # no mode to set: a setpoint alone heats; without a mode state HA would show it "off"
        cfg.update(modes=["heat"], mode_state_topic=b.state_topic, mode_state_template="heat")
    current = b.find(["current_temperature", "local_temperature", "temperature"],
                     lambda e: isinstance(e, Numeric) and not _settable(e))
    if current is not None:
        cfg.update(current_temperature_topic=b.state_topic, current_temperature_template=_value(current.name))
        b.used.add(current.name)
    heating = b.find(["heating"], lambda e: isinstance(e, Binary) and not _settable(e))
    if heating is not None:
        v = _get(heating.name)
        off = (" if " + _get(mode.name) + " == 'off' else ") if mode is not None else None
        busy = "('heating' if " + v + " else 'idle')"
        cfg.update(action_topic=b.state_topic,
                   action_template="{{ " + (f"'off'{off}{busy}" if off else busy) + " }}")
        b.used.add(heating.name)
    b.add("climate", "climate", target, None, **cfg)


def _lock(b: _Builder) -> None:
    locked = b.find(["locked"], lambda e: isinstance(e, Binary) and _settable(e))
    if locked is None:
        return
    cfg: dict[str, Any] = {
        "optimistic": False, **b.writes(),
        "payload_lock": _json({locked.name: True}), "payload_unlock": _json({locked.name: False}),
    }
    state = b.find(["state"], lambda e: isinstance(e, Enum) and not isinstance(e, Action)
                   and set(e.values) <= set(LOCK_STATES))
    if state is not None:
        cfg.update(b.reads("{{ " + _get(state.name) + " | upper }}"))
        b.used.add(state.name)
    else:
        cfg.update(b.reads(_bool_template(locked.name, "LOCKED", "UNLOCKED")))
    b.used.add(locked.name)
    b.add("lock", "lock", locked, None, **cfg)


# -- one expose, one entity -------------------------------------------------------------------

_SENSOR_CLASSES: tuple[tuple[tuple[str, ...], str, str | None, str], ...] = (
    # units, name must contain (None: any), device_class, state_class
    (("°c", "°f", "k"), "temp", "temperature", "measurement"),
    (("%",), "humid", "humidity", "measurement"),
    (("%",), "batter", "battery", "measurement"),
    (("w", "kw"), None, "power", "measurement"),
    (("wh", "kwh", "mwh"), None, "energy", "total_increasing"),
    (("v",), None, "voltage", "measurement"),
    (("a",), None, "current", "measurement"),
    (("lx",), None, "illuminance", "measurement"),
    (("hpa", "pa", "mbar"), None, "pressure", "measurement"),
    (("ms", "s", "min", "h", "d"), None, "duration", "measurement"),
)

_BINARY_CLASSES = (
    ("motion", "motion"), ("occupancy", "occupancy"), ("presence", "presence"), ("contact", "door"),
    ("open", "opening"), ("door", "door"), ("window", "window"), ("leak", "moisture"), ("smoke", "smoke"),
    ("jam", "problem"), ("problem", "problem"), ("heating", "heat"), ("battery_low", "battery"),
    ("tamper", "tamper"), ("vibration", "vibration"),
)


def sensor_class(e: Numeric) -> dict[str, Any]:
    """device_class, unit_of_measurement and state_class of a read-only number."""
    unit = e.unit.lower()
    out: dict[str, Any] = {"state_class": "measurement"}
    if e.unit:
        out["unit_of_measurement"] = e.unit
    for units, name_part, device_class, state_class in _SENSOR_CLASSES:
        if unit in units and (name_part is None or name_part in e.name):
            out.update(device_class=device_class, state_class=state_class)
            if e.name.endswith("_hours") and device_class == "duration":
                out["state_class"] = "total_increasing"  # lamp and filter hours only grow
            break
    return out


def _single(b: _Builder, e: Expose) -> None:
    label, settable = _label(e), _settable(e)
    if isinstance(e, Action):
        for v in e.values:
            b.add(f"{e.name}_{v}", "button", e, f"{label} {v}", **b.writes(), payload_press=_json({e.name: v}))
    elif isinstance(e, Binary):
        if settable:
            b.add(e.name, "switch", e, label, **b.reads(_bool_template(e.name, "ON", "OFF")), **b.writes(),
                  payload_on=_json({e.name: True}), payload_off=_json({e.name: False}),
                  # HA compares the rendered state with state_on/state_off, which default to the
                  # payloads above (JSON commands): without these a switch stays "unknown"
                  state_on="ON", state_off="OFF", optimistic=False)
        else:
            cls = next((c for part, c in _BINARY_CLASSES if part in e.name), None)
            b.add(e.name, "binary_sensor", e, label, **b.reads(_bool_template(e.name, "ON", "OFF")),
                  **({"device_class": cls} if cls else {}))
    elif isinstance(e, Numeric):
        if settable:
            b.add(e.name, "number", e, label, **b.reads(_value(e.name)), **b.writes(),
                  command_template=_set_template(e.name), optimistic=False,
                  min=_n(e.min if e.min is not None else -1e9), max=_n(e.max if e.max is not None else 1e9),
                  step=_n(e.step or (1 if e.integer else 0.001)), mode="box" if e.min is None or e.max is None else "auto",
                  **({"unit_of_measurement": e.unit} if e.unit else {}))
        else:
            b.add(e.name, "sensor", e, label, **b.reads(_value(e.name)), **sensor_class(e))
    elif isinstance(e, Enum):
        if settable:
            b.add(e.name, "select", e, label, **b.reads(_value(e.name)), **b.writes(),
                  command_template=_set_template(e.name), options=list(e.values), optimistic=False)
        else:
            b.add(e.name, "sensor", e, label, **b.reads(_value(e.name)), device_class="enum", options=list(e.values))
    elif isinstance(e, Text) and settable:
        b.add(e.name, "text", e, label, **b.reads(_value(e.name)), **b.writes(),
              command_template=_set_template(e.name), max=min(e.max_length, TEXT_MAX))
    elif isinstance(e, (Text, Color)):
        b.add(e.name, "sensor", e, label, **b.reads(_value(e.name)))


def device_config(info: DeviceInfo, *, name: str, room: str, topics: Topics, origin: Origin) -> dict[str, Any]:
    """The device-based discovery payload for one device, from its exposes alone."""
    uid_prefix = f"{topics.base.replace('/', '_')}_{info.id}"
    b = _Builder(info, topics, uid_prefix)
    for composite in (_light, _cover, _climate, _lock):
        composite(b)
    for e in info.exposes:
        if e.name not in b.used:
            _single(b, e)
    device: dict[str, Any] = {"identifiers": [uid_prefix], "name": name}
    if info.manufacturer:
        device["manufacturer"] = info.manufacturer
    if info.model:
        device["model"] = info.model
    if room:
        device["suggested_area"] = room
    return {
        "dev": device,
        "o": {"name": origin.name, "sw": origin.sw_version},
        "availability": [{"topic": topics.bridge_state}, {"topic": topics.availability(info.id)}],
        "availability_mode": "all",
        "qos": 1,
        "cmps": b.components,
    }
