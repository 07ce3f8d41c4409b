"""Shelly Gen2 components as pure state machines: `switch`, `cover` and `light`, plus metering.

Every method takes `now` (simulated seconds since the epoch); nothing here reads a clock.
Status and config shapes follow shelly-api-docs.shelly.cloud/gen2 ComponentsAndServices
(Switch, Cover, Light). RPC errors use the codes of General/CommonErrors (-103, -105, -109).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

INVALID_ARGUMENT = -103
NOT_FOUND = -105
FAILED_PRECONDITION = -109


class RpcError(Exception):
    """An RPC error object: `{"code": ..., "message": ...}`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


def arg_bool(params: dict[str, Any], name: str, required: bool = True) -> bool | None:
    """A boolean parameter; -103 when missing (if required) or not a boolean."""
    if name not in params:
        if required:
            raise RpcError(INVALID_ARGUMENT, f"Missing required '{name}'")
        return None
    value = params[name]
    if not isinstance(value, bool):
        raise RpcError(INVALID_ARGUMENT, f"Invalid argument '{name}': expected boolean")
    return value


def arg_number(params: dict[str, Any], name: str, low: float, high: float,
               required: bool = True) -> float | None:
    """A number in [low, high]; -103 when missing (if required), not a number, or out of range."""
    if name not in params:
        if required:
            raise RpcError(INVALID_ARGUMENT, f"Missing required '{name}'")
        return None
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RpcError(INVALID_ARGUMENT, f"Invalid argument '{name}': expected number")
    if not low <= value <= high:
        raise RpcError(INVALID_ARGUMENT, f"Invalid argument '{name}': out of range [{low:g}..{high:g}]")
    return value


def temperature(celsius: float) -> dict[str, float]:
    return {"tC": round(celsius, 1), "tF": round(celsius * 9 / 5 + 32, 1)}


@dataclass
class Meter:
    """Active power and energy of one channel; `aenergy` as the docs give it (Wh, mWh per minute)."""

    voltage: float = 230.4
    power: float = 0.0
    total_wh: float = 0.0
    minute_mwh: float = 0.0
    by_minute: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    minute_ts: int = 0
    last: float | None = None

    def advance(self, now: float) -> bool:
        """Integrate power up to `now`; True when a minute closed (aenergy changed shape)."""
        if self.last is None:
            self.last = now
            self.minute_ts = int(now // 60 * 60)
            return False
        closed = False
        while now >= self.minute_ts + 60:
            edge = self.minute_ts + 60
            self._integrate(max(self.last, self.minute_ts), edge)
            self.by_minute = [round(self.minute_mwh, 3)] + self.by_minute[:2]
            self.minute_mwh = 0.0
            self.minute_ts = edge
            self.last = max(self.last, edge)
            closed = True
        self._integrate(self.last, now)
        self.last = now
        return closed

    def _integrate(self, start: float, end: float) -> None:
        if end > start:
            wh = self.power * (end - start) / 3600.0
            self.total_wh += wh
            self.minute_mwh += wh * 1000

    def status(self) -> dict[str, Any]:
        return {
            "apower": round(self.power, 1), "voltage": self.voltage,
            "current": round(self.power / self.voltage, 3),
            "aenergy": {"total": round(self.total_wh, 3), "by_minute": list(self.by_minute),
                        "minute_ts": self.minute_ts},
        }


class Component:
    """One `<kind>:<id>` component; subclasses add methods as `rpc_<Name>`."""

    kind = ""

    def __init__(self, cid: int = 0, name: str | None = None) -> None:
        self.id = cid
        self.name = name

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"

    def status(self, now: float) -> dict[str, Any]:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}

    def advance(self, now: float) -> None:
        """Let simulated time pass up to `now`."""

    def next_deadline(self, now: float) -> float | None:
        """When `advance` must next run for the status to stay true (None: nothing pending)."""
        return None

    def rpc_GetStatus(self, params: dict[str, Any], now: float) -> Any:
        return self.status(now)

    def rpc_GetConfig(self, params: dict[str, Any], now: float) -> Any:
        return self.config()

    def rpc_SetConfig(self, params: dict[str, Any], now: float) -> Any:
        """Only `name` is settable here; the device records the config_changed event."""
        config = params.get("config")
        if not isinstance(config, dict):
            raise RpcError(INVALID_ARGUMENT, "Missing required 'config'")
        self.apply_config(config, now)
        return {"restart_required": False}

    def apply_config(self, config: dict[str, Any], now: float) -> None:
        if "name" in config:
            name = config["name"]
            if name is not None and (not isinstance(name, str) or len(name) > 64):  # docs: [0..64] chars
                raise RpcError(INVALID_ARGUMENT, "Invalid argument 'name'")
            self.name = name


