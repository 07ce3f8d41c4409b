"""The driver conformance kit: a pytest plugin that runs the hub's generic checks on any driver.

Activate it (`pytest -p hub.conformance`, or `pytest_plugins = ["hub.conformance"]` in your root
conftest.py), then declare your driver in a test module with a fixture named `conformance`:

    import pytest
    from hub.conformance import Conformance, Scenario, echo_set

    @pytest.fixture
    def conformance() -> Conformance:
        return Conformance(
            AcmeDriver,
            options={"password": "pw"},                       # its [drivers.acme] table
            scenario=Scenario(mqtt=[("acme/plug-1/config", '{"id": "plug-1"}')],  # retained messages
                              respond=echo_set),              # how the device answers commands
            command={"on": True},                             # one command it must confirm
        )

The plugin adds `TestConformance` to that module: one test per rule, each named for it (a sane
declaration; every reported value a declared expose's; ids valid and stable over a restart; the
command confirmed; the send() error contract for an unknown device; unknown options refused by
name; nothing left running after stop(); the loop never stalled; garbage survived). Parametrize
the fixture to check several drivers from one module (tests/test_conformance.py does).

A scenario is how a device appears: mDNS services (`hub.testing.discovered`) offered as the hub
would, retained MQTT messages on an in-memory broker (delivered to every subscription, the
driver's discovery filters included, and the driver's own publishes echoed back, as Mosquitto
does), `respond(topic, payload)` giving the messages the device publishes in reply, and `junk`
for another way in (a UDP port) that garbage should reach. For a real device or a simulator,
pass an async context manager factory that starts it and yields the Scenario; it runs around
each check.

The driver runs inside the hub's own `DriverHost` (options, contexts, claim arbitration) with a
`hub.testing.RecordingHost` for the hub (`hub.scenario`), on a private event loop per check: the
kit needs no pytest-asyncio mode. Garbage is drawn by hypothesis (installed with the hub's test
extras) with a fixed seed; `HUB_FUZZ_SEED=<n>` explores others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest

from .clock import SystemClock
from .config import ConfigError
from .driver import (
    BrokerUnavailable, DeviceRejected, DeviceTimeout, DeviceUnreachable, Discovered, Driver, NotNow,
)
from .driver_host import DriverHost
from .model import valid_device_id
from .scenario import Conformance, Harness, Scenario, echo_set, harness, report_problems, running
from .testing import FakeMqtt, RecordingHost

__all__ = ["CONTRACT_ERRORS", "Conformance", "Scenario", "TestConformance", "echo_set", "report_problems"]

CONTRACT_ERRORS = (DeviceUnreachable, DeviceTimeout, DeviceRejected, NotNow, BrokerUnavailable)
FIXTURE = "conformance"


def _fail_on(h: Harness, what: str) -> None:
    crashes = h.crashes + h.mqtt.crashes
    assert not crashes, f"{h.spec.name} raised {what}:\n" + "\n".join(crashes[:3])


# -- the checks -----------------------------------------------------------------------------------

def _run(coro: Any, *, debug: bool = False) -> Any:
    with asyncio.Runner(debug=debug) as runner:
        return runner.run(coro)


class TestConformance:
    """The hub's rules for every driver; the module's `conformance` fixture names the driver."""

    def test_declaration(self, conformance: Conformance) -> None:
        """Name, priority, mDNS types and MQTT filters are well formed."""
        cls = conformance.driver
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,31}", cls.name or ""), f"name {cls.name!r}: lowercase, digits, _"
        assert isinstance(cls.priority, int)
        for t in cls.service_types:
            assert re.fullmatch(r"_[a-z0-9-]+\._(tcp|udp)\.local\.", t), f"service type {t!r} (RFC 6763 §7)"
        for f in cls.mqtt_discovery:
            levels = f.split("/")
            assert f and "#" not in levels[:-1] and all(lv in ("+", "#") or not set("+#") & set(lv) for lv in levels), \
                f"topic filter {f!r} (MQTT 3.1.1 §4.7)"

    def test_exposes_cover_every_reported_value(self, conformance: Conformance) -> None:
        """Each state or target value is a declared expose's, valid and normalised; ids are valid."""
        async def check() -> None:
            async with running(conformance) as scenario, harness(conformance, scenario) as h:
                await h.play()
                device_id = await h.ready()
                await h.command(device_id)
                await h.settle()
            _fail_on(h, "while playing the scenario")
            assert h.recorder.devices or h.recorder.removed, "the scenario found no device"
            problems = report_problems(h.recorder.reports, conformance.name)
            assert not problems, "\n".join(problems[:10])
        _run(check())

    def test_device_ids_are_stable_across_a_restart(self, conformance: Conformance) -> None:
        """A restarted driver finds the same devices under the same ids."""
        async def check() -> None:
            async with running(conformance) as scenario:
                ids = []
                for _ in range(2):
                    async with harness(conformance, scenario) as h:
                        await h.play()
                        await h.ready()
                        ids.append(sorted(h.recorder.devices))
                assert ids[0] == ids[1]
                assert all(valid_device_id(i) for i in ids[0]), ids[0]
        _run(check())

    def test_command_is_confirmed(self, conformance: Conformance) -> None:
        """send() returns, and the device's confirmation arrives through state_changed or target_accepted."""
        async def check() -> None:
            async with running(conformance) as scenario, harness(conformance, scenario) as h:
                await h.play()
                device_id = await h.ready()
                await asyncio.wait_for(h.command(device_id), conformance.timeout * 2)
            _fail_on(h, "around the command")
        _run(check())

    def test_send_to_an_unknown_device_keeps_the_error_contract(self, conformance: Conformance) -> None:
        """An id the driver never found raises a contract error (503/504/422/409), not a bug (500)."""
        async def check() -> None:
            async with running(conformance) as scenario, harness(conformance, scenario) as h:
                await h.play()
                await h.ready()
                try:
                    await asyncio.wait_for(h.driver.send("no-such-device-0", dict(conformance.command)),
                                           conformance.timeout)
                except CONTRACT_ERRORS:
                    pass
                except Exception as e:
                    raise AssertionError(f"send() to an unknown device raised {e!r}: not one of "
                                         f"{', '.join(c.__name__ for c in CONTRACT_ERRORS)} (the hub answers 500)") from e
                else:
                    raise AssertionError("send() to an unknown device returned as if it were delivered")
        _run(check())

    def test_unknown_option_is_rejected_by_name(self, conformance: Conformance) -> None:
        """The spec's options pass; an unknown key fails the start, naming drivers.<name>.<key>."""
        name = conformance.name
        recorder = RecordingHost()

        def host(options: Mapping[str, Any]) -> DriverHost:
            return DriverHost(recorder, FakeMqtt(), SystemClock(), {name: options}, lambda k, m: None,
                              lambda c, n: None)  # type: ignore[arg-type,return-value]
        host(dict(conformance.options)).create({name: conformance.driver})
        with pytest.raises(ConfigError) as err:
            host({**conformance.options, "no_such_option": 1}).create({name: conformance.driver})
        assert f"drivers.{name}.no_such_option" in str(err.value)

    def test_stop_leaves_nothing_running(self, conformance: Conformance) -> None:
        """After stop(): no task of the driver's, no MQTT subscription, no socket or file left open."""
        async def check() -> None:
            async with running(conformance) as scenario:
                await asyncio.sleep(0)
                tasks_before = asyncio.all_tasks()
                fds_before = _open_fds()
                async with harness(conformance, scenario) as h:
                    await h.play()
                    device_id = await h.ready()
                    await h.command(device_id)
                await asyncio.sleep(0)
                left = [t for t in asyncio.all_tasks() - tasks_before if t is not asyncio.current_task()]
                assert not left, f"tasks still running after stop: {[t.get_name() for t in left]}"
                assert h.mqtt.handlers == [], f"still subscribed after stop: {[f for f, _ in h.mqtt.handlers]}"
                if fds_before is not None:
                    opened = _open_fds() - fds_before  # type: ignore[operator]
                    assert not opened, f"left open after stop: {sorted(opened)}"
        _run(check())

    def test_never_blocks_the_loop(self, conformance: Conformance) -> None:
        """No callback holds the loop longer than max_lag while the device appears and is commanded.

        A blocking call stalls every run; a busy machine rarely twice in a row: one more run decides."""
        async def stalls() -> list[str]:
            loop = asyncio.get_running_loop()
            loop.slow_callback_duration = conformance.max_lag
            slow: list[str] = []
            asyncio_log = logging.getLogger("asyncio")
            async with running(conformance) as scenario:  # a simulator's start-up is not the driver's
                handler = _Collect(slow)
                asyncio_log.addHandler(handler)
                try:
                    async with _lag_probe() as lag, harness(conformance, scenario) as h:
                        await h.play()
                        device_id = await h.ready()
                        await h.command(device_id)
                finally:
                    asyncio_log.removeHandler(handler)
            if lag.worst >= conformance.max_lag:
                slow.append(f"the loop stalled for {lag.worst * 1000:.0f} ms")
            return slow
        slow = _run(stalls(), debug=True)
        if slow:
            slow = _run(stalls(), debug=True)
        assert not slow, "\n".join(slow[:5])

    def test_survives_garbage(self, conformance: Conformance) -> None:
        """Junk TXT records and MQTT payloads (on its discovery filters and its devices' topics)
        never raise out of a handler or leak into state, and the device still works after."""
        from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: PLC0415

        async def setup(h: Harness) -> None:
            await h.play()
            await h.command(await h.ready())

        with asyncio.Runner() as runner:
            async def enter() -> tuple[contextlib.AsyncExitStack, Harness]:
                stack = contextlib.AsyncExitStack()
                scenario = await stack.enter_async_context(running(conformance))
                h = await stack.enter_async_context(harness(conformance, scenario))
                await setup(h)
                return stack, h
            stack, h = runner.run(enter())
            try:
                topics = _topics(h)
                junk = _junk(st, conformance.driver, topics, h.scenario)

                @settings(max_examples=conformance.examples, deadline=None, database=None, report_multiple_bugs=False,
                          suppress_health_check=list(HealthCheck))
                @given(junk)
                def feed(pieces: list[Any]) -> None:
                    h.crashes.clear()
                    h.mqtt.crashes.clear()
                    runner.run(_feed(h, pieces))
                    _fail_on(h, f"on garbage {pieces!r}"[:2000])

                seed = int(os.environ.get("HUB_FUZZ_SEED", "0"))
                from hypothesis import seed as with_seed  # noqa: PLC0415
                try:
                    with_seed(seed)(feed)()
                except AssertionError:
                    raise
                except Exception as e:  # Flaky: what broke it was left by earlier garbage (one driver for all)
                    raise AssertionError(f"{_first_assertion(e)}\n(after earlier garbage: {e})") from e
                problems = report_problems(h.recorder.reports, conformance.name)
                assert not problems, "\n".join(problems[:10])

                async def still_works() -> None:
                    await h.play()  # the device speaks sanely again: the driver must follow
                    await h.command(await h.ready())
                runner.run(still_works())
                _fail_on(h, "after the garbage")
            finally:
                runner.run(stack.aclose())


