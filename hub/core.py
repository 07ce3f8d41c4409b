"""The hub core: drivers report devices and state; commands go out and wait for confirmation."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from . import __version__
from .bus import Bus
from .config import HubConfig
from .discovery import Discovery
from .ha.discovery import Origin
from .ha.publisher import HaDiscovery
from .driver import BrokerUnavailable, DeviceUnreachable, Discovered, Driver, load_drivers
from .model import Action, Color, DeviceInfo, InvalidCommand, NotNow, Numeric, valid_device_id, validate_command
from .mqtt import MqttLink
from .outbox import Outbox
from .registry import Device, Registry
from .store import Store
from .topics import BadPayload, Topics, dumps, parse_json_object

log = logging.getLogger(__name__)

# Commands in flight from MQTT `hub/<id>/set`, all clients together. Each holds a task and a
# pending confirmation for up to command_timeout; a household sends a handful at a time, so
# beyond this the sender is flooding and the command is refused at once (code 429).
MQTT_COMMANDS_IN_FLIGHT = 256
# Refusals still being published; past this a flood's refusals are dropped and counted.
MQTT_REFUSALS_IN_FLIGHT = 64
# Per WebSocket connection (hub/web/app.py answers status 429 beyond it): a UI sends one
# command per click; a script that needs more waits for results or opens another socket.
WS_COMMANDS_IN_FLIGHT = 32


class DeviceNotFound(LookupError):
    """No device with that id (404)."""


class DeviceOffline(Exception):
    """The device is known but offline (409)."""


class CommandTimeout(Exception):
    """The device did not confirm in time (504); names what stayed unconfirmed."""


@dataclass
class _Pending:
    device_id: str
    expected: dict[str, Any]
    future: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def _confirms(expose: Any, wanted: Any, reported: Any) -> bool:
    if isinstance(expose, Numeric):
        try:
            tolerance = (expose.step or 0) / 2 or 1e-6
            return math.isfinite(float(reported)) and abs(float(reported) - float(wanted)) <= tolerance
        except (TypeError, ValueError):
            return False
    if isinstance(expose, Color) and isinstance(reported, str):
        return reported.lower() == wanted
    return reported == wanted


class Hub:
    """One hub process. Implements the DriverContext every driver gets."""

    def __init__(self, config: HubConfig, *, drivers: Mapping[str, type[Driver]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.topics = Topics(config.mqtt.base_topic)
        self.bus = Bus()
        self.store = Store(config.data_dir / "hub.db")
        self.registry = Registry(self.store, inbox=config.inbox)
        self.mqtt = MqttLink(
            config.mqtt.host, config.mqtt.port, client_id=config.mqtt.client_id,
            will_topic=self.topics.bridge_state, username=config.mqtt.username,
            password=config.mqtt.password.get_secret_value() if config.mqtt.password else None,
            keepalive=config.mqtt.keepalive, on_connect=self._republish, on_disconnect=self._mqtt_lost)
        ha = config.homeassistant
        self.homeassistant = HaDiscovery(
            self.mqtt, self.topics, ha.prefix, Origin("hub", __version__),
            lambda: self.registry.devices.values(), enabled=ha.discovery)
        self.outbox = Outbox(self.mqtt)  # retained definitions, availability and state
        self._driver_classes = dict(drivers) if drivers is not None else None
        self.drivers: dict[str, Driver] = {}
        self.discovery: Discovery | None = None
        self._services: dict[tuple[str, str], tuple[Driver, str]] = {}  # (type, name) -> owner
        self._pending: list[_Pending] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stack: AsyncExitStack | None = None
        self._errors_logged: set[tuple[str, str]] = set()
        self._mqtt_sets = 0  # MQTT commands in flight (bounded by MQTT_COMMANDS_IN_FLIGHT)
        self._mqtt_refusals = 0
        self._mqtt_flooded = False  # a refusal was logged since the last accepted command
        self.mqtt_refusals_dropped = 0
        self.started_at = 0.0

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self.started_at = time.monotonic()
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        async with AsyncExitStack() as stack:
            await self.store.start()
            stack.push_async_callback(self.store.stop)
            await self.registry.start()
            stack.push_async_callback(self.registry.stop)
            self.mqtt.subscribe(self.topics.set_filter, self._on_mqtt_set)
            await self.homeassistant.start()
            stack.push_async_callback(self.homeassistant.stop)
            await self.mqtt.start()
            stack.push_async_callback(self.mqtt.stop)
            stack.push_async_callback(self.outbox.stop)
            classes = self._driver_classes if self._driver_classes is not None else load_drivers()
            for name, cls in classes.items():
                driver = cls(self)
                await driver.start()
                stack.push_async_callback(driver.stop)
                self.drivers[cls.name or name] = driver
            types = [t for d in self.drivers.values() for t in d.service_types]
            self.discovery = Discovery(types, self._on_seen, self._on_gone, self.config.discovery.interfaces)
            await self.discovery.start()
            stack.push_async_callback(self.discovery.stop)
            if self.config.discovery.advertise_broker:
                await self.discovery.advertise(
                    "_mqtt._tcp.local.", "hub-mqtt", self.config.mqtt.port, {"txtvers": "1"},
                    self.config.mqtt.host)
            stack.push_async_callback(self._cancel_tasks)
            self._stack = stack.pop_all()
        log.info("hub started with drivers: %s", ", ".join(self.drivers) or "none")

    async def stop(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def _cancel_tasks(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("task %s failed: %r", task.get_name(), exc, exc_info=exc)

    # -- discovery --------------------------------------------------------------------

    async def _on_seen(self, seen: Discovered) -> None:
        claims: list[tuple[Driver, str]] = []
        for driver in self.drivers.values():
            if seen.service_type not in driver.service_types:
                continue
            try:
                device_id = driver.identify(seen)
            except ValueError as e:
                self._log_once(seen.name, f"ignored mDNS service {seen.name!r}: {e}")
                continue
            if device_id is None:
                continue
            if not valid_device_id(device_id):
                self._log_once(seen.name, f"ignored mDNS service {seen.name!r}: bad device id {device_id!r}")
                continue
            claims.append((driver, device_id))
        if not claims:
            return
        # A specific driver wins over a generic one (the projector's player over plain Homie).
        claims.sort(key=lambda c: c[0].generic)
        driver, device_id = claims[0]
        self._services[(seen.service_type, seen.name)] = (driver, device_id)
        await driver.seen(device_id, seen)

    async def _on_gone(self, service_type: str, name: str) -> None:
        owner = self._services.get((service_type, name))
        if owner is not None:
            driver, device_id = owner
            await driver.gone(device_id)

    def _log_once(self, key: str, message: str) -> None:
        if (key, message) not in self._errors_logged:
            if len(self._errors_logged) >= 10_000:  # bounded: a device spraying junk can't grow it
                self._errors_logged.clear()
            self._errors_logged.add((key, message))
            log.warning("%s", message)

    # -- DriverContext ------------------------------------------------------------------

    @property
    def options(self) -> Mapping[str, Mapping[str, Any]]:
        """Per-driver options from the config's [drivers.<name>] tables."""
        return self.config.drivers

    def device_found(self, info: DeviceInfo) -> None:
        if not valid_device_id(info.id):
            self._log_once(info.id, f"driver {info.driver} reported a bad device id {info.id!r}; ignored")
            return
        dev, added, changed = self.registry.upsert(info, self.clock())
        if changed:
            self.bus.publish("device_added" if added else "device_updated", device=dev.to_json())
            self._publish_definition(dev)
            if added:
                log.info("new device %s (%s, %s)", info.id, info.driver, info.name)

    def state_changed(self, device_id: str, values: Mapping[str, Any]) -> None:
        dev = self.registry.get(device_id)
        if dev is None:
            return
        self._confirm(device_id, values, dev)
        changed = self.registry.update_state(device_id, values, self.clock())
        if changed:
            self.bus.publish("state", id=device_id, state=changed)
            self._schedule_state_publish(device_id)

    def target_accepted(self, device_id: str, values: Mapping[str, Any]) -> None:
        dev = self.registry.get(device_id)
        if dev is not None:
            self._confirm(device_id, values, dev)
            self.bus.publish("target", id=device_id, target=dict(values))

    def availability_changed(self, device_id: str, online: bool, reason: str = "") -> None:
        if self.registry.set_online(device_id, online, self.clock()):
            log.info("%s is %s%s", device_id, "online" if online else "offline", f" ({reason})" if reason else "")
            self.bus.publish("availability", id=device_id, online=online, reason=reason)
            self._publish(self.topics.availability(device_id), "online" if online else "offline", retain=True)
            if not online:
                for p in self._pending:
                    if p.device_id == device_id and not p.future.done():
                        p.future.set_exception(DeviceOffline(f"{device_id} went offline ({reason or 'lost'})"))

    def device_error(self, device_id: str, message: str) -> None:
        self._log_once(device_id, f"{device_id}: {message}")
        if self.registry.set_error(device_id, message):
            dev = self.registry.get(device_id)
            assert dev is not None
            self.bus.publish("device_updated", device=dev.to_json())
            self._publish_definition(dev)

    async def rename_device(self, device_id: str, name: str | None, room: str | None, *,
                            ignored: bool | None = None, inbox: bool | None = None) -> Device:
        """The household's name, room, or "ignore" for a device: saved, announced, kept over the driver's."""
        if self.registry.get(device_id) is None:
            raise DeviceNotFound(device_id)
        dev = await self.registry.rename(device_id, name, room, ignored=ignored, inbox=inbox)
        if self.registry.get(device_id) is not dev:  # forgotten while the rename was being saved
            raise DeviceNotFound(device_id)
        self.bus.publish("device_updated", device=dev.to_json())
        self._publish_definition(dev)
        return dev

    async def forget_device(self, device_id: str) -> None:
        """Remove a device from the hub and every retained topic; if it comes back, it is found anew."""
        if self.registry.get(device_id) is None:
            raise DeviceNotFound(device_id)
        await self.registry.forget(device_id)
        for p in self._pending:
            if p.device_id == device_id and not p.future.done():
                p.future.set_exception(DeviceNotFound(f"{device_id} was forgotten"))
        self.homeassistant.device_forgotten(device_id)  # first, so HA lets go of the topics cleared next
        for topic in (self.topics.state(device_id), self.topics.availability(device_id),
                      self.topics.definition(device_id)):
            self._publish(topic, b"", retain=True)  # an empty retained message deletes it (MQTT 3.1.1 §3.3.1.3)
        self.bus.publish("device_removed", id=device_id)
        log.info("forgot device %s", device_id)

    # -- commands -------------------------------------------------------------------------

    async def set_state(self, device_id: str, payload: Any) -> dict[str, Any]:
        """Validate, deliver, wait for the device to confirm; return the confirmed state."""
        dev = self.registry.get(device_id)
        if dev is None:
            raise DeviceNotFound(device_id)
        values = validate_command(dev.info.exposes, payload)
        if not dev.state.online:
            raise DeviceOffline(f"{device_id} is offline")
        driver = self.drivers.get(dev.info.driver)
        if driver is None:
            raise DeviceOffline(f"{device_id}: driver {dev.info.driver} is not loaded")
        expected = {k: v for k, v in values.items() if not isinstance(dev.info.expose(k), Action)}
        pending = _Pending(device_id, expected)
        if not expected:
            pending.future.set_result(None)
        self._pending.append(pending)
        try:
            # one deadline for delivery and confirmation; no task or shield on the way (each costs
            # the command a turn of the loop)
            async with asyncio.timeout(self.config.command_timeout):
                await driver.send(device_id, values)
                await pending.future
        except asyncio.TimeoutError:
            raise CommandTimeout(
                f"{device_id} did not confirm {', '.join(sorted(pending.expected)) or 'delivery'} "
                f"within {self.config.command_timeout:g} s") from None
        finally:
            self._pending.remove(pending)
            if not pending.future.done():
                pending.future.cancel()
        return dict(dev.state.values)

    def _confirm(self, device_id: str, values: Mapping[str, Any], dev: Device) -> None:
        for p in self._pending:
            if p.device_id != device_id or p.future.done():
                continue
            for key, reported in values.items():
                if key in p.expected and _confirms(dev.info.expose(key), p.expected[key], reported):
                    del p.expected[key]
            if not p.expected:
                p.future.set_result(None)

    def _on_mqtt_set(self, topic: str, payload: bytes, retain: bool) -> None:
        device_id = self.topics.parse_set(topic)
        if device_id is None or retain:
            return  # a retained command would replay on every connect; never act on one
        if self._mqtt_sets >= MQTT_COMMANDS_IN_FLIGHT:
            self._refuse_mqtt_set(device_id)
            return
        self._mqtt_sets += 1
        self._mqtt_flooded = False
        task = self.spawn(self._mqtt_set(device_id, payload), f"mqtt-set-{device_id}")
        task.add_done_callback(self._mqtt_set_done)  # a done callback runs even if cancelled unstarted

    def _mqtt_set_done(self, _task: asyncio.Task[Any]) -> None:
        self._mqtt_sets -= 1

    def _refuse_mqtt_set(self, device_id: str) -> None:
        """Too many MQTT commands in flight: say so on the result topic, without waiting."""
        if not self._mqtt_flooded:
            self._mqtt_flooded = True
            log.warning("%d MQTT commands in flight; refusing more until some answer", self._mqtt_sets)
        if self._mqtt_refusals >= MQTT_REFUSALS_IN_FLIGHT or not self.mqtt.connected:
            self.mqtt_refusals_dropped += 1
            return
        result = {"status": "error", "code": 429, "error": f"too many commands in flight "
                  f"({MQTT_COMMANDS_IN_FLIGHT}); send again when earlier ones have answered"}
        self._mqtt_refusals += 1
        task = self.spawn(self._publish_quietly(self.topics.set_result(device_id), dumps(result), False),
                          "mqtt-set-refused")
        task.add_done_callback(self._mqtt_refusal_done)

    def _mqtt_refusal_done(self, _task: asyncio.Task[Any]) -> None:
        self._mqtt_refusals -= 1

    async def _mqtt_set(self, device_id: str, payload: bytes) -> None:
        result: dict[str, Any]
        try:
            state = await self.set_state(device_id, parse_json_object(payload))
            result = {"status": "ok", "state": state}
        except BadPayload as e:
            result = {"status": "error", "code": 422, "field": "body", "error": str(e)}
        except Exception as e:
            code, fields = error_status(e)
            result = {"status": "error", "code": code, "error": str(e), **fields}
        if result["status"] != "ok":
            log.info("MQTT command for %s refused: %s", device_id, result["error"])
        try:
            await self.mqtt.publish(self.topics.set_result(device_id), dumps(result), qos=1)
        except BrokerUnavailable:
            pass

    # -- canonical MQTT API -----------------------------------------------------------

    def _publish(self, topic: str, payload: bytes | str, retain: bool) -> None:
        if retain:
            self.outbox.put(topic, payload)  # coalesced: the latest payload per topic goes out
        elif self.mqtt.connected:
            self.spawn(self._publish_quietly(topic, payload, retain), "publish")

    async def _publish_quietly(self, topic: str, payload: bytes | str, retain: bool) -> None:
        try:
            await self.mqtt.publish(topic, payload, qos=1, retain=retain)
        except BrokerUnavailable:
            pass  # everything retained is republished on the next connect

    def _definition_payload(self, device_id: str) -> str | None:
        dev = self.registry.get(device_id)
        if dev is None:
            return None
        definition = dev.info.definition()
        definition.update(name=dev.name, room=dev.room)
        return dumps(definition)

    def _state_payload(self, device_id: str) -> str | None:
        dev = self.registry.get(device_id)
        return dumps(dev.state.values) if dev is not None else None

    def _publish_definition(self, dev: Device) -> None:
        """One retained definition per device; a device found again in a burst goes out once."""
        self.outbox.put(self.topics.definition(dev.id), partial(self._definition_payload, dev.id))
        self.homeassistant.device_changed(dev)

    def _schedule_state_publish(self, device_id: str) -> None:
        """The device's retained state, built when sent: a chatty device costs one publish per round."""
        self.outbox.put(self.topics.state(device_id), partial(self._state_payload, device_id))

    async def _republish(self) -> None:
        """After every (re)connect: all retained definitions, availability and state."""
        for dev in list(self.registry.devices.values()):
            self._publish_definition(dev)
            self.outbox.put(self.topics.availability(dev.id), "online" if dev.state.online else "offline")
            if dev.state.values:
                self._schedule_state_publish(dev.id)
        await asyncio.gather(self.outbox.flush(), self.homeassistant.republish())
        self.bus.publish("bridge", mqtt="connected")

    def _mqtt_lost(self) -> None:
        self.bus.publish("bridge", mqtt="disconnected")

    # -- queries ------------------------------------------------------------------------

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


def error_status(e: BaseException) -> tuple[int, dict[str, Any]]:
    """The HTTP status (and extra fields) for an error from the command path."""
    if isinstance(e, NotNow):  # the value is fine; the device's state conflicts (RFC 9110 §15.5.10)
        return 409, {"field": e.field, "rule": e.rule}
    if isinstance(e, InvalidCommand):
        return 422, {"field": e.field, "rule": e.rule}
    if isinstance(e, DeviceNotFound):
        return 404, {}
    if isinstance(e, (DeviceOffline, DeviceUnreachable)):
        return 409, {}
    if isinstance(e, BrokerUnavailable):
        return 503, {}
    if isinstance(e, CommandTimeout):
        return 504, {}
    return 500, {}
