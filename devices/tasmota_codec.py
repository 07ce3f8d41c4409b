"""Tasmota over MQTT as pure code: the native discovery message, topics, payloads ⇄ exposes.

Facts from Tasmota's `xdrv_12_discovery.ino` (the retained `tasmota/discovery/<MAC>/config` and
`/sensors` it publishes) and its MQTT docs (tasmota.github.io/docs/MQTT): a FullTopic pattern with
`%prefix%`, `%topic%`, `%hostname%`, `%id%` (always ending in `/`), prefixes cmnd/stat/tele, commands
`cmnd/<t>/Power<n>` and `Dimmer`, answers on `stat/<t>/RESULT` (or `stat/<t>/<COMMAND>` with
SetOption4 1) and `stat/<t>/POWER<n>` (plain text), telemetry `tele/<t>/STATE` and `SENSOR`, the
polled `stat/<t>/STATUS10|11` (`StatusSNS`, `StatusSTS`) and the retained last will `tele/<t>/LWT`.
A device with one output says `POWER`, with several `POWER1`.. `POWERn`: both read as `POWER<n>`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from hub.driver import Wire, Wiring
from hub.model import Access, Binary, Expose, Numeric, shared

DISCOVERY_PREFIX = "tasmota/discovery/"
MAX_PAYLOAD = 64 * 1024  # a discovery config is ~1 KB, a SENSOR message a few KB
MAX_OUTPUTS = 32  # Tasmota 14 on ESP32 has at most 32 relays
MAC = re.compile(r"^[0-9A-F]{12}$")
RL_RELAY, RL_LIGHT = 1, 2  # `rl` entries: 0 none, 1 relay, 2 light, 3 shutter

# ENERGY fields the hub shows, with their units (Tasmota's xdrv_03_energy); others are skipped.
ENERGY_UNITS = {"Power": "W", "Voltage": "V", "Current": "A", "Total": "kWh", "Today": "kWh"}
ENERGY_DIAGNOSTIC = {"Yesterday": "kWh", "ApparentPower": "VA", "ReactivePower": "var", "Factor": "",
                     "Frequency": "Hz"}
# Units of common sensor quantities; a quantity not listed is shown without a unit.
SENSOR_UNITS = {"Humidity": "%", "Illuminance": "lx", "DewPoint": "°C", "CarbonDioxide": "ppm"}


@dataclass(frozen=True, slots=True)
class Config:
    """The fields of a discovery config the hub uses (`hn`, `ft`, `tp`, `rl`... named plainly)."""

    mac: str  # 12 upper-case hex digits, as in the discovery topic
    name: str  # `dn`, DeviceName
    friendly_names: tuple[str | None, ...]  # `fn`, one per output
    hostname: str
    ip: str
    model: str  # `md`
    version: str  # `sw`
    topic: str  # `t`
    full_topic: str  # `ft`
    prefixes: tuple[str, str, str]  # `tp`: cmnd, stat, tele
    relays: tuple[int, ...]  # `rl`
    light_subtype: int  # `lt_st`: 0 none, 1 single channel .. 5 RGBCW
    on_off: tuple[str, str]  # `state`[0:2]: the words for OFF and ON (StateText1, 2)
    online: str  # `onln`: the LWT payloads
    offline: str  # `ofln`

    @property
    def device_id(self) -> str:
        return "tasmota-" + self.mac.lower()

    def base(self, prefix: int) -> str:
        """The FullTopic filled for prefix 0 (cmnd), 1 (stat) or 2 (tele), ending in `/`."""
        out = (self.full_topic.replace("%prefix%", self.prefixes[prefix]).replace("%topic%", self.topic)
               .replace("%hostname%", self.hostname).replace("%id%", self.mac[-6:]))
        return out if out.endswith("/") else out + "/"

    @property
    def cmnd(self) -> str:
        return self.base(0)

    @property
    def stat(self) -> str:
        return self.base(1)

    @property
    def tele(self) -> str:
        return self.base(2)


def mac_of(topic: str) -> tuple[str, str] | None:
    """`tasmota/discovery/<MAC>/config|sensors` → (MAC, "config"|"sensors"), else None."""
    if not topic.startswith(DISCOVERY_PREFIX):
        return None
    parts = topic[len(DISCOVERY_PREFIX):].split("/")
    if len(parts) != 2 or parts[1] not in ("config", "sensors") or not MAC.match(parts[0]):
        return None
    return parts[0], parts[1]


def _json_object(payload: bytes, what: str) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"{what} larger than {MAX_PAYLOAD} bytes")
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: nested 30,000 deep
        raise ValueError(f"{what} is not JSON: {e!s:.80}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{what} is not a JSON object")
    return doc


def _text(doc: dict[str, Any], key: str, *, required: bool = True, topic_safe: bool = False) -> str:
    value = doc.get(key, "" if not required else None)
    if not isinstance(value, str) or (required and not value):
        raise ValueError(f"`{key}` must be a non-empty string")
    if topic_safe and ("+" in value or "#" in value or "\x00" in value):
        raise ValueError(f"`{key}` {value[:60]!r} has an MQTT wildcard")
    return value[:256]


def parse_config(payload: bytes, mac: str) -> Config:
    """A `tasmota/discovery/<mac>/config` payload; ValueError saying what is wrong."""
    doc = _json_object(payload, "discovery config")
    if doc.get("ver") != 1:
        raise ValueError(f"discovery version {doc.get('ver')!r} is not 1")
    if doc.get("mac") != mac:
        raise ValueError(f"`mac` {str(doc.get('mac'))[:20]!r} is not the topic's {mac}")
    full_topic = _text(doc, "ft", topic_safe=True)
    if "%prefix%" not in full_topic or "%topic%" not in full_topic and "%id%" not in full_topic:
        raise ValueError(f"`ft` {full_topic[:60]!r} lacks %prefix% or %topic%")
    prefixes = doc.get("tp")
    if not (isinstance(prefixes, list) and len(prefixes) >= 3 and all(isinstance(p, str) and p for p in prefixes[:3])):
        raise ValueError("`tp` must list the cmnd, stat and tele prefixes")
    if any("+" in p or "#" in p for p in prefixes[:3]):
        raise ValueError("`tp` has an MQTT wildcard")
    relays = doc.get("rl")
    if not (isinstance(relays, list) and all(isinstance(r, int) and not isinstance(r, bool) for r in relays)):
        raise ValueError("`rl` must be a list of integers")
    names = doc.get("fn", [])
    if not isinstance(names, list):
        raise ValueError("`fn` must be a list")
    state = doc.get("state", ["OFF", "ON"])
    if not (isinstance(state, list) and len(state) >= 2 and all(isinstance(s, str) and s for s in state[:2])):
        raise ValueError("`state` must list the OFF and ON words")
    subtype = doc.get("lt_st", 0)
    return Config(
        mac=mac, name=_text(doc, "dn", required=False) or mac, hostname=_text(doc, "hn", required=False),
        friendly_names=tuple(n[:64] if isinstance(n, str) else None for n in names[:MAX_OUTPUTS]),
        ip=_text(doc, "ip", required=False), model=_text(doc, "md", required=False),
        version=_text(doc, "sw", required=False), topic=_text(doc, "t", topic_safe=True), full_topic=full_topic,
        prefixes=(prefixes[0], prefixes[1], prefixes[2]), relays=tuple(relays[:MAX_OUTPUTS]),
        light_subtype=subtype if isinstance(subtype, int) else 0, on_off=(state[0], state[1]),
        online=str(doc.get("onln") or "Online"), offline=str(doc.get("ofln") or "Offline"),
    )


def parse_sensors(payload: bytes) -> dict[str, Any]:
    """A `tasmota/discovery/<mac>/sensors` payload → its `sn` object (the sensors' current reading)."""
    doc = _json_object(payload, "discovery sensors")
    sensors = doc.get("sn")
    if not isinstance(sensors, dict):
        raise ValueError("discovery sensors has no `sn` object")
    return sensors


# -- exposes and wires -------------------------------------------------------------------------

def _on_off_to(words: tuple[str, str], value: bool) -> str:
    return words[1] if value else words[0]


def _on_off_from(words: tuple[str, str], value: Any) -> bool:
    if value == words[1] or value == "ON":
        return True
    if value == words[0] or value == "OFF":
        return False
    raise ValueError(f"not {words[0]} or {words[1]}")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("not a number")
    return value


def expose_name(sensor: str, quantity: str) -> str:
    """`ENERGY`, `ApparentPower` → `energy_apparent_power`: the sensor qualifies its quantity, as
    Tasmota groups them (so a lone relay's `power` never meets the meter's)."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", f"{sensor}_{quantity}")
    return re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_")[:64]


def _output_wires(config: Config) -> list[Wire]:
    """Relays: `power` for a lone one, else `power_<n>` (Tasmota's POWER<n>); the first light is
    `on` + `brightness` (Dimmer). Later lights are plain outputs; shutters are not exposed."""
    outputs = [(i, kind) for i, kind in enumerate(config.relays) if kind in (RL_RELAY, RL_LIGHT)]
    first_light = next((i for i, kind in outputs if kind == RL_LIGHT), None)
    words = config.on_off
    wires: list[Wire] = []
    for i, kind in outputs:
        label = config.friendly_names[i] if i < len(config.friendly_names) else None
        key = f"POWER{i + 1}"
        convert = {"to_device": partial(_on_off_to, words), "from_device": partial(_on_off_from, words)}
        if i == first_light:
            wires.append(Wire(Binary(name="on", label=label or "On", access=Access.STATE | Access.SET), key, **convert))
            wires.append(Wire(Numeric(name="brightness", label="Brightness", access=Access.STATE | Access.SET,
                                      min=1, max=100, step=1, unit="%", integer=True),
                              "Dimmer", to_device=str, from_device=_number))
        else:
            name = "power" if len(outputs) == 1 else f"power_{i + 1}"
            wires.append(Wire(Binary(name=name, label=label or f"Power {i + 1}",
                                     access=Access.STATE | Access.SET), key, **convert))
    return wires


def _sensor_wires(sensors: dict[str, Any]) -> list[Wire]:
    """Each numeric reading in the discovery `sn`: ENERGY's known fields with units, others as found."""
    wires: list[Wire] = []
    units = {"Temperature": str(sensors.get("TempUnit", "C")).join(("°", "")),
             "Pressure": str(sensors.get("PressureUnit", "hPa"))}
    for sensor, readings in sensors.items():
        if not isinstance(readings, dict):
            continue  # Time, TempUnit, ...
        for quantity, value in readings.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue  # text (TotalStartTime), arrays (per phase) and nested objects: not exposed
            category = None
            if sensor == "ENERGY":
                if quantity in ENERGY_DIAGNOSTIC:
                    unit, category = ENERGY_DIAGNOSTIC[quantity], "diagnostic"
                elif quantity in ENERGY_UNITS:
                    unit = ENERGY_UNITS[quantity]
                else:
                    continue
            else:
                unit = units.get(quantity) or SENSOR_UNITS.get(quantity, "")
            name = expose_name(sensor, quantity)
            label = expose_name("", quantity).replace("_", " ").capitalize()
            if sensor != "ENERGY":
                label = f"{sensor} {label.lower()}"
            wires.append(Wire(Numeric(name=name, label=label, unit=unit, category=category),
                              f"{sensor}/{quantity}", from_device=_number))
    return wires


def wiring(config: Config, sensors: dict[str, Any] | None) -> Wiring:
    """The device's exposes as wires: its outputs, then its sensors (names never collide)."""
    wires: dict[str, Wire] = {}
    for wire in _output_wires(config) + _sensor_wires(sensors or {}):
        wires.setdefault(wire.expose.name, wire)  # two sensors that name alike: the first keeps it
    return Wiring(wires.values())


def exposes(w: Wiring) -> tuple[Expose, ...]:
    return shared(w.exposes)


# -- messages → raw device values ---------------------------------------------------------------

POWER_KEY = re.compile(r"^POWER(\d{0,2})$")


def flatten(doc: dict[str, Any]) -> dict[str, Any]:
    """A RESULT/STATE/SENSOR/STATUS object → {wire key: value}: `POWER` as `POWER1`, sensor
    readings as `<sensor>/<quantity>`, StatusSNS and StatusSTS unwrapped."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in ("StatusSNS", "StatusSTS") and isinstance(value, dict):
            out.update(flatten(value))
        elif isinstance(value, dict):
            for quantity, reading in value.items():
                out[f"{key}/{quantity}"] = reading
        elif m := POWER_KEY.match(key):
            out[f"POWER{m.group(1) or '1'}"] = value
        else:
            out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class Reading:
    """What one message on a device's stat/tele topics says: values, its availability, or nothing."""

    values: dict[str, Any] | None = None  # wire key → device value
    online: bool | None = None
    poll: bool = False  # the device just came online: ask for its state


def read(config: Config, topic: str, payload: bytes) -> Reading:
    """One message on `stat/<t>/…` or `tele/<t>/…`; ValueError for garbage on a topic that matters."""
    stat, tele = config.stat, config.tele
    if topic.startswith(tele):
        name = topic[len(tele):]
        if name == "LWT":
            text = payload.decode("utf-8", errors="replace")
            if text == config.online:
                return Reading(online=True, poll=True)
            if text == config.offline or not payload:
                return Reading(online=False)
            raise ValueError(f"LWT {text[:40]!r} is neither {config.online} nor {config.offline}")
        if name in ("STATE", "SENSOR"):
            return Reading(values=flatten(_json_object(payload, f"tele/{name}")))
        return Reading()  # INFO1..3, RESULT of rules, ...
    if topic.startswith(stat):
        name = topic[len(stat):]
        if POWER_KEY.match(name) and not payload.startswith(b"{"):
            return Reading(values=flatten({name: payload.decode("utf-8", errors="replace")}))
        if name == "RESULT" or name.startswith("STATUS") or payload.startswith(b"{"):
            # SetOption4 1 answers on stat/<t>/<COMMAND> with the RESULT body
            return Reading(values=flatten(_json_object(payload, f"stat/{name}")))
    return Reading()
