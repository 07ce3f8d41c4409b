"""A driver as the hub runs it, on a scenario: the hub's own DriverHost (options, contexts, claim
arbitration) with a RecordingHost for the hub and an in-memory broker that behaves like one.

This is what `hub.conformance` drives; a test may use it directly:

    async with harness(spec, scenario) as h:
        await h.play()                      # the device's retained messages and mDNS services
        device_id = await h.ready()         # found, online, with the command's exposes
        await h.command(device_id)          # send() and wait for the device's confirmation
    assert report_problems(h.recorder.reports, spec.name) == []
"""

from __future__ import annotations

import asyncio
import re
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from .clock import SystemClock
from .driver import Discovered, Driver
from .driver_host import DriverHost
from .model import Access, DeviceInfo, valid_device_id
from .tasks import Tasks
from .testing import FakeMqtt, RecordingHost
from .topics import topic_matches

__all__ = ["Conformance", "Harness", "Scenario", "ScenarioMqtt", "echo_set", "harness", "report_problems", "running"]

EXPOSE_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")  # JSON keys, MQTT/HA object ids, UI element ids


@dataclass(frozen=True)
class Scenario:
    """How a device appears, and how it answers."""

    mdns: Sequence[Discovered] = ()  # services, offered to the driver if it declared their type
    mqtt: Sequence[tuple[str, bytes | str]] = ()  # retained messages the device has published
    respond: Callable[[str, bytes], Iterable[tuple[str, bytes | str]]] | None = None  # replies to a publish
    junk: Callable[[Driver, bytes], Awaitable[None]] | None = None  # another way in (a UDP port): garbage goes there too


def echo_set(topic: str, payload: bytes) -> list[tuple[str, bytes]]:
    """A device that confirms `<prop>/set` by publishing the value on `<prop>` (Homie 5 style)."""
    return [(topic.removesuffix("/set"), payload)] if topic.endswith("/set") else []


ScenarioSource = Scenario | Callable[[], AbstractAsyncContextManager[Scenario]]