def _first_assertion(e: BaseException) -> str:
    if isinstance(e, AssertionError):
        return str(e)
    for sub in getattr(e, "exceptions", ()):
        if found := _first_assertion(sub):
            return found
    return ""


async def _feed(h: Harness, pieces: list[Any]) -> None:
    for piece in pieces:
        if isinstance(piece, Discovered):
            await h.offer(piece)
        elif piece[0] == "gone":
            await h.host.on_mdns_gone(piece[1], piece[2])
        elif piece[0] == "raw" and h.scenario.junk is not None:
            await h.scenario.junk(h.driver, piece[1])
        else:
            _, topic, payload, retain = piece
            h.mqtt.device_publishes(topic, payload, retain)
    await h.settle()


def _topics(h: Harness) -> list[str]:
    """Where garbage goes: the scenario's topics, the driver's discovery filters and subscriptions
    made concrete, and what the driver published to (its own commands, echoed back)."""
    found = {t for t, _ in h.scenario.mqtt} | {t for t, _ in h.mqtt.published}
    filters = set(h.driver.mqtt_discovery) | {f for f, _ in h.mqtt.handlers}
    ids = sorted(h.recorder.devices) or ["x"]
    for f in filters:
        found.add(f.replace("+", ids[0]).replace("#", "junk"))
        found.add(f.replace("+", "junk-1").replace("#", "a/b"))
    return sorted(found)


