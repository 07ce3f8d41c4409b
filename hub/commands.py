"""Commands: validate, hand to the device's driver, wait until the device confirms; and the MQTT
`hub/<id>/set` entry point, bounded. Errors map to one status table (`error_status`)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from .driver import BrokerUnavailable, DeviceTimeout, DeviceUnreachable, Driver
from .model import Action, Color, InvalidCommand, NotNow, Numeric, validate_command
from .mqtt import MqttLink
from .registry import Device, Registry
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


Spawn = Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]


class Commands:
    """Every command in flight, from REST, WebSocket, scenes or MQTT."""

    def __init__(self, registry: Registry, drivers: Mapping[str, Driver], mqtt: MqttLink, topics: Topics,
                 spawn: Spawn, *, timeout: float,
                 on_unreachable: Callable[[str, str], None]) -> None:
        self.registry = registry
        self.drivers = drivers
        self.mqtt = mqtt
        self.topics = topics
        self.spawn = spawn
        self.timeout = timeout
        self._on_unreachable = on_unreachable
        self._pending: list[_Pending] = []
        self._mqtt_sets = 0  # MQTT commands in flight (bounded by MQTT_COMMANDS_IN_FLIGHT)
        self._mqtt_refusals = 0
        self._mqtt_flooded = False  # a refusal was logged since the last accepted command
        self.mqtt_refusals_dropped = 0

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
            async with asyncio.timeout(self.timeout):
                try:
                    await driver.send(device_id, values)
                except DeviceUnreachable as e:
                    self._on_unreachable(device_id, str(e) or "unreachable")
                    raise
                except TimeoutError as e:  # the driver's own (the deadline above cancels instead)
                    raise DeviceTimeout(f"{device_id} did not answer: {e}") from None
                except (InvalidCommand, DeviceTimeout, BrokerUnavailable, asyncio.CancelledError):
                    raise
                except Exception as e:  # outside the contract: a bug in the driver
                    log.exception("driver %s: send to %s failed", dev.info.driver, device_id)
                    raise DriverFailed(f"driver {dev.info.driver} failed: {e!r}") from e
                await pending.future
        except TimeoutError:
            raise CommandTimeout(
                f"{device_id} did not confirm {', '.join(sorted(pending.expected)) or 'delivery'} "
                f"within {self.timeout:g} s") from None
        finally:
            self._pending.remove(pending)
            if not pending.future.done():
                pending.future.cancel()
        return dict(dev.state.values)

    def confirm(self, device_id: str, values: Mapping[str, Any], dev: Device) -> None:
        if not self._pending:  # the common case: a device reporting on its own
            return
        for p in self._pending:
            if p.device_id != device_id or p.future.done():
                continue
            for key, reported in values.items():
                if key in p.expected and _confirms(dev.info.expose(key), p.expected[key], reported):
                    del p.expected[key]
            if not p.expected:
                p.future.set_result(None)

    def fail(self, device_id: str, error: Exception) -> None:
        """Every command waiting on this device ends with `error` (it went offline, was forgotten)."""
        for p in self._pending:
            if p.device_id == device_id and not p.future.done():
                p.future.set_exception(error)

    # -- MQTT hub/<id>/set ------------------------------------------------------------------------

    def on_mqtt_set(self, topic: str, payload: bytes, retain: bool) -> None:
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
        task = self.spawn(self._publish_result(device_id, result), "mqtt-set-refused")
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
        await self._publish_result(device_id, result)

    async def _publish_result(self, device_id: str, result: dict[str, Any]) -> None:
        try:
            await self.mqtt.publish(self.topics.set_result(device_id), dumps(result), qos=1)
        except BrokerUnavailable:
            pass


class DriverFailed(Exception):
    """The driver's send() raised something outside the error contract: a bug (500)."""


def error_status(e: BaseException) -> tuple[int, dict[str, Any]]:
    """The HTTP status (and extra fields) for an error from the command path (README "Errors")."""
    if isinstance(e, NotNow):  # the value is fine; the device's state conflicts (RFC 9110 §15.5.10)
        return 409, {"field": e.field, "rule": e.rule}
    if isinstance(e, InvalidCommand):  # DeviceRejected too: the device's own rule
        return 422, {"field": e.field, "rule": e.rule}
    if isinstance(e, DeviceNotFound):
        return 404, {}
    if isinstance(e, DeviceOffline):
        return 409, {}
    if isinstance(e, (DeviceUnreachable, BrokerUnavailable)):
        return 503, {}
    if isinstance(e, (CommandTimeout, DeviceTimeout)):
        return 504, {}
    return 500, {}


__all__ = ["CommandTimeout", "Commands", "DeviceNotFound", "DeviceOffline", "DriverFailed",
           "MQTT_COMMANDS_IN_FLIGHT", "MQTT_REFUSALS_IN_FLIGHT", "WS_COMMANDS_IN_FLIGHT", "error_status"]
