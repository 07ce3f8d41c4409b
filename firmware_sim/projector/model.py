"""The simulated projector's state machine: power phases, inputs, mutes, lamp hours, faults.

Pure logic with an injected clock (seconds, monotonic): nothing here sleeps or touches a
socket. Every public method first advances the machine to `clock()`, so warm-up and cooling
end and lamp hours grow exactly as if time had passed. Observers get a `Change` for every
value a PJLink Class 2 status notification carries (POWR, INPT, ERST; PJLink 2.00 status notification).
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class Power(enum.IntEnum):
    """POWR ? answers (PJLink §4.2): 0 standby, 1 on, 2 cooling, 3 warm-up."""

    OFF = 0
    ON = 1
    COOLING = 2
    WARMING = 3


class ErrorKind(enum.IntEnum):
    """The six ERST digits, in wire order (PJLink §4.7)."""

    FAN = 0
    LAMP = 1
    TEMPERATURE = 2
    COVER = 3
    FILTER = 4
    OTHER = 5


class Level(enum.IntEnum):
    """An ERST digit: 0 no error, 1 warning, 2 error (PJLink §4.7)."""

    OK = 0
    WARNING = 1
    ERROR = 2


# An error at level 2 in one of these shuts the lamp down and refuses POWR 1 (ERR4).
FAULTS_THAT_STOP_THE_LAMP = frozenset({ErrorKind.FAN, ErrorKind.LAMP, ErrorKind.TEMPERATURE,
                                       ErrorKind.COVER})


class Unavailable(Exception):
    """ERR3: not possible in the current power state (PJLink §2.2)."""


class BadParameter(Exception):
    """ERR2: parameter out of range (PJLink §2.2)."""


class Failure(Exception):
    """ERR4: projector/display failure (PJLink §2.2)."""


@dataclass(frozen=True)
class InputTerminal:
    """One input: its 2-character PJLink code, its INNM name, and the signal it carries."""

    code: str
    name: str
    resolution: str = "-"  # IRES answer while selected and on; "-" is "no signal" (§4.18)


DEFAULT_INPUTS: tuple[InputTerminal, ...] = (
    InputTerminal("31", "HDMI1", "1920x1080"),
    InputTerminal("32", "HDMI2"),
    InputTerminal("33", "USB-C"),
    InputTerminal("41", "USB storage"),
    InputTerminal("51", "Network", "1280x720"),
    InputTerminal("52", "Media player", "1920x1080"),
)


def default_mac(name: str) -> str:
    """A stable, locally administered MAC derived from the projector's name."""
    digest = hashlib.sha256(("mac:" + name).encode()).digest()
    octets = bytes([(digest[0] & 0xFC) | 0x02]) + digest[1:6]
    return ":".join(f"{b:02x}" for b in octets)


def default_serial(name: str) -> str:
    """A stable serial number derived from the projector's name."""
    return "PB" + hashlib.sha256(("serial:" + name).encode()).hexdigest()[:10].upper()


@dataclass(frozen=True)
class ProjectorConfig:
    """What the unit is (identity, inputs) and how it behaves (durations, speed)."""

    name: str = "Pico Projector"
    manufacturer: str = "Hub Labs"
    product: str = "PicoBeam P1"
    info: str = "firmware-sim"
    software_version: str = "1.4.2"
    mac: str = ""
    serial: str = ""
    inputs: tuple[InputTerminal, ...] = DEFAULT_INPUTS
    default_input: str = "52"
    warmup: float = 20.0
    cooldown: float = 10.0
    speed: float = 1.0  # lamp/filter hours grow this many times faster than real time
    volume_max: int = 20
    lamp_life_hours: int = 20000  # lamp warning from then on (ERST lamp digit 1)
    native_resolution: str = "1920x1080"
    lamp_models: tuple[str, ...] = ("LMP-PB1",)
    filter_models: tuple[str, ...] = ("FLT-PB1",)

    def resolved(self) -> ProjectorConfig:
        """This config with the deterministic MAC and serial filled in where left empty."""
        return replace(self, mac=(self.mac or default_mac(self.name)).lower(),
                       serial=self.serial or default_serial(self.name))