def _junk(st: Any, cls: type[Driver], topics: list[str], scenario: Scenario) -> Any:
    """A list of announcements, goodbyes, messages and raw bytes a hostile or broken LAN could send."""
    text = st.text(max_size=40)
    payload = st.one_of(
        st.binary(max_size=64), text.map(str.encode),
        st.sampled_from([b"", b"\x00", b"null", b"[]", b"{}", b"-1", b"1e999", b"nan", b"true", b"\xff\xfe",
                         b"x" * 70_000, b'{"a": ' * 200]),
        st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | text,
                     lambda kids: st.lists(kids, max_size=4) | st.dictionaries(text, kids, max_size=4),
                     max_leaves=8).map(lambda v: _json(v)),
    )
    message = st.tuples(st.just("mqtt"), st.sampled_from(topics), payload, st.booleans()) if topics else st.nothing()
    raw = st.tuples(st.just("raw"), st.binary(min_size=1, max_size=200)) if scenario.junk else st.nothing()
    txt_keys = sorted({k for d in scenario.mdns for k in d.txt}) or ["id"]
    txt = st.dictionaries(st.sampled_from(txt_keys) | text.map(str.lower), text | st.sampled_from(["", "\x00", "x" * 300]),
                          max_size=6)
    types = list(cls.service_types)
    services = st.nothing()
    if types:
        services = st.builds(
            lambda t, name, tx, port, base: replace(base, service_type=t, name=f"{name}.{t}", txt=tx, port=port)
            if base is not None else Discovered(t, f"{name}.{t}", ("127.0.0.1",), port, tx),
            st.sampled_from(types), text, txt, st.integers(0, 65535),
            st.sampled_from([None, *scenario.mdns]),
        )
        # the scenario's own service with one TXT value spoiled, or saying goodbye
        for d in scenario.mdns:
            services = services | st.builds(lambda k, v, d=d: replace(d, txt={**d.txt, k: v}),
                                            st.sampled_from(sorted(d.txt) or ["id"]), text)
    goodbyes = st.sampled_from([("gone", d.service_type, d.name) for d in scenario.mdns]) if scenario.mdns else st.nothing()
    return st.lists(st.one_of(message, message, message, services, goodbyes, raw), min_size=1, max_size=8)