@dataclass(frozen=True)
class Conformance:
    """One driver under test: the class, its options, a scenario and a command to confirm."""

    driver: type[Driver]
    scenario: ScenarioSource
    command: Mapping[str, Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    device_id: str | None = None  # the device to command; default: the first the driver found
    timeout: float = 10.0  # for the device to appear, and for the command's confirmation
    max_lag: float = 0.1  # the longest the driver may hold the event loop, seconds
    examples: int = 150  # pieces of garbage hypothesis feeds it

    @property
    def name(self) -> str:
        return self.driver.name


# -- the in-memory broker ----------------------------------------------------------------------------

class ScenarioMqtt(FakeMqtt):
    """FakeMqtt that behaves like a broker: retained messages reach late subscribers, the driver's
    own publishes come back to its subscriptions, the device answers through `respond`, and
    every delivery happens on a later loop turn. A handler that raises is recorded, not re-raised."""

    def __init__(self, respond: Callable[[str, bytes], Iterable[tuple[str, bytes | str]]] | None = None) -> None:
        super().__init__()
        self.retained: dict[str, bytes] = {}
        self.respond = respond
        self.crashes: list[str] = []

    def subscribe(self, topic_filter: str, handler: Any) -> None:
        super().subscribe(topic_filter, handler)
        asyncio.get_running_loop().call_soon(self._retained_to, topic_filter, handler)

    def _retained_to(self, topic_filter: str, handler: Any) -> None:
        if (topic_filter, handler) not in self.handlers:
            return
        for topic, payload in list(self.retained.items()):
            if topic_matches(topic_filter, topic):
                self._call(handler, topic, payload, True)

    def device_publishes(self, topic: str, payload: bytes | str, retain: bool = True) -> None:
        """The device (or any other client) publishes: stored if retained, delivered to subscribers."""
        data = payload.encode() if isinstance(payload, str) else payload
        if retain:
            if data:
                self.retained[topic] = data
            else:
                self.retained.pop(topic, None)  # MQTT 3.1.1 §3.3.1.3: an empty retained message clears
        self.inject(topic, data, retain)

    def inject(self, topic: str, payload: bytes | str, retained: bool = True) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        for topic_filter, handler in list(self.handlers):
            if topic_matches(topic_filter, topic):
                self._call(handler, topic, data, retained)

    def _call(self, handler: Any, topic: str, payload: bytes, retained: bool) -> None:
        try:
            handler(topic, payload, retained)
        except Exception:
            self.crashes.append(f"handler for {topic!r} raised on {payload[:60]!r}:\n{traceback.format_exc()}")

    async def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        await super().publish(topic, payload, qos=qos, retain=retain)
        data = payload.encode() if isinstance(payload, str) else payload
        loop = asyncio.get_running_loop()
        loop.call_soon(self.device_publishes, topic, data, retain)  # the broker echoes it to every subscriber
        for reply_topic, reply in (self.respond(topic, data) if self.respond else ()):
            loop.call_soon(self.device_publishes, reply_topic, reply)


# -- one driver inside the hub's DriverHost ------------------------------------------------------------

class Harness:
    """The driver as the hub runs it: DriverHost, a RecordingHost, the scenario's broker."""

    def __init__(self, spec: Conformance, scenario: Scenario) -> None:
        self.spec = spec
        self.scenario = scenario
        self.recorder = RecordingHost()
        self.mqtt = ScenarioMqtt(scenario.respond)
        self.logged: list[str] = []  # what the host logged once (identify's ValueErrors, bad ids)
        self.crashes: list[str] = []  # exceptions out of offers, seen() and the driver's tasks
        self._offers = Tasks(self._crashed)
        self._target: str | None = None
        self._loop_handler: Any = None
        self.host = DriverHost(self.recorder, self.mqtt, SystemClock(), {spec.name: dict(spec.options)},
                               lambda key, message: self.logged.append(message), self._spawn)

    @property
    def driver(self) -> Driver:
        return self.host.drivers[self.spec.name]

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        return self._offers.spawn(coro, f"conformance:{name}")

    def _crashed(self, task: asyncio.Task[Any], exc: BaseException) -> None:
        self.crashes.append(f"task {task.get_name()}: " + "".join(traceback.format_exception(exc)))

    async def start(self) -> None:
        self.host.create({self.spec.name: self.spec.driver})
        tasks = self.host.contexts[self.spec.name]._tasks
        logged = tasks.on_error

        def crashed(task: asyncio.Task[Any], exc: BaseException) -> None:  # a dead driver task is a crash
            logged(task, exc)
            self._crashed(task, exc)
        tasks.on_error = crashed
        loop = asyncio.get_running_loop()
        self._loop_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_error)
        await self.host.start(self.spec.name)
        self.host.subscribe_discovery()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """What reached the loop's handler (a protocol's callback that raised, say) is a crash too."""
        exc = context.get("exception")
        detail = "".join(traceback.format_exception(exc)) if exc is not None else ""
        self.crashes.append(f"{context.get('message', 'loop error')}: {detail}")

    async def stop(self) -> None:
        self.host.unsubscribe_discovery()
        await self.settle()
        try:
            await self.host.stop(self.spec.name)
        finally:
            asyncio.get_running_loop().set_exception_handler(self._loop_handler)
            if self.recorder._http is not None:
                await self.recorder._http.close()

    async def settle(self) -> None:
        """Let queued deliveries run and the offers they started finish."""
        for _ in range(3):
            await asyncio.sleep(0)
            await self._offers.wait()

    async def play(self, scenario: Scenario | None = None) -> None:
        """The device announces itself: its retained messages, then its mDNS services."""
        scenario = scenario or self.scenario
        for topic, payload in scenario.mqtt:
            self.mqtt.device_publishes(topic, payload)
        await self.settle()
        for service in scenario.mdns:
            await self.offer(service)
        await self.settle()

    async def offer(self, service: Discovered) -> None:
        try:
            await self.host.on_mdns(service)
        except Exception:
            self.crashes.append(f"offering {service.name!r}:\n{traceback.format_exc()}")

    async def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        changed = self.recorder._changed

        async def until() -> Any:
            while not (result := predicate()):
                changed.clear()
                await changed.wait()
            return result
        try:
            return await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.spec.name}: no {what} within {timeout} s; "
                                 f"reports so far: {self.recorder.reports[-8:]}") from None

    def target(self) -> str:
        """The device to command: the spec's, else the first found (kept, whatever garbage adds later)."""
        if self._target is None:
            self._target = self.spec.device_id or next(iter(self.recorder.devices), None)
        return self._target or ""

    async def ready(self) -> str:
        """Wait for the device to be found, online and able to take the command; its id."""
        def ok() -> bool:
            info = self.recorder.devices.get(self.target())
            return (info is not None and self.recorder.online.get(info.id) is True
                    and all(info.expose(k) is not None for k in self.spec.command))
        await self.wait_for(ok, self.spec.timeout, f"device online with exposes {sorted(self.spec.command)}")
        return self.target()

    async def command(self, device_id: str) -> None:
        """send() the command and wait until the device confirms every value (state or target)."""
        info = self.recorder.devices[device_id]
        want = {k: info.expose(k).validate(v) for k, v in self.spec.command.items()}  # type: ignore[union-attr]
        mark = len(self.recorder.reports)
        await self.driver.send(device_id, want)
        seen: dict[str, Any] = {}

        def confirmed() -> bool:
            for kind, dev, payload in self.recorder.reports[mark:]:
                if dev == device_id and kind in ("state", "target"):
                    seen.update({k: v for k, v in payload.items() if k in want and v == want[k]})
            return seen.keys() == want.keys()
        await self.wait_for(confirmed, self.spec.timeout, f"confirmation of {want} on {device_id}")