@dataclass(frozen=True)
class SavedState:
    """What survives a restart (stored as JSON by the runtime)."""

    power: int = 0
    input: str = ""
    lamp_seconds: float = 0.0
    filter_seconds: float = 0.0
    controller: str | None = None  # IP of the last controller, for LKUP after a restart

    def to_json(self) -> dict[str, object]:
        return {"power": self.power, "input": self.input, "lamp_seconds": self.lamp_seconds,
                "filter_seconds": self.filter_seconds, "controller": self.controller}

    @classmethod
    def from_json(cls, data: object) -> SavedState:
        """Parse stored JSON; raises ValueError on anything malformed."""
        if not isinstance(data, dict):
            raise ValueError("state is not an object")
        power = data.get("power", 0)
        inp = data.get("input", "")
        lamp = data.get("lamp_seconds", 0.0)
        filt = data.get("filter_seconds", 0.0)
        controller = data.get("controller")
        if not isinstance(power, int) or power not in (0, 1, 2, 3):
            raise ValueError(f"bad power {power!r}")
        if not isinstance(inp, str) or len(inp) > 2:
            raise ValueError(f"bad input {inp!r}")
        for v in (lamp, filt):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v < 1e12:
                raise ValueError(f"bad hours {v!r}")
        if controller is not None and not isinstance(controller, str):
            raise ValueError(f"bad controller {controller!r}")
        return cls(power, inp, float(lamp), float(filt), controller)


@dataclass(frozen=True)
class Change:
    """A value a status notification reports changed: body POWR/INPT/ERST and its value."""

    body: str
    value: str


@dataclass
class _Volumes:
    speaker: int
    microphone: int


