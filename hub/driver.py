"""The driver SDK: everything a device driver may use from the hub, and nothing more.

A driver is one module with one `Driver` subclass, registered in the `hub.drivers` entry-point
group (built-in drivers too). It declares:

- `name`, `priority` and its typed `Options` (a pydantic model, from `[drivers.<name>]`);
- how its devices are found: mDNS `service_types`, MQTT `mqtt_discovery` topic filters, or
  its own search started from `start()`;
- `identify()`: which device an announcement is (or None: not ours), and `seen()`: use it;
- `send()`: deliver validated values; raise the errors below, never anything else on purpose.

Everything a driver learns goes through its `DriverContext` (device found, state, availability,
errors); converters (`Wire`, `Wiring`) and `Poller` do the parts every driver would otherwise copy.
See README "Writing a driver".

Claim arbitration: each announcement names a *thing* (by default the announcement itself: the
mDNS service, the MQTT topic; a driver may name it, e.g. `homie:<id>`, so that two ways of finding
one device agree). Every driver whose filter matches is asked; the highest `priority` wins. A
driver that outranks the current owner takes the thing over: the old owner is told `released()`
and the device it made is removed from the hub.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from .clock import Clock
from .model import DeviceInfo, Expose, InvalidCommand, NotNow
from .tasks import Tasks

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, bool], None]  # topic, payload, retained

__all__ = [
    "Backoff", "BrokerUnavailable", "Claim", "DeviceRejected", "DeviceTimeout", "DeviceUnreachable", "Discovered",
    "Driver", "DriverContext", "MqttSeen", "NoOptions", "NotNow", "Poller", "Priority", "Wire", "Wiring",
    "load_drivers",
]


# -- the error contract of send() ------------------------------------------------------------
# The core turns each into an HTTP status (and an MQTT set/result code). Anything else a driver
# raises is a bug in the driver: 500, logged with the traceback.

class DeviceUnreachable(Exception):
    """The command could not be delivered (refused, reset, no route): 503, and the device is
    marked offline until the driver reports it back."""


class DeviceTimeout(Exception):
    """The device took the command but did not answer in time: 504."""


class DeviceRejected(InvalidCommand):
    """The device refused the value (its own rules, stricter than the exposes): 422 naming the field."""


# NotNow (from hub.model): a valid value the device can't take in its current state: 409.


class BrokerUnavailable(Exception):
    """The MQTT broker is not connected right now; nothing was sent: 503."""


# -- announcements -----------------------------------------------------------------------------

class Priority(enum.IntEnum):
    """Who wins when several drivers claim one announcement."""

    GENERIC = 0  # speaks a convention any device may use (Homie 5)
    FAMILY = 50  # one maker's family (Shelly, Tasmota)
    SPECIFIC = 100  # one product, or a composite of several announcements (the projector and its player)


@dataclass(frozen=True, slots=True)  # kept per device: no __dict__ each
class Discovered:
    """One mDNS service as discovery resolved it (RFC 6763): TXT keys lower-cased, first wins."""

    service_type: str  # e.g. "_homie._tcp.local."
    name: str  # full instance name
    addresses: tuple[str, ...]
    port: int
    txt: Mapping[str, str] = field(default_factory=dict)
    server: str = ""

    @property
    def address(self) -> str:
        return self.addresses[0] if self.addresses else ""

    @property
    def key(self) -> str:
        return f"mdns:{self.name}"


@dataclass(frozen=True, slots=True)
class MqttSeen:
    """One message on a driver's `mqtt_discovery` filter (retained ones arrive on subscribe)."""

    topic_filter: str
    topic: str
    payload: bytes
    retained: bool = True

    @property
    def key(self) -> str:
        return f"mqtt:{self.topic}"


Seen = Discovered | MqttSeen


@dataclass(frozen=True, slots=True)
class Claim:
    """identify()'s answer when the same device can be announced more than one way."""

    device_id: str
    thing: str  # e.g. "homie:lamp-1": equal for every announcement of the same device


class NoOptions(BaseModel):
    """A driver without options: any key under its [drivers.<name>] table is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# -- what a driver is given -------------------------------------------------------------------

class Mqtt(Protocol):
    """The hub's one MQTT connection, as drivers see it."""

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Call handler for each message matching the filter (resubscribed after reconnects)."""

    def unsubscribe(self, topic_filter: str, handler: MessageHandler) -> None: ...

    async def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        """Publish; raises BrokerUnavailable when the broker is not connected."""

    @property
    def connected(self) -> bool: ...


class Host(Protocol):
    """The core's side of a DriverContext (hub.core.Hub; hub.testing.RecordingHost in tests)."""

    def device_found(self, info: DeviceInfo) -> None: ...
    def device_removed(self, device_id: str, *, by: str) -> None: ...
    def state_changed(self, device_id: str, values: Mapping[str, Any], *, by: str | None = None) -> None: ...
    def target_accepted(self, device_id: str, values: Mapping[str, Any], *, by: str | None = None) -> None: ...
    def availability_changed(self, device_id: str, online: bool, reason: str = "", *,
                             by: str | None = None) -> None: ...
    def device_error(self, device_id: str, message: str, *, by: str | None = None) -> None: ...
    def http_session(self) -> aiohttp.ClientSession: ...