class Switch(Component):
    """A relay output, optionally metered (Plus 1PM: `apower`, `voltage`, `current`, `aenergy`)."""

    kind = "switch"

    def __init__(self, cid: int = 0, name: str | None = None, load_w: float = 60.0,
                 metered: bool = True) -> None:
        super().__init__(cid, name)
        self.output = False
        self.source = "init"
        self.load_w = load_w
        self.metered = metered
        self.meter = Meter()
        self.timer: tuple[float, float] | None = None  # (started_at, duration) of toggle_after

    def advance(self, now: float) -> None:
        if self.timer is not None and now >= sum(self.timer):  # toggle_after ran out (docs, Switch.Set)
            self.meter.advance(sum(self.timer))
            self.timer = None
            self._apply(not self.output, "timer")
        self.meter.advance(now)

    def next_deadline(self, now: float) -> float | None:
        due = [sum(self.timer)] if self.timer is not None else []
        if self.metered and self.meter.last is not None:
            due.append(self.meter.minute_ts + 60)
        return min(due) if due else None

    def status(self, now: float) -> dict[str, Any]:
        self.advance(now)
        out: dict[str, Any] = {"id": self.id, "source": self.source, "output": self.output}
        if self.timer is not None:
            out["timer_started_at"] = round(self.timer[0], 2)
            out["timer_duration"] = self.timer[1]
        if self.metered:
            out.update(self.meter.status())
            out["temperature"] = temperature(38.0 + 12.0 * self.meter.power / 3680.0)
        return out

    def config(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "in_mode": "follow", "initial_state": "match_input",
                "auto_on": False, "auto_on_delay": 60.0, "auto_off": False, "auto_off_delay": 60.0,
                "power_limit": 4480, "voltage_limit": 280, "current_limit": 16.0}

    def _apply(self, on: bool, source: str) -> None:
        self.output = on
        self.source = source
        self.meter.power = self.load_w if on and self.metered else 0.0

    def set_output(self, on: bool, source: str, now: float, toggle_after: float | None = None) -> bool:
        """Switch; with `toggle_after`, flip back after that many seconds (any later Set cancels it)."""
        self.advance(now)
        was_on = self.output
        self._apply(on, source)
        self.timer = (now, toggle_after) if toggle_after else None
        return was_on

    def rpc_Set(self, params: dict[str, Any], now: float) -> Any:
        on = arg_bool(params, "on")
        toggle_after = arg_number(params, "toggle_after", 0.1, 86400 * 365, required=False)
        return {"was_on": self.set_output(bool(on), "rpc", now, toggle_after)}

    def rpc_Toggle(self, params: dict[str, Any], now: float) -> Any:
        return {"was_on": self.set_output(not self.output, "rpc", now)}