def _json(value: Any) -> bytes:
    import json  # noqa: PLC0415
    return json.dumps(value, allow_nan=True).encode()


def _open_fds() -> set[str] | None:
    """This process's open sockets and files (Linux), None where /proc can't tell."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    out = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            out.add(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
    return out


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing"):  # asyncio debug mode: "Executing <Handle ...> took 0.2 seconds"
            self.into.append(message)


@dataclass
class _Lag:
    worst: float = 0.0


@asynccontextmanager
async def _lag_probe(period: float = 0.005) -> AsyncIterator[_Lag]:
    """A ticker: how late each of its wake-ups came is how long something else held the loop."""
    lag = _Lag()
    loop = asyncio.get_running_loop()

    async def tick() -> None:
        while True:
            t0 = loop.time()
            await asyncio.sleep(period)
            lag.worst = max(lag.worst, loop.time() - t0 - period)
    task = loop.create_task(tick(), name="conformance:lag-probe")
    try:
        yield lag
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- the plugin -------------------------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> Any:
    """A test module that defines the `conformance` fixture gets the checks as `TestConformance`."""
    if name == FIXTURE and isinstance(collector, pytest.Module) and _is_fixture(obj):
        module = collector.obj
        if hasattr(module, "TestConformance"):
            return None  # imported or defined there: pytest collects it by its name already
        module.TestConformance = type("TestConformance", (TestConformance,), {"__module__": module.__name__})
        return pytest.Class.from_parent(collector, name="TestConformance")
    return None


def _is_fixture(obj: Any) -> bool:
    return type(obj).__name__ == "FixtureFunctionDefinition" or hasattr(obj, "_pytestfixturefunction")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: the hub's generic driver checks (hub.conformance)")

