"""The driver API: everything a device driver may use from the hub, and nothing more.

A driver is one module with one `Driver` subclass, registered in the `hub.drivers` entry-point
group (built-in drivers too). The core finds services by mDNS and offers each to the drivers
whose `service_types` match; a driver that finds devices another way (PJLink search) does so
from `start()` and reports them through the context.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol

from .model import DeviceInfo

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, bool], None]  # topic, payload, retained


class DeviceUnreachable(Exception):
    """The driver could not deliver a command (device closed the connection, timed out...)."""


class BrokerUnavailable(Exception):
    """The MQTT broker is not connected right now; nothing was sent."""


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


class Mqtt(Protocol):
    """The hub's one MQTT connection, as drivers see it."""

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Call handler for each message matching the filter (resubscribed after reconnects)."""

    def unsubscribe(self, topic_filter: str, handler: MessageHandler) -> None: ...

    async def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        """Publish; raises BrokerUnavailable when the broker is not connected."""

    @property
    def connected(self) -> bool: ...


class DriverContext(Protocol):
    """What the core gives a driver: report what you learn, use the shared MQTT link."""

    mqtt: Mqtt
    clock: Callable[[], float]
    options: Mapping[str, Mapping[str, Any]]  # [drivers.<name>] tables of the config

    def device_found(self, info: DeviceInfo) -> None:
        """A device exists (new, or its definition/address changed). Idempotent."""

    def state_changed(self, device_id: str, values: Mapping[str, Any]) -> None:
        """The device reported these property values (already decoded to expose values)."""

    def target_accepted(self, device_id: str, values: Mapping[str, Any]) -> None:
        """The device accepted these targets and is moving toward them (Homie 5 `$target`)."""

    def availability_changed(self, device_id: str, online: bool, reason: str = "") -> None: ...

    def device_error(self, device_id: str, message: str) -> None:
        """The device sent something unusable; shown on the device, logged once."""

    def spawn(self, coro: Awaitable[Any], name: str) -> None:
        """Run a background task owned by the core (cancelled at stop, errors logged)."""


class Driver:
    """Base class of a driver. Subclasses set the class attributes and override what they need."""

    name: ClassVar[str] = ""
    service_types: ClassVar[tuple[str, ...]] = ()  # mDNS types to be offered, e.g. "_homie._tcp.local."
    generic: ClassVar[bool] = False  # True: any specific driver that claims a service wins over this one

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    async def start(self) -> None:
        """Start background work (subscriptions, searches). Called once before any offer."""

    async def stop(self) -> None:
        """Undo start(): stop every task and socket the driver owns."""

    def identify(self, seen: Discovered) -> str | None:
        """The stable device id for this service, or None if it isn't this driver's.

        Raise ValueError with a reason for a service that claims to be ours but is unusable
        (junk TXT): the core logs it once and ignores the service.
        """
        return None

    async def seen(self, device_id: str, seen: Discovered) -> None:
        """A service identified as `device_id` appeared or changed (address, TXT)."""

    async def gone(self, device_id: str) -> None:
        """The service said goodbye (mDNS TTL 0) or expired; by default the device goes offline."""
        self.ctx.availability_changed(device_id, False, "mDNS goodbye")

    async def send(self, device_id: str, values: Mapping[str, Any]) -> None:
        """Deliver validated values to the device. Confirmation comes later via state_changed."""
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