@asynccontextmanager
async def running(spec: Conformance) -> AsyncIterator[Scenario]:
    """The spec's scenario, started (a simulator) or as given."""
    if isinstance(spec.scenario, Scenario):
        yield spec.scenario
    else:
        async with spec.scenario() as scenario:
            yield scenario


@asynccontextmanager
async def harness(spec: Conformance, scenario: Scenario) -> AsyncIterator[Harness]:
    h = Harness(spec, scenario)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


def report_problems(reports: Iterable[tuple[str, str, Any]], driver: str) -> list[str]:
    """Everything a driver reported that breaks the exposes contract, in order of the reports."""
    problems: list[str] = []
    known: dict[str, DeviceInfo] = {}
    for kind, device_id, payload in reports:
        if kind == "found":
            info: DeviceInfo = payload
            if not valid_device_id(info.id):
                problems.append(f"device id {info.id!r} is not valid (lowercase letters, digits, - and _)")
            if info.driver != driver:
                problems.append(f"{info.id}: driver {info.driver!r}, not {driver!r}")
            names = [e.name for e in info.exposes]
            problems += [f"{info.id}: expose name {n!r} is not valid ({EXPOSE_NAME.pattern})"
                         for n in names if not EXPOSE_NAME.match(n)]
            problems += [f"{info.id}: expose {n!r} declared twice" for n in sorted({n for n in names if names.count(n) > 1})]
            known[info.id] = info
            continue
        if kind == "removed":
            known.pop(device_id, None)
            continue
        info = known.get(device_id)  # type: ignore[assignment]
        if info is None:
            problems.append(f"{kind} reported on {device_id!r} while the hub does not know it (never found, or removed): the hub drops it: {payload!r}"[:300])
            continue
        if kind not in ("state", "target"):
            continue
        for key, value in payload.items():
            expose = info.expose(key)
            if expose is None:
                problems.append(f"{device_id}: {kind} {key}={value!r} is not a declared expose"[:300])
                continue
            if kind == "target" and not expose.access & Access.SET:
                problems.append(f"{device_id}: target for read-only {key}")
            try:
                normal = expose.validate(value)
            except ValueError as e:
                problems.append(f"{device_id}: {kind} {key}={value!r} fails its expose: {e}"[:300])
                continue
            if normal != value or type(normal) is not type(value):
                problems.append(f"{device_id}: {kind} {key}={value!r} is not normalised (expose says {normal!r})")
    return problems