class DriverContext:
    """One driver's view of the hub: its name on everything it reports, its own options, tasks,
    logger, the shared clock, MQTT link and HTTP client session."""

    def __init__(self, name: str, host: Host, *, options: BaseModel, mqtt: Mqtt, clock: Clock) -> None:
        self.name = name
        self.options = options
        self.mqtt = mqtt
        self.clock = clock
        self.log = logging.getLogger(f"hub.drivers.{name}")
        self._host = host
        self._tasks = Tasks(self._failed)
        self._closed = False

    @property
    def http(self) -> aiohttp.ClientSession:
        """The hub's shared HTTP client session (connection pool); never close it."""
        return self._host.http_session()

    # reports
    def device_found(self, info: DeviceInfo) -> None:
        """A device exists (new, or its definition/address changed). Idempotent."""
        self._host.device_found(info if info.driver == self.name else replace(info, driver=self.name))

    def device_removed(self, device_id: str) -> None:
        """The device removed itself (e.g. Homie's empty retained `$state`): the hub forgets it."""
        self._host.device_removed(device_id, by=self.name)

    def state_changed(self, device_id: str, values: Mapping[str, Any]) -> None:
        """The device reported these values (already expose values); they also confirm commands."""
        self._host.state_changed(device_id, values, by=self.name)

    def target_accepted(self, device_id: str, values: Mapping[str, Any]) -> None:
        """The device accepted these targets and is moving toward them (Homie 5 `$target`)."""
        self._host.target_accepted(device_id, values, by=self.name)

    def availability_changed(self, device_id: str, online: bool, reason: str = "") -> None:
        self._host.availability_changed(device_id, online, reason, by=self.name)

    def device_error(self, device_id: str, message: str) -> None:
        """The device sent something unusable; shown on the device, logged once."""
        self._host.device_error(device_id, message, by=self.name)

    def report(self, device_id: str, wiring: Wiring, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Decode the device's own values through `wiring` and report them; garbage is reported
        as a device error and dropped. Returns what was reported."""
        values, problems = wiring.decode(raw)
        for problem in problems:
            self.device_error(device_id, problem)
        if values:
            self.state_changed(device_id, values)
        return values

    # tasks
    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Run a background task owned by this driver: cancelled after its stop(), errors logged."""
        if self._closed:
            if asyncio.iscoroutine(coro):
                coro.close()
            raise RuntimeError(f"driver {self.name} is stopped")
        return self._tasks.spawn(coro, f"{self.name}:{name}")

    def _failed(self, task: asyncio.Task[Any], exc: BaseException) -> None:
        self.log.error("task %s failed: %r", task.get_name(), exc, exc_info=exc)

    async def aclose(self) -> None:
        """Cancel what the driver left running (the core calls this after driver.stop())."""
        self._closed = True
        await self._tasks.cancel()


# -- the driver ---------------------------------------------------------------------------------

class Driver:
    """Base class of a driver. Subclasses set the class attributes and override what they need."""

    name: ClassVar[str] = ""
    priority: ClassVar[int] = Priority.FAMILY
    service_types: ClassVar[tuple[str, ...]] = ()  # mDNS types to be offered, e.g. "_shelly._tcp.local."
    mqtt_discovery: ClassVar[tuple[str, ...]] = ()  # topic filters to be offered, e.g. "homie/5/+/$state"
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    @property
    def options(self) -> Any:
        return self.ctx.options

    async def start(self) -> None:
        """Start background work (subscriptions, searches). Called once before any offer."""

    async def stop(self) -> None:
        """Undo start(): close sockets and unsubscribe (tasks from ctx.spawn are cancelled after)."""

    def identify(self, seen: Seen) -> str | Claim | None:
        """The device this announcement is, or None if it isn't this driver's.

        Raise ValueError with a reason for one that claims to be ours but is unusable (junk TXT,
        a discovery message that isn't JSON): the core logs it once and ignores it.
        """
        return None

    async def seen(self, device_id: str, seen: Seen) -> None:
        """An announcement identified as `device_id`, which this driver won, appeared or changed."""

    async def gone(self, device_id: str) -> None:
        """The mDNS service said goodbye or expired; by default the device goes offline."""
        self.ctx.availability_changed(device_id, False, "mDNS goodbye")

    async def released(self, device_id: str) -> None:
        """A driver of higher priority took this device over: stop reporting it."""

    async def send(self, device_id: str, values: Mapping[str, Any]) -> None:
        """Deliver validated values; confirmation comes later through state_changed.

        Raise DeviceUnreachable, DeviceTimeout, DeviceRejected or NotNow (see the error contract).
        """
        raise NotImplementedError


def load_drivers(group: str = "hub.drivers") -> dict[str, type[Driver]]:
    """All installed drivers, by entry-point name. A broken driver is logged and skipped."""
    found: dict[str, type[Driver]] = {}
    for ep in entry_points(group=group):
        try:
            cls = ep.load()
        except Exception:
            log.exception("driver %s (%s) failed to load; skipped", ep.name, ep.value)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Driver)):
            log.error("entry point %s -> %s is not a hub.driver.Driver; skipped", ep.name, ep.value)
            continue
        found[ep.name] = cls
    return found