class Cover(Component):
    """A roller shutter motor with position control; moves over simulated time.

    Docs (Cover): state is one of open, closed, opening, closing, stopped, calibrating;
    `current_pos`/`target_pos` are 0 (closed) to 100 (open) when `pos_control` is true.
    """

    kind = "cover"
    MOTOR_W = 110.0

    def __init__(self, cid: int = 0, name: str | None = None, maxtime: float = 20.0,
                 position: float = 0.0) -> None:
        super().__init__(cid, name)
        self.maxtime_open = maxtime
        self.maxtime_close = maxtime
        self.pos = float(position)
        self.state = "closed" if position <= 0 else "open" if position >= 100 else "stopped"
        self.source = "init"
        self.last_direction: str | None = None
        self.meter = Meter()
        self._move: tuple[float, float, float, str] | None = None  # start_pos, target, started, direction
        self._queue: list[float] = []  # further legs of a calibration run
        self.calibrating = False

    @property
    def moving(self) -> bool:
        return self._move is not None

    def _speed(self, direction: str) -> float:
        return 100.0 / (self.maxtime_open if direction == "open" else self.maxtime_close)

    def _position_at(self, now: float) -> float:
        if self._move is None:
            return self.pos
        start_pos, target, started, direction = self._move
        step = self._speed(direction) * max(0.0, now - started)
        return min(target, start_pos + step) if direction == "open" else max(target, start_pos - step)

    def advance(self, now: float) -> None:
        while self._move is not None:
            arrival = self._arrival()
            if now < arrival:
                self.pos = self._position_at(now)
                break
            self.meter.advance(arrival)
            self.pos = self._move[1]
            if self._queue:  # calibration's next leg starts where the last one ended
                self._start(self._queue.pop(0), arrival)
            else:
                self._stop(arrived=True)
        self.meter.advance(now)

    def _arrival(self) -> float:
        assert self._move is not None
        start_pos, target, started, direction = self._move
        return started + abs(target - start_pos) / self._speed(direction)

    def next_deadline(self, now: float) -> float | None:
        if self._move is not None:
            return self._arrival()
        return self.meter.minute_ts + 60 if self.meter.last is not None else None

    def _stop(self, arrived: bool) -> None:
        self._move = None
        self._queue = []
        self.calibrating = False
        self.meter.power = 0.0
        if arrived and self.pos >= 100:
            self.state = "open"
        elif arrived and self.pos <= 0:
            self.state = "closed"
        else:
            self.state = "stopped"

    def _start(self, target: float, at: float) -> None:
        if target == self.pos:
            if self._queue:
                self._start(self._queue.pop(0), at)
            else:
                self._stop(arrived=True)
            return
        direction = "open" if target > self.pos else "close"
        self._move = (self.pos, target, at, direction)
        self.last_direction = direction
        self.state = "calibrating" if self.calibrating else "opening" if direction == "open" else "closing"
        self.meter.power = self.MOTOR_W

    def go_to(self, target: float, source: str, now: float) -> None:
        self.advance(now)
        if self.calibrating:
            raise RpcError(FAILED_PRECONDITION, "Cover is calibrating")
        self.source = source
        self._start(max(0.0, min(100.0, float(target))), now)

    def status(self, now: float) -> dict[str, Any]:
        self.advance(now)
        out: dict[str, Any] = {"id": self.id, "source": self.source, "state": self.state}
        out.update(self.meter.status())
        out.update({"pf": 0.72 if self.moving else 0.0, "freq": 50.0,
                    "temperature": temperature(41.5 if self.moving else 39.2),
                    "pos_control": True, "last_direction": self.last_direction,
                    "current_pos": round(self._position_at(now))})
        if self._move is not None:
            start_pos, target, started, direction = self._move
            out["target_pos"] = round(target)
            out["move_timeout"] = self.maxtime_open if direction == "open" else self.maxtime_close
            out["move_started_at"] = round(started, 2)
        return out

    def config(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "in_mode": "dual", "initial_state": "stopped",
                "invert_directions": False, "swap_inputs": False, "maxtime_open": self.maxtime_open,
                "maxtime_close": self.maxtime_close, "power_limit": 2800, "voltage_limit": 280,
                "current_limit": 10.0, "motor": {"idle_power_thr": 2.0, "idle_confirm_period": 0.25}}

    def apply_config(self, config: dict[str, Any], now: float) -> None:
        # Docs (Cover.SetConfig preconditions): no changes while moving.
        self.advance(now)
        if self.moving:
            raise RpcError(FAILED_PRECONDITION, "Cover is moving")
        open_t = arg_number(config, "maxtime_open", 0.1, 300, required=False)
        close_t = arg_number(config, "maxtime_close", 0.1, 300, required=False)
        super().apply_config(config, now)
        self.maxtime_open = open_t or self.maxtime_open
        self.maxtime_close = close_t or self.maxtime_close

    def _duration_target(self, params: dict[str, Any], direction: str) -> float:
        duration = arg_number(params, "duration", 0.1, 300, required=False)
        full = 100.0 if direction == "open" else 0.0
        if duration is None:
            return full
        step = self._speed(direction) * duration
        return min(100.0, self.pos + step) if direction == "open" else max(0.0, self.pos - step)

    def rpc_Open(self, params: dict[str, Any], now: float) -> Any:
        self.advance(now)
        self.go_to(self._duration_target(params, "open"), "rpc", now)
        return None

    def rpc_Close(self, params: dict[str, Any], now: float) -> Any:
        self.advance(now)
        self.go_to(self._duration_target(params, "close"), "rpc", now)
        return None

    def rpc_Stop(self, params: dict[str, Any], now: float) -> Any:
        self.advance(now)
        if self._move is not None:
            self.source = "rpc"
            self._stop(arrived=False)
        return None

    def rpc_Calibrate(self, params: dict[str, Any], now: float) -> Any:
        """Run fully closed, then fully open, timing both ways (docs: refused while moving or calibrating)."""
        self.advance(now)
        if self.calibrating:
            raise RpcError(FAILED_PRECONDITION, "Cover is calibrating")
        if self.moving:
            raise RpcError(FAILED_PRECONDITION, "Cover is moving")
        self.source = "rpc"
        self.calibrating = True
        self._queue = [100.0]
        self._start(0.0, now)
        return None

    def rpc_GoToPosition(self, params: dict[str, Any], now: float) -> Any:
        self.advance(now)
        pos = arg_number(params, "pos", 0, 100, required=False)
        rel = arg_number(params, "rel", -100, 100, required=False)
        if (pos is None) == (rel is None):
            raise RpcError(INVALID_ARGUMENT, "One of 'pos' or 'rel' is required")
        self.go_to(pos if pos is not None else self.pos + (rel or 0), "rpc", now)
        return None


