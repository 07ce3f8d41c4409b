"""The driver SDK's own rules: claims by priority, typed options, a driver's name on what it
reports, converters, the poller, and the error contract as a user sees it over REST."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from pydantic import BaseModel, ConfigDict, SecretStr

from hub.broker import Broker
from hub.clock import FakeClock
from hub.config import ConfigError
from hub.driver import (
    Claim, DeviceRejected, DeviceTimeout, DeviceUnreachable, Discovered, Driver, DriverContext, MqttSeen, NoOptions,
    Poller, Priority, Wire, Wiring,
)
from hub.driver_host import DriverHost
from hub.model import Access, Binary, DeviceInfo, NotNow, Numeric
from hub.service import running_hub
from hub.accounts import create_token, create_user
from hub.testing import FakeMqtt, RecordingHost, discovered, driver_context
from tests.conftest import hub_config, until

# -- claims -----------------------------------------------------------------------------------------


class Recorder(Driver):
    """Claims `x/<id>/state` messages (or `_x._tcp` services) as thing `x:<id>` and notes what it is told."""

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        self.seen_ids: list[str] = []
        self.released_ids: list[str] = []

    def identify(self, seen: Discovered | MqttSeen) -> Claim | None:
        if isinstance(seen, MqttSeen):
            if seen.payload == b"junk":
                raise ValueError("junk payload")
            thing = seen.topic.split("/")[1]
        elif seen.service_type in self.service_types:
            thing = seen.txt["id"]
        else:
            return None
        return Claim(self.device_id(thing), "x:" + thing)

    def device_id(self, thing: str) -> str:
        return thing

    async def seen(self, device_id: str, seen: Any) -> None:
        self.seen_ids.append(device_id)
        self.ctx.device_found(DeviceInfo(id=device_id, name=device_id, driver=self.name, exposes=()))

    async def released(self, device_id: str) -> None:
        self.released_ids.append(device_id)


class Generic(Recorder):
    name: ClassVar[str] = "generic"
    priority: ClassVar[int] = Priority.GENERIC
    mqtt_discovery: ClassVar[tuple[str, ...]] = ("x/+/state",)


class Specific(Recorder):
    name: ClassVar[str] = "specific"
    priority: ClassVar[int] = Priority.SPECIFIC
    service_types: ClassVar[tuple[str, ...]] = ("_x._tcp.local.",)

    def device_id(self, thing: str) -> str:
        return "special-" + thing


def host_with(*classes: type[Driver], options: Mapping[str, Any] | None = None) -> tuple[DriverHost, RecordingHost]:
    recorder = RecordingHost()
    logged: list[str] = []

    def spawn(coro: Any, name: str) -> asyncio.Task[Any]:
        return asyncio.get_running_loop().create_task(coro, name=name)
    host = DriverHost(recorder, FakeMqtt(), FakeClock(), options or {}, lambda key, msg: logged.append(msg), spawn)
    host.create({c.name: c for c in classes})
    host.logged = logged  # type: ignore[attr-defined]
    return host, recorder


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_higher_priority_claim_takes_a_device_over_and_the_old_owner_lets_go() -> None:
    host, recorder = host_with(Generic, Specific)
    generic, specific = host.drivers["generic"], host.drivers["specific"]
    host.subscribe_discovery()
    host.mqtt.inject("x/lamp/state", "ready")  # type: ignore[attr-defined]
    await settle()
    assert generic.seen_ids == ["lamp"] and "lamp" in recorder.devices
    await host.on_mdns(discovered("_x._tcp.local.", "lamp", {"id": "lamp"}))
    assert specific.seen_ids == ["special-lamp"] and generic.released_ids == ["lamp"]
    assert recorder.removed == ["lamp"] and set(recorder.devices) == {"special-lamp"}
    host.mqtt.inject("x/lamp/state", "ready")  # type: ignore[attr-defined]
    await settle()
    assert generic.seen_ids == ["lamp"]  # the generic driver is no longer offered it


async def test_an_owner_keeps_what_a_lower_priority_driver_claims_later() -> None:
    host, recorder = host_with(Generic, Specific)
    host.subscribe_discovery()
    await host.on_mdns(discovered("_x._tcp.local.", "lamp", {"id": "lamp"}))
    host.mqtt.inject("x/lamp/state", "ready")  # type: ignore[attr-defined]
    await settle()
    assert host.drivers["generic"].seen_ids == [] and set(recorder.devices) == {"special-lamp"}


async def test_junk_announcements_are_logged_once_and_dropped() -> None:
    host, recorder = host_with(Generic)
    host.subscribe_discovery()
    for _ in range(3):
        host.mqtt.inject("x/lamp/state", "junk")  # type: ignore[attr-defined]
    host.mqtt.inject("x/Not A Valid Id/state", "ready")  # type: ignore[attr-defined]
    await settle()
    assert recorder.devices == {}
    assert any("junk payload" in m for m in host.logged) and any("bad device id" in m for m in host.logged)


# -- options ------------------------------------------------------------------------------------------


class Plug(Driver):
    name: ClassVar[str] = "plug"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        port: int = 80
        password: SecretStr | None = None


def test_options_are_typed_and_checked_before_any_driver_starts(caplog: pytest.LogCaptureFixture) -> None:
    host, _ = host_with(Plug, options={"plug": {"port": "8080", "password": "hunter2"}})
    assert host.drivers["plug"].options.port == 8080
    assert host.drivers["plug"].options.password.get_secret_value() == "hunter2"
    with pytest.raises(ConfigError) as e:
        host_with(Plug, Generic, options={"plug": {"port": "eighty", "pasword": "hunter2"}, "generic": {"x": 1}})
    text = str(e.value)
    assert "[drivers.plug]: drivers.plug.port: Input should be a valid integer" in text
    assert "drivers.plug.pasword: unknown key" in text and "drivers.generic.x: unknown key" in text
    assert "hunter2" not in text and "eighty" not in text  # a driver's table may hold secrets
    with caplog.at_level(logging.WARNING):
        host_with(Plug, options={"lamp": {"a": 1}})
    assert "[drivers.lamp] is configured but no driver 'lamp' is installed" in caplog.text


# -- what a driver reports ------------------------------------------------------------------------------


async def test_a_driver_can_only_report_on_devices_it_found(running) -> None:
    hub = running.hub
    mqtt = FakeMqtt()
    mine = DriverContext("mine", hub, options=NoOptions(), mqtt=mqtt, clock=hub.clock)
    other = DriverContext("other", hub, options=NoOptions(), mqtt=mqtt, clock=hub.clock)
    mine.device_found(DeviceInfo(id="plug-1", name="Plug", driver="whatever",
                                 exposes=(Binary(name="on", access=Access.STATE | Access.SET),)))
    assert hub.registry.get("plug-1").info.driver == "mine"  # the context stamps its own name
    mine.state_changed("plug-1", {"on": True})
    other.state_changed("plug-1", {"on": False})
    other.availability_changed("plug-1", False, "spoofed")
    assert hub.registry.get("plug-1").state.values == {"on": True}
    mine.availability_changed("plug-1", True)
    assert hub.registry.get("plug-1").state.online


def test_wiring_encodes_decodes_and_drops_garbage() -> None:
    wiring = Wiring([
        Wire(Binary(name="on", access=Access.STATE | Access.SET), "switch:0.output"),
        Wire(Numeric(name="brightness", min=0, max=100, access=Access.STATE | Access.SET), "bri",
             to_device=lambda v: round(v * 2.55), from_device=lambda raw: round(int(raw) / 2.55)),
    ])
    assert [e.name for e in wiring.exposes] == ["on", "brightness"]
    assert wiring.encode({"on": True, "brightness": 40}) == {"switch:0.output": True, "bri": 102}
    values, problems = wiring.decode({"switch:0.output": False, "bri": "255", "unknown": 1})
    assert values == {"on": False, "brightness": 100} and problems == []
    values, problems = wiring.decode({"switch:0.output": "yes", "bri": "lots"})
    assert values == {} and len(problems) == 2 and "switch:0.output" in problems[0]
    with pytest.raises(DeviceRejected) as e:
        wiring.encode({"colour": "#ffffff"})
    assert e.value.field == "colour"


async def test_poller_backs_off_while_unreachable_and_reports_each_change_once() -> None:
    clock = FakeClock()
    ctx = driver_context(Generic, clock=clock)
    answers = [DeviceUnreachable("refused")] * 4 + [None] * 3
    calls: list[float] = []
    done = asyncio.Event()

    async def poll() -> float | None:
        calls.append(clock.t)
        if len(calls) > len(answers):
            done.set()
            await asyncio.Event().wait()  # the test has seen enough: hold here until stopped
        if (answer := answers[len(calls) - 1]) is not None:
            raise answer
        return None

    poller = Poller(ctx, "plug-1", poll, interval=30, backoff=(1, 4), jitter=0)
    poller.start()
    await asyncio.wait_for(done.wait(), 5)
    await poller.stop()
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps == [1, 2, 4, 4, 30, 30, 30]  # doubled to the cap, then the interval once it answers
    assert [p for k, _, p in ctx.reports if k == "availability"] == [False, True]
    await ctx.close()


# -- the error contract over REST ----------------------------------------------------------------------


class Flaky(Driver):
    """One device; its send() fails the way the value of `mode` says."""

    name: ClassVar[str] = "flaky"
    FAILURES: ClassVar[dict[str, BaseException]] = {
        "unreachable": DeviceUnreachable("connection refused"),
        "timeout": DeviceTimeout("no answer"),
        "rejected": DeviceRejected("mode", "the device refused it"),
        "busy": NotNow("mode", "the device is busy"),
        "bug": KeyError("oops"),
    }

    async def start(self) -> None:
        from hub.model import Enum
        self.ctx.device_found(DeviceInfo(id="flaky-1", name="Flaky", driver=self.name, exposes=(
            Enum(name="mode", values=("ok", *self.FAILURES), access=Access.STATE | Access.SET),)))
        self.ctx.availability_changed("flaky-1", True)

    async def send(self, device_id: str, values: Mapping[str, Any]) -> None:
        if (failure := self.FAILURES.get(values["mode"])) is not None:
            raise failure
        self.ctx.state_changed(device_id, values)


async def test_each_failure_of_send_has_its_status(tmp_path: Path, broker: Broker) -> None:
    config = hub_config(tmp_path, broker, inbox=False)
    create_user(config.data_dir / "hub.db", "owner", "correct horse battery", "owner")
    token = create_token(config.data_dir / "hub.db", "tests")
    async with running_hub(config, drivers={"flaky": Flaky}) as (hub, url):
        await hub.mqtt.wait_connected(10)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
            async def set_mode(mode: str) -> tuple[int, dict]:
                async with s.post(f"{url}/api/devices/flaky-1/set", json={"mode": mode}) as r:
                    return r.status, await r.json()
            assert (await set_mode("ok"))[0] == 200
            for mode, status in (("rejected", 422), ("busy", 409), ("timeout", 504), ("bug", 500)):
                code, body = await set_mode(mode)
                assert code == status, (mode, body)
                if status in (409, 422):
                    assert body["field"] == "mode"
            assert hub.registry.get("flaky-1").state.online  # none of those is "offline"
            code, body = await set_mode("unreachable")
            assert code == 503 and "connection refused" in body["error"]
            await until(hub, lambda: not hub.registry.get("flaky-1").state.online, 5, "offline after 503")
            assert (await set_mode("ok"))[0] == 409  # offline until the driver says otherwise