class ProjectorModel:
    """The projector's state machine; read and driven by the PJLink server and the runtime."""

    def __init__(self, config: ProjectorConfig, clock: Clock,
                 saved: SavedState | None = None) -> None:
        self.config = config.resolved()
        self._clock = clock
        self._saved = saved or SavedState()
        self._started = False
        self._power = Power.OFF
        self._deadline: float | None = None
        self._input = self.config.default_input
        self._video_mute = False
        self._audio_mute = False
        self._freeze = False
        self._volumes = _Volumes(self.config.volume_max // 2, self.config.volume_max // 2)
        self._injected: dict[ErrorKind, Level] = {k: Level.OK for k in ErrorKind}
        self._lamp_seconds = 0.0
        self._filter_seconds = 0.0
        self._last = 0.0
        self._listeners: list[Callable[[Change], None]] = []
        self._reported: dict[str, str] = {}
        self._codes = {t.code: t for t in self.config.inputs}

    # -- lifecycle and observation ------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._started:
            return
        self._started = True
        s = self._saved
        # A unit that lost power while lit comes back on; one cooling down comes back off.
        self._power = Power.ON if s.power in (Power.ON, Power.WARMING) else Power.OFF
        if s.input in self._codes:
            self._input = s.input
        self._lamp_seconds = s.lamp_seconds
        self._filter_seconds = s.filter_seconds
        self._last = self._clock()
        self._reported = self._status()

    def subscribe(self, listener: Callable[[Change], None]) -> Callable[[], None]:
        """Call `listener` with each POWR/INPT/ERST change; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def update(self) -> None:
        """Advance to now: finish warm-up/cooling whose time has come, grow lamp hours."""
        self._ensure_started()
        now = self._clock()
        while True:
            end = now if self._deadline is None else min(now, self._deadline)
            if end > self._last:
                if self._power in (Power.ON, Power.WARMING):
                    grown = (end - self._last) * self.config.speed
                    self._lamp_seconds += grown
                    self._filter_seconds += grown
                self._last = end
            if self._deadline is None or self._deadline > now:
                break
            self._deadline = None
            self._power = Power.ON if self._power is Power.WARMING else Power.OFF
        self._emit()

    def next_deadline(self) -> float | None:
        """Clock time at which the current warm-up or cooling ends, if one is running."""
        self._ensure_started()
        return self._deadline

    def _status(self) -> dict[str, str]:
        return {"POWR": str(int(self._power)), "INPT": self._input, "ERST": self._digits()}

    def _emit(self) -> None:
        status = self._status()
        for body, value in status.items():
            if self._reported.get(body) != value:
                self._reported[body] = value
                change = Change(body, value)
                log.debug("projector %s: %s=%s", self.config.name, body, value)
                for listener in list(self._listeners):
                    try:
                        listener(change)
                    except Exception:
                        log.exception("projector change listener failed")

    def saved_state(self, controller: str | None = None) -> SavedState:
        """The state to persist now."""
        self.update()
        return SavedState(int(self._power), self._input, self._lamp_seconds,
                          self._filter_seconds, controller)

    # -- reads ----------------------------------------------------------------------------

    @property
    def power(self) -> Power:
        self.update()
        return self._power

    @property
    def input(self) -> str:
        self.update()
        return self._input

    @property
    def lit(self) -> bool:
        """The lamp burns while warming up and while on."""
        return self.power in (Power.ON, Power.WARMING)

    @property
    def lamp_hours(self) -> int:
        self.update()
        return int(self._lamp_seconds // 3600)

    @property
    def filter_hours(self) -> int:
        self.update()
        return int(self._filter_seconds // 3600)

    @property
    def mute(self) -> tuple[bool, bool]:
        """(video muted, audio muted)."""
        self.update()
        return self._video_mute, self._audio_mute

    @property
    def frozen(self) -> bool:
        self.update()
        return self._freeze

    @property
    def speaker_volume(self) -> int:
        self.update()
        return self._volumes.speaker

    @property
    def microphone_volume(self) -> int:
        self.update()
        return self._volumes.microphone

    def input_terminals(self) -> tuple[InputTerminal, ...]:
        return self.config.inputs

    def input_name(self, code: str) -> str:
        """INNM (§4.17); BadParameter for an input this unit lacks."""
        terminal = self._codes.get(code.upper())
        if terminal is None:
            raise BadParameter(code)
        return terminal.name

    def errors(self) -> dict[ErrorKind, Level]:
        """Each ERST category's level: injected faults, plus a lamp warning past lamp life."""
        self.update()
        return self._levels()

    def _levels(self) -> dict[ErrorKind, Level]:
        levels = dict(self._injected)
        if self._lamp_seconds // 3600 >= self.config.lamp_life_hours:
            levels[ErrorKind.LAMP] = max(levels[ErrorKind.LAMP], Level.WARNING)
        return levels

    def error_digits(self) -> str:
        """The ERST ? answer: six digits, fan lamp temperature cover filter other (§4.7)."""
        self.update()
        return self._digits()

    def _digits(self) -> str:
        levels = self._levels()
        return "".join(str(int(levels[k])) for k in ErrorKind)

    def _fault(self) -> bool:
        return any(self._injected[k] is Level.ERROR for k in FAULTS_THAT_STOP_THE_LAMP)

    def resolution(self) -> str:
        """IRES ? (§4.18): the selected input's signal; Unavailable unless on."""
        if self.power is not Power.ON:
            raise Unavailable("no picture while not on")
        return self._codes[self._input].resolution

    # -- commands -------------------------------------------------------------------------

    def power_on(self) -> None:
        """POWR 1 (§4.1): standby → warm-up → on; OK again while warming or on."""
        self.update()
        if self._fault():
            raise Failure("a fault keeps the lamp off")
        if self._power is Power.COOLING:
            raise Unavailable("cooling down")
        if self._power is Power.OFF:
            self._start(Power.WARMING, self.config.warmup)

    def power_off(self) -> None:
        """POWR 0 (§4.1): on → cooling → standby; ERR3 during warm-up, OK when already off."""
        self.update()
        if self._power is Power.WARMING:
            raise Unavailable("warming up")
        if self._power is Power.ON:
            self._shut_down()

    def _shut_down(self) -> None:
        self._freeze = False
        self._start(Power.COOLING, self.config.cooldown)

    def _start(self, phase: Power, duration: float) -> None:
        self._power = phase
        self._deadline = self._last + max(0.0, duration)
        if duration <= 0:
            self.update()
        else:
            self._emit()

    def _require_on(self) -> None:
        self.update()
        if self._power is not Power.ON:
            raise Unavailable(f"power is {self._power.name}")

    def select_input(self, code: str) -> None:
        """INPT (§4.3): only while on; BadParameter for an input this unit lacks."""
        code = code.upper()
        if code not in self._codes:
            raise BadParameter(code)
        self._require_on()
        self._input = code
        self._emit()

    def set_mute(self, video: bool | None = None, audio: bool | None = None) -> None:
        """AVMT (§4.5): only while on."""
        self._require_on()
        if video is not None:
            self._video_mute = video
        if audio is not None:
            self._audio_mute = audio

    def set_freeze(self, frozen: bool) -> None:
        """FREZ (§4.25): only while on."""
        self._require_on()
        self._freeze = frozen

    def step_volume(self, which: str, up: bool) -> int:
        """SVOL/MVOL (§4.23-4.24): one step, clamped to 0..volume_max; still OK at the ends."""
        self._require_on()
        current = getattr(self._volumes, which)
        new = min(self.config.volume_max, current + 1) if up else max(0, current - 1)
        setattr(self._volumes, which, new)
        return new

    def set_error(self, kind: ErrorKind, level: Level) -> None:
        """Inject (or clear, with Level.OK) a fault; a lamp-stopping error shuts the lamp down."""
        self.update()
        self._injected[ErrorKind(kind)] = Level(level)
        if self._fault() and self._power in (Power.ON, Power.WARMING):
            self._shut_down()
        self._emit()

    def clear_errors(self) -> None:
        for kind in ErrorKind:
            self._injected[kind] = Level.OK
        self.update()


@dataclass
class FakeClock:
    """A clock for tests: call it for the time, `advance()` to move it."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
