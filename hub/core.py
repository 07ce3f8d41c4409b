"""The composition root: one hub process, its parts wired together.

Drivers report through their contexts to the `Hub` (the `Host` of hub.driver); the Hub keeps the
registry, tells the bus (UI, WebSocket, history), the canonical MQTT publisher and the commands
in flight. Each concern lives in its own module: `commands` (set → confirmed), `canonical`
(what the hub publishes), `driver_host` (drivers, their options and discovery claims).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from . import __version__
from .bus import Bus
from .canonical import CanonicalPublisher
from .clock import Clock, SystemClock
from .commands import Commands, DeviceNotFound, DeviceOffline
from .config import HubConfig
from .discovery import Discovery
from .driver import Driver, load_drivers
from .driver_host import DriverHost
from .ha.discovery import Origin
from .ha.publisher import HaDiscovery
from .model import DeviceInfo, valid_device_id
from .mqtt import MqttLink
from .outbox import Outbox
from .registry import Device, Registry
from .store import Store
from .tasks import Tasks, logged
from .topics import Topics

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)


class Hub:
    """One hub process. Implements the Host every DriverContext reports to."""

    def __init__(self, config: HubConfig, *, drivers: Mapping[str, type[Driver]] | None = None,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.topics = Topics(config.mqtt.base_topic)
        self.bus = Bus()
        self.store = Store(config.data_dir / "hub.db")
        self.registry = Registry(self.store, inbox=config.inbox)
        self.mqtt = MqttLink(
            config.mqtt.host, config.mqtt.port, client_id=config.mqtt.client_id,
            will_topic=self.topics.bridge_state, username=config.mqtt.username,
            password=config.mqtt.password.get_secret_value() if config.mqtt.password else None,
            keepalive=config.mqtt.keepalive, on_connect=self._connected, on_disconnect=self._mqtt_lost)
        ha = config.homeassistant
        self.homeassistant = HaDiscovery(
            self.mqtt, self.topics, ha.prefix, Origin("hub", __version__),
            lambda: self.registry.devices.values(), enabled=ha.discovery)
        self.outbox = Outbox(self.mqtt)  # retained definitions, availability and state
        self.canonical = CanonicalPublisher(self.mqtt, self.topics, self.registry, self.outbox, self.homeassistant)
        self.host = DriverHost(self, self.mqtt, self.clock, config.drivers, self._log_once, self.spawn)
        self.drivers = self.host.drivers  # name -> driver, filled at start
        self.commands = Commands(self.registry, self.drivers, self.mqtt, self.topics, self.spawn,
                                 timeout=config.command_timeout, on_unreachable=self._unreachable)
        self._driver_classes = dict(drivers) if drivers is not None else None
        self.discovery: Discovery | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks = Tasks(logged(log, "task"))
        self._stack: AsyncExitStack | None = None
        self._errors_logged: set[tuple[str, str]] = set()
        self.started_at = 0.0

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self.started_at = time.monotonic()
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        # options are checked before anything starts: a typo in [drivers.x] stops here, named
        self.host.create(self._driver_classes if self._driver_classes is not None else load_drivers())
        async with AsyncExitStack() as stack:
            await self.store.start()
            stack.push_async_callback(self.store.stop)
            await self.registry.start()
            stack.push_async_callback(self.registry.stop)
            self.mqtt.subscribe(self.topics.set_filter, self.commands.on_mqtt_set)
            await self.homeassistant.start()
            stack.push_async_callback(self.homeassistant.stop)
            await self.mqtt.start()
            stack.push_async_callback(self.mqtt.stop)
            stack.push_async_callback(self.outbox.stop)
            stack.push_async_callback(self._close_http)
            for name in list(self.drivers):
                await self.host.start(name)
                stack.push_async_callback(self.host.stop, name)
            self.host.subscribe_discovery()
            stack.callback(self.host.unsubscribe_discovery)
            self.discovery = Discovery(self.host.service_types(), self.host.on_mdns, self.host.on_mdns_gone,
                                       self.config.discovery.interfaces)
            await self.discovery.start()
            stack.push_async_callback(self.discovery.stop)
            if self.config.discovery.advertise_broker:
                await self.discovery.advertise(
                    "_mqtt._tcp.local.", "hub-mqtt", self.config.mqtt.port, {"txtvers": "1"},
                    self.config.mqtt.host)
            stack.push_async_callback(self._tasks.cancel)
            self._stack = stack.pop_all()
        log.info("hub started with drivers: %s", ", ".join(self.drivers) or "none")

    async def stop(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro, name)

    def http_session(self) -> aiohttp.ClientSession:
        """One HTTP client session for every driver (created on first use: most hubs never need it)."""
        if self._http is None:
            import aiohttp  # noqa: PLC0415  (drivers that speak HTTP are the exception)
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._http

    async def _close_http(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _log_once(self, key: str, message: str) -> None:
        if (key, message) not in self._errors_logged:
            if len(self._errors_logged) >= 10_000:  # bounded: a device spraying junk can't grow it
                self._errors_logged.clear()
            self._errors_logged.add((key, message))
            log.warning("%s", message)

    # -- Host: what drivers report --------------------------------------------------------

    def _owned(self, device_id: str, by: str | None) -> Device | None:
        """The device, if it exists and `by` (the reporting driver) is the one that found it."""
        dev = self.registry.get(device_id)
        if dev is not None and by is not None and dev.info.driver != by:
            self._log_once(f"{by}:{device_id}", f"driver {by} reported on {device_id}, "
                           f"which belongs to {dev.info.driver}; ignored")
            return None
        return dev

    def device_found(self, info: DeviceInfo) -> None:
        if not valid_device_id(info.id):
            self._log_once(info.id, f"driver {info.driver} reported a bad device id {info.id!r}; ignored")
            return
        dev, added, changed = self.registry.upsert(info, self.clock.now())
        if changed:
            self.bus.publish("device_added" if added else "device_updated", device=dev.to_json())
            self.canonical.definition(dev)
            if added:
                log.info("new device %s (%s, %s)", info.id, info.driver, info.name)

    def device_removed(self, device_id: str, *, by: str) -> None:
        if self._owned(device_id, by) is not None:
            self.spawn(self._removed(device_id), f"forget-{device_id}")

    async def _removed(self, device_id: str) -> None:
        with contextlib.suppress(DeviceNotFound):  # the household forgot it first: nothing left to do
            await self.forget_device(device_id)

    def state_changed(self, device_id: str, values: Mapping[str, Any], *, by: str | None = None) -> None:
        dev = self._owned(device_id, by)
        if dev is None:
            return
        self.commands.confirm(device_id, values, dev)
        changed = self.registry.update_state(device_id, values, self.clock.now())
        if changed:
            self.bus.publish("state", id=device_id, state=changed)
            self.canonical.state(device_id)

    def target_accepted(self, device_id: str, values: Mapping[str, Any], *, by: str | None = None) -> None:
        dev = self._owned(device_id, by)
        if dev is not None:
            self.commands.confirm(device_id, values, dev)
            self.bus.publish("target", id=device_id, target=dict(values))

    def availability_changed(self, device_id: str, online: bool, reason: str = "", *,
                             by: str | None = None) -> None:
        if self._owned(device_id, by) is None:
            return
        if self.registry.set_online(device_id, online, self.clock.now()):
            log.info("%s is %s%s", device_id, "online" if online else "offline", f" ({reason})" if reason else "")
            self.bus.publish("availability", id=device_id, online=online, reason=reason)
            self.canonical.availability(device_id, online)
            if not online:
                self.commands.fail(device_id, DeviceOffline(f"{device_id} went offline ({reason or 'lost'})"))

    def device_error(self, device_id: str, message: str, *, by: str | None = None) -> None:
        if self._owned(device_id, by) is None:
            return
        self._log_once(device_id, f"{device_id}: {message}")
        if self.registry.set_error(device_id, message):
            dev = self.registry.get(device_id)
            assert dev is not None
            self.bus.publish("device_updated", device=dev.to_json())
            self.canonical.definition(dev)

    def _unreachable(self, device_id: str, reason: str) -> None:
        """A send() found the device unreachable: offline until its driver reports it back."""
        dev = self.registry.get(device_id)
        if dev is not None:
            self.availability_changed(device_id, False, reason)

    # -- the household's actions ----------------------------------------------------------------

    async def set_state(self, device_id: str, payload: Any) -> dict[str, Any]:
        """Validate, deliver, wait for the device to confirm; return the confirmed state."""
        return await self.commands.set_state(device_id, payload)

    async def rename_device(self, device_id: str, name: str | None, room: str | None, *,
                            ignored: bool | None = None, inbox: bool | None = None) -> Device:
        """The household's name, room, or "ignore" for a device: saved, announced, kept over the driver's."""
        if self.registry.get(device_id) is None:
            raise DeviceNotFound(device_id)
        dev = await self.registry.rename(device_id, name, room, ignored=ignored, inbox=inbox)
        if self.registry.get(device_id) is not dev:  # forgotten while the rename was being saved
            raise DeviceNotFound(device_id)
        self.bus.publish("device_updated", device=dev.to_json())
        self.canonical.definition(dev)
        return dev

    async def forget_device(self, device_id: str) -> None:
        """Remove a device from the hub and every retained topic; if it comes back, it is found anew."""
        if self.registry.get(device_id) is None:
            raise DeviceNotFound(device_id)
        await self.registry.forget(device_id)
        self.commands.fail(device_id, DeviceNotFound(f"{device_id} was forgotten"))
        self.canonical.forgotten(device_id)
        self.bus.publish("device_removed", id=device_id)
        log.info("forgot device %s", device_id)

    # -- MQTT connection ----------------------------------------------------------------------------

    async def _connected(self) -> None:
        await self.canonical.republish()
        self.bus.publish("bridge", mqtt="connected")

    def _mqtt_lost(self) -> None:
        self.bus.publish("bridge", mqtt="disconnected")

    # -- queries ------------------------------------------------------------------------

    @property
    def mqtt_refusals_dropped(self) -> int:
        return self.commands.mqtt_refusals_dropped

    def health(self) -> dict[str, Any]:
        devices = self.registry.devices.values()
        return {
            "status": "ok",
            "version": __version__,
            "mqtt": "connected" if self.mqtt.connected else "disconnected",
            "devices": len(self.registry.devices),
            "online": sum(1 for d in devices if d.state.online),
            "drivers": sorted(self.drivers),
            "mqtt_received": self.mqtt.received,
            "uptime_s": round(time.monotonic() - self.started_at, 1),
        }
