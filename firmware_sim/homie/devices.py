"""Device models of the simulated household: pure state machines driven by a clock value.

Each model declares its Homie 5 nodes and turns commands, faults and the passage of time
(`now`, in simulation seconds) into `Update`s to publish. No I/O here: `HomieDevice` in
`firmware_sim.homie.runtime` does the MQTT side, so the tests drive these with a fake clock.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping
from typing import Any, ClassVar

from .wire import InvalidValue, Node, Property, Update

log = logging.getLogger(__name__)


class BaseModel:
    """Shared bookkeeping: current values, change detection, persistence of chosen keys."""

    kind: ClassVar[str] = ""
    PERSIST: ClassVar[tuple[str, ...]] = ()  # "node/prop" keys saved across restarts
    TARGETED: ClassVar[tuple[str, ...]] = ()  # "node/prop" keys that use `$target` (always, also initially)

    def __init__(self, params: Mapping[str, Any] | None = None, rng: random.Random | None = None) -> None:
        self.params = dict(params or {})
        self.rng = rng or random.Random()
        self._nodes = self.build_nodes()
        self._props = {(n.id, p.id): p for n in self._nodes for p in n.properties}
        self.values: dict[tuple[str, str], Any] = {}
        self.last: float | None = None
        self.setup()

    # -- declared by subclasses
    def build_nodes(self) -> tuple[Node, ...]:
        raise NotImplementedError

    def setup(self) -> None:
        """Initial values, from params."""

    def step(self, now: float, dt: float) -> list[Update]:
        return []

    # -- helpers
    def param(self, name: str, default: float) -> float:
        value = self.params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{self.kind}: parameter {name} must be a number, got {value!r}")
        return float(value)

    def get(self, node: str, prop: str) -> Any:
        return self.values[(node, prop)]

    def put(self, node: str, prop: str, value: Any, out: list[Update], force: bool = False) -> None:
        """Set a value; record an Update when it changed (or always when forced)."""
        value = self._props[(node, prop)].coerce(value)
        if force or self.values.get((node, prop)) != value:
            self.values[(node, prop)] = value
            out.append(Update(node, prop, value))

    # -- the Model protocol
    def nodes(self) -> tuple[Node, ...]:
        return self._nodes

    def begin(self, now: float) -> list[Update]:
        self.last = now
        return []

    def target_of(self, node: str, prop: str) -> Any:
        """Where a `$target` property is heading (its value when it is not moving)."""
        return self.values[(node, prop)]

    def snapshot(self) -> list[Update]:
        """Every retained value, each `$target` first (Homie 5: "$target ... including the initial one")."""
        targets = [Update(*key.split("/"), self.target_of(*key.split("/")), target=True) for key in self.TARGETED]
        return targets + [Update(n, p, v) for (n, p), v in self.values.items() if self._props[(n, p)].retained]

    def command(self, node: str, prop: str, value: Any, now: float) -> list[Update]:
        out = self.tick(now)
        self.put(node, prop, value, out, force=True)
        return out

    def tick(self, now: float) -> list[Update]:
        if self.last is None:
            self.last = now
        dt = max(0.0, now - self.last)
        self.last = now
        return self.step(now, dt)

    def next_tick(self, now: float) -> float | None:
        return None

    def fault(self, data: Mapping[str, Any], now: float) -> list[Update]:
        return []

    def saved(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.PERSIST:
            node, prop = key.split("/")
            value = self.values.get((node, prop))
            out[key] = list(value) if isinstance(value, tuple) else value
        return out

    def restore(self, data: Mapping[str, Any]) -> None:
        for key in self.PERSIST:
            if key not in data:
                continue
            node, prop = key.split("/")
            try:
                self.values[(node, prop)] = self._props[(node, prop)].coerce(data[key])
            except InvalidValue as exc:
                log.warning("%s: ignoring saved %s: %s", self.kind, key, exc)


def declare(id: str, name: str, datatype: str, format: str | None = None, settable: bool = False,
            unit: str | None = None, retained: bool = True) -> Property:
    """A property declaration, positional in the order a model reads best."""
    return Property(id, name, datatype, format, settable, retained, unit)


class Light(BaseModel):
    """Dimmable colour light."""

    kind = "light"
    PERSIST = ("light/on", "light/brightness", "light/color-temperature", "light/color")

    def build_nodes(self) -> tuple[Node, ...]:
        return (Node("light", "Light", "light", (
            declare("on", "On", "boolean", settable=True),
            declare("brightness", "Brightness", "integer", "0:100", True, "%"),
            declare("color-temperature", "Colour temperature", "integer", "153:500", True, "mired"),
            declare("color", "Colour", "color", "rgb", True),
        )),)

    def setup(self) -> None:
        self.values = {("light", "on"): False, ("light", "brightness"): 100,
                       ("light", "color-temperature"): 370, ("light", "color"): (255, 255, 255)}


class Plug(BaseModel):
    """Switched plug metering the power of its load and the energy used."""

    kind = "plug"
    PERSIST = ("switch/on",)
    PUBLISH_EVERY = 5.0

    def build_nodes(self) -> tuple[Node, ...]:
        return (Node("switch", "Switch", "switch", (
            declare("on", "On", "boolean", settable=True),
            declare("power", "Power", "float", "0:", unit="W"),
            declare("energy", "Energy", "float", "0:", unit="kWh"),
        )),)

    def setup(self) -> None:
        self.load_w = self.param("load_w", 60.0)
        self.noise = self.param("noise", 0.03)
        self.energy_kwh = 0.0
        self.values = {("switch", "on"): False, ("switch", "power"): 0.0, ("switch", "energy"): 0.0}

    def _power(self) -> float:
        if not self.get("switch", "on"):
            return 0.0
        return round(max(0.0, self.load_w * (1 + self.rng.gauss(0, self.noise))), 1)

    def step(self, now: float, dt: float) -> list[Update]:
        out: list[Update] = []
        self.energy_kwh += self.get("switch", "power") * dt / 3.6e6
        self.put("switch", "energy", round(self.energy_kwh, 4), out)
        self.put("switch", "power", self._power(), out)
        return out

    def command(self, node: str, prop: str, value: Any, now: float) -> list[Update]:
        out = super().command(node, prop, value, now)
        self.put("switch", "power", self._power(), out)
        return out

    def next_tick(self, now: float) -> float | None:
        return self.PUBLISH_EVERY if self.get("switch", "on") else None

    def saved(self) -> dict[str, Any]:
        return {**super().saved(), "switch/energy": self.energy_kwh}

    def restore(self, data: Mapping[str, Any]) -> None:
        super().restore(data)
        energy = data.get("switch/energy")
        if isinstance(energy, (int, float)) and not isinstance(energy, bool) and math.isfinite(energy) and energy >= 0:
            self.energy_kwh = float(energy)
            self.values[("switch", "energy")] = round(self.energy_kwh, 4)


class Thermostat(BaseModel):
    """Heating thermostat; the room follows a first-order thermal model (exact exponential step)."""

    kind = "thermostat"
    PERSIST = ("thermostat/target-temperature", "thermostat/mode")
    TARGETED = ("thermostat/target-temperature",)
    MAX_STEP = 10.0  # control decisions every 10 s of simulated time

    def build_nodes(self) -> tuple[Node, ...]:
        return (Node("thermostat", "Thermostat", "thermostat", (
            declare("target-temperature", "Target temperature", "float", "5:30:0.5", True, "°C"),
            declare("mode", "Mode", "enum", "off,heat,auto", True),
            declare("current-temperature", "Current temperature", "float", unit="°C"),
            declare("heating", "Heating", "boolean"),
        )),)

    def setup(self) -> None:
        self.outdoor = self.param("outdoor", 8.0)
        self.tau_heat = self.param("tau_heat", 900.0)
        self.tau_cool = self.param("tau_cool", 3600.0)
        self.hysteresis = self.param("hysteresis", 0.3)
        self.temp = self.param("initial", 19.0)
        self.heating = False
        self.values = {
            ("thermostat", "target-temperature"): 21.0, ("thermostat", "mode"): "heat",
            ("thermostat", "current-temperature"): round(self.temp, 1), ("thermostat", "heating"): False,
        }

    def _decide(self) -> bool:
        """Bang-bang control with hysteresis: on below target - h, off once within 0.05 K."""
        target = self.get("thermostat", "target-temperature")
        if self.get("thermostat", "mode") == "off":
            return False
        if self.temp < target - self.hysteresis:
            return True
        if self.temp >= target - 0.05:
            return False
        return self.heating

    def step(self, now: float, dt: float) -> list[Update]:
        out: list[Update] = []
        while dt > 0:
            self.heating = self._decide()
            h = min(dt, self.MAX_STEP)
            goal, tau = ((self.get("thermostat", "target-temperature"), self.tau_heat) if self.heating
                         else (self.outdoor, self.tau_cool))
            self.temp = goal + (self.temp - goal) * math.exp(-h / tau)
            dt -= h
        self.heating = self._decide()
        self.put("thermostat", "current-temperature", round(self.temp, 1), out)
        self.put("thermostat", "heating", self.heating, out)
        return out

    def command(self, node: str, prop: str, value: Any, now: float) -> list[Update]:
        out = self.tick(now)
        if prop == "target-temperature":
            out.append(Update(node, prop, self._props[(node, prop)].coerce(value), target=True))
        self.put(node, prop, value, out, force=True)
        self.heating = self._decide()
        self.put("thermostat", "heating", self.heating, out)
        return out

    def next_tick(self, now: float) -> float | None:
        return 10.0

    def saved(self) -> dict[str, Any]:
        return {**super().saved(), "thermostat/current-temperature": self.temp}

    def restore(self, data: Mapping[str, Any]) -> None:
        super().restore(data)
        temp = data.get("thermostat/current-temperature")
        if isinstance(temp, (int, float)) and not isinstance(temp, bool) and -50 < temp < 80:
            self.temp = float(temp)
            self.values[("thermostat", "current-temperature")] = round(self.temp, 1)


class ClimateSensor(BaseModel):
    """Battery temperature and humidity sensor; readings wander around a base value."""

    kind = "climate-sensor"
    PERSIST = ()

    def build_nodes(self) -> tuple[Node, ...]:
        return (Node("sensor", "Climate sensor", "sensor", (
            declare("temperature", "Temperature", "float", unit="°C"),
            declare("humidity", "Humidity", "float", "0:100", unit="%"),
            declare("battery", "Battery", "integer", "0:100", unit="%"),
        )),)

    def setup(self) -> None:
        self.base_t = self.param("temperature", 21.0)
        self.base_h = self.param("humidity", 45.0)
        self.drain = self.param("battery_drain_per_day", 1.0)
        self.t, self.h, self.battery = self.base_t, self.base_h, self.param("battery", 100.0)
        self.values = {("sensor", "temperature"): round(self.t, 1), ("sensor", "humidity"): round(self.h, 1),
                       ("sensor", "battery"): int(round(self.battery))}

    def step(self, now: float, dt: float) -> list[Update]:
        out: list[Update] = []
        if dt <= 0:
            return out
        pull = 1 - math.exp(-dt / 1800.0)  # mean reversion over half an hour
        wobble = math.sqrt(min(dt, 3600.0) / 60.0)
        self.t += (self.base_t - self.t) * pull + self.rng.gauss(0, 0.05) * wobble
        self.h = min(100.0, max(0.0, self.h + (self.base_h - self.h) * pull + self.rng.gauss(0, 0.2) * wobble))
        self.battery = max(0.0, self.battery - self.drain * dt / 86400.0)
        self.put("sensor", "temperature", round(self.t, 1), out)
        self.put("sensor", "humidity", round(self.h, 1), out)
        self.put("sensor", "battery", int(round(self.battery)), out)
        return out

    def next_tick(self, now: float) -> float | None:
        return 30.0

    def saved(self) -> dict[str, Any]:
        return {"sensor/battery": self.battery}

    def restore(self, data: Mapping[str, Any]) -> None:
        value = data.get("sensor/battery")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 100:
            self.battery = float(value)
            self.values[("sensor", "battery")] = int(round(value))


class _RandomBinary(BaseModel):
    """A boolean that turns true at random (Poisson) times and back to false after a while."""

    NODE_NAME = ""
    PROP = ""
    PROP_NAME = ""

    def build_nodes(self) -> tuple[Node, ...]:
        return (Node("sensor", self.NODE_NAME, "sensor", (declare(self.PROP, self.PROP_NAME, "boolean"),)),)

    def setup(self) -> None:
        self.mean_interval = self.param("mean_interval", 120.0)
        self.hold_min = self.param("hold_min", 10.0)
        self.hold_max = self.param("hold_max", 40.0)
        self.next_event: float | None = None
        self.clear_at: float | None = None
        self.values = {("sensor", self.PROP): False}

    def begin(self, now: float) -> list[Update]:
        self.next_event = now + self.rng.expovariate(1 / self.mean_interval)
        return super().begin(now)

    def _trigger(self, now: float, out: list[Update]) -> None:
        self.put("sensor", self.PROP, True, out)
        self.clear_at = now + self.rng.uniform(self.hold_min, self.hold_max)

    def step(self, now: float, dt: float) -> list[Update]:
        out: list[Update] = []
        if self.clear_at is not None and now >= self.clear_at:
            self.put("sensor", self.PROP, False, out)
            self.clear_at = None
        if self.next_event is not None and now >= self.next_event:
            self._trigger(now, out)
            self.next_event = now + self.rng.expovariate(1 / self.mean_interval)
        return out

    def next_tick(self, now: float) -> float | None:
        times = [t for t in (self.next_event, self.clear_at) if t is not None]
        return max(0.0, min(times) - now) if times else None

    def fault(self, data: Mapping[str, Any], now: float) -> list[Update]:
        """{"trigger": true} fires an event now (a test hook, like a hand waved at the sensor)."""
        out = self.tick(now)
        if data.get("trigger") is True:
            self._trigger(now, out)
        return out


class MotionSensor(_RandomBinary):
    """PIR motion sensor with random events."""

    kind = "motion-sensor"
    NODE_NAME, PROP, PROP_NAME = "Motion sensor", "motion", "Motion"


class ContactSensor(_RandomBinary):
    """Door contact opening at random."""

    kind = "contact-sensor"
    NODE_NAME, PROP, PROP_NAME = "Door contact", "open", "Open"

    def setup(self) -> None:
        self.params.setdefault("mean_interval", 300.0)
        self.params.setdefault("hold_min", 5.0)
        self.params.setdefault("hold_max", 60.0)
        super().setup()


class Cover(BaseModel):
    """Motorised cover (blind, shutter): 0 = closed, 100 = open, moves at `speed` %/s."""

    kind = "cover"
    PERSIST = ("cover/position",)
    TARGETED = ("cover/position",)

    def build_nodes(self) -> tuple[Node, ...]:
        return (Node("cover", "Cover", "cover", (
            declare("position", "Position", "integer", "0:100", True, "%"),
            declare("state", "State", "enum", "opening,closing,stopped,open,closed"),
            declare("action", "Action", "enum", "open,close,stop", True, retained=False),
        )),)

    def setup(self) -> None:
        self.speed = self.param("speed", 10.0)
        if self.speed <= 0:
            raise ValueError("cover: speed must be positive")
        self.pos = self.param("position", 0.0)
        self.goal: float | None = None
        self.values = {("cover", "position"): int(round(self.pos)), ("cover", "state"): self._rest_state()}

    def _rest_state(self) -> str:
        return "open" if self.pos >= 100 else "closed" if self.pos <= 0 else "stopped"

    def target_of(self, node: str, prop: str) -> Any:
        return int(round(self.goal if self.goal is not None else self.pos))

    def step(self, now: float, dt: float) -> list[Update]:
        out: list[Update] = []
        if self.goal is None:
            return out
        delta = self.goal - self.pos
        move = self.speed * dt
        if abs(delta) <= move:
            self.pos = self.goal
            self.goal = None
            self.put("cover", "position", int(round(self.pos)), out)
            self.put("cover", "state", self._rest_state(), out)
        else:
            self.pos += math.copysign(move, delta)
            self.put("cover", "position", int(round(self.pos)), out)
        return out

    def _go(self, goal: float, out: list[Update]) -> None:
        self.goal = goal
        out.append(Update("cover", "position", int(goal), target=True))
        if goal == self.pos:
            self.goal = None
            self.put("cover", "position", int(round(self.pos)), out, force=True)
            self.put("cover", "state", self._rest_state(), out)
        else:
            self.put("cover", "state", "opening" if goal > self.pos else "closing", out)

    def command(self, node: str, prop: str, value: Any, now: float) -> list[Update]:
        out = self.tick(now)
        if prop == "position":
            self._go(float(value), out)
        elif prop == "action":
            out.append(Update("cover", "action", value))  # echo (not retained)
            if value == "stop":
                self.goal = None
                self.pos = float(int(round(self.pos)))
                out.append(Update("cover", "position", int(self.pos), target=True))
                self.put("cover", "state", self._rest_state(), out)
            else:
                self._go(100.0 if value == "open" else 0.0, out)
        return out

    def next_tick(self, now: float) -> float | None:
        return None if self.goal is None else min(1.0, 1.0 / self.speed)

    def saved(self) -> dict[str, Any]:
        return {"cover/position": int(round(self.pos))}

    def restore(self, data: Mapping[str, Any]) -> None:
        super().restore(data)
        self.pos = float(self.get("cover", "position"))
        self.values[("cover", "state")] = self._rest_state()


class Lock(BaseModel):
    """Motorised door lock; a jam (fault injection) makes it refuse to move."""

    kind = "lock"
    PERSIST = ("lock/locked",)
    TARGETED = ("lock/locked",)

    def build_nodes(self) -> tuple[Node, ...]:
        return (Node("lock", "Lock", "lock", (
            declare("locked", "Locked", "boolean", settable=True),
            declare("state", "State", "enum", "locked,unlocked,locking,unlocking,jammed"),
            declare("jammed", "Jammed", "boolean"),
        )),)

    def setup(self) -> None:
        self.travel = self.param("travel", 1.0)
        self.moving_to: bool | None = None
        self.done_at = 0.0
        self.values = {("lock", "locked"): True, ("lock", "state"): "locked", ("lock", "jammed"): False}

    def _rest_state(self) -> str:
        return "locked" if self.get("lock", "locked") else "unlocked"

    def target_of(self, node: str, prop: str) -> Any:
        return self.moving_to if self.moving_to is not None else self.get("lock", "locked")

    def step(self, now: float, dt: float) -> list[Update]:
        out: list[Update] = []
        if self.moving_to is not None and now >= self.done_at:
            self.put("lock", "locked", self.moving_to, out)
            self.moving_to = None
            self.put("lock", "state", self._rest_state(), out)
        return out

    def command(self, node: str, prop: str, value: Any, now: float) -> list[Update]:
        out = self.tick(now)
        if self.get("lock", "jammed"):
            # refuse: report the jam again and the unchanged bolt position
            self.put("lock", "state", "jammed", out, force=True)
            self.put("lock", "jammed", True, out, force=True)
            self.put("lock", "locked", self.get("lock", "locked"), out, force=True)
            return out
        if value == self.get("lock", "locked") and self.moving_to is None:
            out.append(Update("lock", "locked", value, target=True))
            self.put("lock", "locked", value, out, force=True)
            self.put("lock", "state", self._rest_state(), out)
            return out
        out.append(Update("lock", "locked", value, target=True))
        self.moving_to = value
        self.done_at = now + self.travel
        self.put("lock", "state", "locking" if value else "unlocking", out)
        return out

    def next_tick(self, now: float) -> float | None:
        return None if self.moving_to is None else max(0.0, self.done_at - now)

    def fault(self, data: Mapping[str, Any], now: float) -> list[Update]:
        """{"jam": true} jams the bolt where it is; {"jam": false} frees it."""
        out = self.tick(now)
        jam = data.get("jam")
        if jam is True:
            self.moving_to = None
            self.put("lock", "jammed", True, out)
            self.put("lock", "state", "jammed", out)
        elif jam is False:
            self.put("lock", "jammed", False, out)
            self.put("lock", "state", self._rest_state(), out)
        return out


MODELS: dict[str, type[BaseModel]] = {
    m.kind: m for m in (Light, Plug, Thermostat, ClimateSensor, MotionSensor, ContactSensor, Cover, Lock)
}


def build_model(kind: str, params: Mapping[str, Any] | None = None, rng: random.Random | None = None) -> BaseModel:
    """A model for a device type named in a house file; ValueError for unknown types or params."""
    try:
        cls = MODELS[kind]
    except KeyError:
        raise ValueError(f"unknown device type {kind!r} (known: {', '.join(sorted(MODELS))})") from None
    return cls(params, rng)
