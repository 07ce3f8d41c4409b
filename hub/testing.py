"""The driver test kit: a DriverContext that records what a driver reports, and MQTT in memory.

    ctx = RecordingContext()
    driver = MyDriver(ctx)
    await driver.start()
    device_id = driver.identify(discovered("_acme._tcp.local.", "plug", {"serial": "A1"}))
    await driver.seen(device_id, discovered(...))
    ctx.mqtt.inject("acme/A1/state", b'{"on": true}')      # what the device says
    await ctx.wait_for(lambda: ctx.state.get(device_id, {}).get("on") is True)
    await driver.send(device_id, {"on": False})
    assert ctx.mqtt.published[-1] == ("acme/A1/set", '{"on": false}')
    await driver.stop(); await ctx.close()
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from .driver import Discovered, MessageHandler
from .model import DeviceInfo
from .topics import topic_matches


def discovered(service_type: str, name: str, txt: Mapping[str, str] | None = None,
               address: str = "127.0.0.1", port: int = 0) -> Discovered:
    """An mDNS service as the core would hand it to a driver."""
    full = name if name.endswith(service_type) else f"{name}.{service_type}"
    return Discovered(service_type, full, (address,), port, {k.lower(): v for k, v in (txt or {}).items()})


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


class RecordingContext:
    """A DriverContext that records every report, and lets a test await a condition on them."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.mqtt = FakeMqtt()
        self.clock = time.time
        self.options = options or {}
        self.devices: dict[str, DeviceInfo] = {}
        self.state: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, dict[str, Any]] = {}
        self.online: dict[str, bool] = {}
        self.errors: list[tuple[str, str]] = []
        self.log: list[tuple[str, str, Any]] = []  # (kind, device id, payload) in order
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    def _note(self, kind: str, device_id: str, payload: Any) -> None:
        self.log.append((kind, device_id, payload))
        self._changed.set()

    def device_found(self, info: DeviceInfo) -> None:
        self.devices[info.id] = info
        self._note("found", info.id, info)

    def state_changed(self, device_id: str, values: Mapping[str, Any]) -> None:
        self.state.setdefault(device_id, {}).update(values)
        self._note("state", device_id, dict(values))

    def target_accepted(self, device_id: str, values: Mapping[str, Any]) -> None:
        self.targets.setdefault(device_id, {}).update(values)
        self._note("target", device_id, dict(values))

    def availability_changed(self, device_id: str, online: bool, reason: str = "") -> None:
        self.online[device_id] = online
        self._note("availability", device_id, online)

    def device_error(self, device_id: str, message: str) -> None:
        self.errors.append((device_id, message))
        self._note("error", device_id, message)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until predicate() is truthy, re-checking on every report (no polling sleep)."""
        async def _wait() -> Any:
            while not (result := predicate()):
                self._changed.clear()
                await self._changed.wait()
            return result
        return await asyncio.wait_for(_wait(), timeout)

    async def close(self) -> None:
        """Cancel what the driver spawned through the context."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