class Light(Component):
    """A dimmable light (Plus Wall Dimmer's `light:0`): `output` and `brightness` 0..100."""

    kind = "light"

    def __init__(self, cid: int = 0, name: str | None = None) -> None:
        super().__init__(cid, name)
        self.output = False
        self.brightness = 50.0
        self.source = "init"
        self.timer: tuple[float, float] | None = None  # (started_at, duration) of toggle_after

    def advance(self, now: float) -> None:
        if self.timer is not None and now >= sum(self.timer):  # toggle_after ran out (docs, Light.Set)
            self.timer = None
            self.output = not self.output
            self.source = "timer"

    def next_deadline(self, now: float) -> float | None:
        return sum(self.timer) if self.timer is not None else None

    def status(self, now: float) -> dict[str, Any]:
        self.advance(now)
        out: dict[str, Any] = {"id": self.id, "source": self.source, "output": self.output,
                               "brightness": round(self.brightness)}
        if self.timer is not None:
            out["timer_started_at"] = round(self.timer[0], 2)
            out["timer_duration"] = self.timer[1]
        return out

    def config(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "initial_state": "restore_last", "auto_on": False,
                "auto_on_delay": 60.0, "auto_off": False, "auto_off_delay": 60.0,
                "default": {"brightness": 50}, "night_mode": {"enable": False, "brightness": 50,
                                                             "active_between": []}}

    def rpc_Set(self, params: dict[str, Any], now: float) -> Any:
        self.advance(now)
        on = arg_bool(params, "on", required=False)
        brightness = arg_number(params, "brightness", 0, 100, required=False)
        arg_number(params, "transition_duration", 0, 10800, required=False)
        toggle_after = arg_number(params, "toggle_after", 0.1, 86400 * 365, required=False)
        if on is None and brightness is None:
            raise RpcError(INVALID_ARGUMENT, "Missing required 'on' or 'brightness'")
        if brightness is not None:
            self.brightness = brightness
        if on is not None:
            self.output = on
        self.source = "rpc"
        self.timer = (now, toggle_after) if toggle_after else None
        return None

    def rpc_Toggle(self, params: dict[str, Any], now: float) -> Any:
        self.advance(now)
        self.output = not self.output
        self.source = "rpc"
        self.timer = None
        return None


class Input(Component):
    """A wired input (`input:N`), reported but not driven in the simulator."""

    kind = "input"

    def __init__(self, cid: int = 0, name: str | None = None) -> None:
        super().__init__(cid, name)
        self.state = False

    def status(self, now: float) -> dict[str, Any]:
        return {"id": self.id, "state": self.state}

    def config(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "type": "switch", "enable": True, "invert": False}
