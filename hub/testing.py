"""The driver test kit: a real DriverContext whose hub records what the driver reports, MQTT in memory.

    ctx = driver_context(AcmeDriver, {"password": "pw"})   # options validated as the hub does
    driver = AcmeDriver(ctx)
    await driver.start()
    device_id = driver.identify(discovered("_acme._tcp.local.", "plug", {"serial": "A1"}))
    await driver.seen(device_id, discovered(...))
    ctx.mqtt.inject("acme/A1/state", b'{"on": true}')      # what the device says
    await ctx.wait_for(lambda: ctx.state.get(device_id, {}).get("on") is True)
    await driver.send(device_id, {"on": False})
    assert ctx.mqtt.published[-1] == ("acme/A1/set", '{"on": false}')
    await driver.stop(); await ctx.close()

`hub.conformance` is the pytest plugin every driver package can run against its driver (README "Writing a driver").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from .clock import Clock, SystemClock
from .config import driver_options
from .driver import Discovered, Driver, DriverContext, MessageHandler, MqttSeen, NoOptions
from .model import DeviceInfo
from .topics import topic_matches


def discovered(service_type: str, name: str, txt: Mapping[str, str] | None = None,
               address: str = "127.0.0.1", port: int = 0) -> Discovered:
    """An mDNS service as the core would hand it to a driver."""
    full = name if name.endswith(service_type) else f"{name}.{service_type}"
    return Discovered(service_type, full, (address,), port, {k.lower(): v for k, v in (txt or {}).items()})


def mqtt_seen(topic_filter: str, topic: str, payload: bytes | str, retained: bool = True) -> MqttSeen:
    """A message on an MQTT discovery filter, as the core would offer it to a driver."""
    return MqttSeen(topic_filter, topic, payload.encode() if isinstance(payload, str) else payload, retained)


class FakeMqtt:
    """The hub's MQTT link as a driver sees it, in memory: records publishes, delivers injections."""

    def __init__(self) -> None:
        self.handlers: list[tuple[str, MessageHandler]] = []
        self.published: list[tuple[str, str]] = []
        self.connected = True

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        self.handlers.append((topic_filter, handler))

    def unsubscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        self.handlers = [(f, h) for f, h in self.handlers if (f, h) != (topic_filter, handler)]

    async def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        self.published.append((topic, payload.decode() if isinstance(payload, bytes) else payload))

    def inject(self, topic: str, payload: bytes | str, retained: bool = True) -> None:
        """Deliver a message to the driver's handlers, as the broker would."""
        data = payload.encode() if isinstance(payload, str) else payload
        for topic_filter, handler in list(self.handlers):
            if topic_matches(topic_filter, topic):
                handler(topic, data, retained)


class RecordingHost:
    """The hub's side of a context: records every report, lets a test await a condition on them."""

    def __init__(self) -> None:
        self.devices: dict[str, DeviceInfo] = {}
        self.removed: list[str] = []
        self.state: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, dict[str, Any]] = {}
        self.online: dict[str, bool] = {}
        self.errors: list[tuple[str, str]] = []
        self.reports: list[tuple[str, str, Any]] = []  # (kind, device id, payload) in order
        self.foreign: list[tuple[str, str]] = []  # (driver, device id) reported on a device it didn't find
        self._changed = asyncio.Event()
        self._http: Any = None

    def _note(self, kind: str, device_id: str, payload: Any, by: str | None) -> None:
        if by is not None and kind != "found" and device_id in self.devices and self.devices[device_id].driver != by:
            self.foreign.append((by, device_id))
        self.reports.append((kind, device_id, payload))
        self._changed.set()

    def device_found(self, info: DeviceInfo) -> None:
        self.devices[info.id] = info
        self._note("found", info.id, info, None)

    def device_removed(self, device_id: str, *, by: str) -> None:
        self.devices.pop(device_id, None)
        self.removed.append(device_id)
        self._note("removed", device_id, None, by)

    def state_changed(self, device_id: str, values: Mapping[str, Any], *, by: str | None = None) -> None:
        self.state.setdefault(device_id, {}).update(values)
        self._note("state", device_id, dict(values), by)

    def target_accepted(self, device_id: str, values: Mapping[str, Any], *, by: str | None = None) -> None:
        self.targets.setdefault(device_id, {}).update(values)
        self._note("target", device_id, dict(values), by)

    def availability_changed(self, device_id: str, online: bool, reason: str = "", *,
                             by: str | None = None) -> None:
        self.online[device_id] = online
        self._note("availability", device_id, online, by)

    def device_error(self, device_id: str, message: str, *, by: str | None = None) -> None:
        self.errors.append((device_id, message))
        self._note("error", device_id, message, by)

    def http_session(self) -> Any:
        if self._http is None:
            import aiohttp  # noqa: PLC0415
            self._http = aiohttp.ClientSession()
        return self._http


class RecordingContext(DriverContext):
    """A DriverContext on a RecordingHost and a FakeMqtt; what was reported reads as attributes."""

    def __init__(self, options: BaseModel | None = None, *, name: str = "test", clock: Clock | None = None) -> None:
        self.recorder = RecordingHost()
        super().__init__(name, self.recorder, options=options or NoOptions(), mqtt=FakeMqtt(),
                         clock=clock or SystemClock())
        self.mqtt: FakeMqtt

    def configure(self, cls: type[Driver], options: Mapping[str, Any] | None = None) -> RecordingContext:
        """Take `cls`'s name and its options, validated from a [drivers.<name>]-like dict."""
        self.name = cls.name
        self.log = logging.getLogger(f"hub.drivers.{cls.name}")
        self.options = driver_options(cls.name, cls.Options, options)
        return self

    def __getattr__(self, item: str) -> Any:  # devices, state, online, errors, log, ...
        if item.startswith("_") or item == "recorder":
            raise AttributeError(item)
        return getattr(self.recorder, item)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until predicate() is truthy, re-checking on every report (no polling sleep)."""
        changed = self.recorder._changed

        async def _wait() -> Any:
            while not (result := predicate()):
                changed.clear()
                await changed.wait()
            return result
        return await asyncio.wait_for(_wait(), timeout)

    async def close(self) -> None:
        """Cancel what the driver spawned and close the HTTP session it used."""
        await self.aclose()
        if self.recorder._http is not None:
            await self.recorder._http.close()


def driver_context(cls: type[Driver], options: Mapping[str, Any] | None = None, *,
                   clock: Clock | None = None) -> RecordingContext:
    """A RecordingContext for `cls`, its options validated from a [drivers.<name>]-like dict."""
    return RecordingContext(clock=clock).configure(cls, options)