# -- converters: expose <-> the device's own property ----------------------------------------------

def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Wire:
    """One expose and the device property it is: `key` in the device's own terms, and how a
    value crosses in each direction. `from_device` may raise ValueError/TypeError/KeyError on
    garbage; the result is checked against the expose before anyone sees it."""

    expose: Expose
    key: str
    to_device: Callable[[Any], Any] = _same
    from_device: Callable[[Any], Any] = _same


class Wiring:
    """A device's exposes as a table of wires: the SDK encodes commands and decodes reports."""

    __slots__ = ("wires", "_by_expose", "_by_key", "exposes")

    def __init__(self, wires: Iterable[Wire]) -> None:
        self.wires = tuple(wires)
        self._by_expose = {w.expose.name: w for w in self.wires}
        self._by_key = {w.key: w for w in self.wires}
        if len(self._by_expose) != len(self.wires):
            raise ValueError("two wires for one expose")
        self.exposes = tuple(w.expose for w in self.wires)

    def __bool__(self) -> bool:
        return bool(self.wires)

    def wire(self, expose_name: str) -> Wire:
        return self._by_expose[expose_name]

    def encode(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Validated expose values → {device key: device value}. A value the converter can't
        express is the device's refusal: DeviceRejected naming the field."""
        out: dict[str, Any] = {}
        for name, value in values.items():
            wire = self._by_expose.get(name)
            if wire is None:
                raise DeviceRejected(name, "the device has no such property")
            try:
                out[wire.key] = wire.to_device(value)
            except (ValueError, TypeError, KeyError) as e:
                raise DeviceRejected(name, f"the device can't take {value!r} ({e})") from None
        return out

    def decode(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """{device key: device value} → (expose values, problems). Keys without a wire are skipped."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for key, value in raw.items():
            wire = self._by_key.get(key)
            if wire is None:
                continue
            try:
                values[wire.expose.name] = wire.expose.validate(wire.from_device(value))
            except (ValueError, TypeError, KeyError) as e:  # InvalidCommand is a ValueError
                problems.append(f"dropped a bad {key} value {str(value)[:40]!r}: {e}")
        return values, problems


# -- polling and reconnecting -----------------------------------------------------------------------

class Backoff:
    """Exponential retry delays with jitter: initial, doubled, capped; reset on success."""

    def __init__(self, initial: float = 1.0, maximum: float = 60.0, jitter: float = 0.1,
                 rng: random.Random | None = None) -> None:
        self.initial, self.maximum, self.jitter = initial, maximum, jitter
        self._rng = rng or random.Random()
        self._next = initial

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.maximum)
        # jitter spreads a houseful of devices that failed together (one Wi-Fi drop) over time
        return delay * (1 + self.jitter * (2 * self._rng.random() - 1))

    def reset(self) -> None:
        self._next = self.initial


class Poller:
    """Keeps one device's link alive: calls `poll()` every `interval` seconds (or the delay it
    returns), backs off with jitter while it raises DeviceUnreachable, reports online/offline on
    each change, and wakes early on `wake()` (a command, a push notification, an mDNS change).

    Any other exception from poll() is a driver bug: logged, backed off, the loop lives on.
    """

    def __init__(self, ctx: DriverContext, device_id: str, poll: Callable[[], Awaitable[float | None]], *,
                 interval: float = 30.0, backoff: tuple[float, float] = (1.0, 60.0), jitter: float = 0.1) -> None:
        self.ctx = ctx
        self.device_id = device_id
        self._poll = poll
        self.interval = interval
        self.backoff = Backoff(*backoff, jitter=jitter)
        self.online: bool | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = self.ctx.spawn(self._run(), f"poll-{self.device_id}")

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def set_online(self, online: bool, reason: str = "") -> None:
        """Report a change of availability (also for what the driver learns outside poll())."""
        if self.online is not online:
            self.online = online
            self.ctx.availability_changed(self.device_id, online, reason)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                delay = await self._poll()
                self.backoff.reset()
                self.set_online(True)
                delay = self.interval if delay is None else delay
            except DeviceUnreachable as e:
                self.set_online(False, str(e))
                delay = self.backoff.next()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.ctx.log.exception("%s: poll failed", self.device_id)
                delay = self.backoff.next()
            if (me := asyncio.current_task()) is not None and me.cancelling():
                # stop() cancelled us but poll() swallowed it (asyncio.wait_for does before 3.12)
                raise asyncio.CancelledError
            await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        """The clock's sleep, cut short by wake()."""
        if self._wake.is_set():
            return
        sleeper = asyncio.ensure_future(self.ctx.clock.sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
