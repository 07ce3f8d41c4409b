"""Where drivers live: each gets its own context and options, is offered the announcements it
asked for (mDNS service types, MQTT discovery topics), and claims are settled by priority."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .config import ConfigError, driver_options
from .driver import Claim, Discovered, Driver, DriverContext, Host, Mqtt, MqttSeen, Seen
from .model import valid_device_id
from .topics import topic_matches

log = logging.getLogger(__name__)

MAX_THINGS = 20_000  # announcements claimed; bounded so a flood of made-up ids can't grow it forever


@dataclass(slots=True)
class _Owner:
    driver: Driver
    device_id: str


class DriverHost:
    def __init__(self, host: Host, mqtt: Mqtt, clock: Clock, options: Mapping[str, Mapping[str, Any]],
                 log_once: Callable[[str, str], None],
                 spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]) -> None:
        self.host = host
        self.mqtt = mqtt
        self.clock = clock
        self.options = options
        self.log_once = log_once
        self.spawn = spawn
        self.drivers: dict[str, Driver] = {}
        self.contexts: dict[str, DriverContext] = {}
        self._things: dict[str, _Owner] = {}  # thing -> who owns it
        self._by_key: dict[str, str] = {}  # announcement key -> thing (mDNS goodbyes name the service)
        self._filters: list[str] = []

    # -- lifecycle ----------------------------------------------------------------------------------

    def create(self, classes: Mapping[str, type[Driver]]) -> None:
        """Build each driver with its context; options are checked for all before any starts."""
        problems: list[str] = []
        built: list[tuple[str, type[Driver], Any]] = []
        for entry_name, cls in classes.items():
            name = cls.name or entry_name
            try:
                built.append((name, cls, driver_options(name, cls.Options, self.options.get(name))))
            except ConfigError as e:
                problems.extend(str(e).splitlines()[1:])
        if problems:
            raise ConfigError("invalid configuration:\n" + "\n".join(problems))
        for unknown in sorted(set(self.options) - {name for name, _, _ in built}):
            log.warning("[drivers.%s] is configured but no driver %r is installed; ignored", unknown, unknown)
        for name, cls, opts in built:
            ctx = DriverContext(name, self.host, options=opts, mqtt=self.mqtt, clock=self.clock)
            self.contexts[name] = ctx
            self.drivers[name] = cls(ctx)

    async def start(self, name: str) -> None:
        await self.drivers[name].start()

    async def stop(self, name: str) -> None:
        try:
            await self.drivers[name].stop()
        finally:
            await self.contexts[name].aclose()

    def service_types(self) -> list[str]:
        return sorted({t for d in self.drivers.values() for t in d.service_types})

    def subscribe_discovery(self) -> None:
        """One subscription per MQTT discovery filter any driver declared."""
        self._filters = sorted({f for d in self.drivers.values() for f in d.mqtt_discovery})
        for topic_filter in self._filters:
            self.mqtt.subscribe(topic_filter, self._on_mqtt)

    def unsubscribe_discovery(self) -> None:
        for topic_filter in self._filters:
            self.mqtt.unsubscribe(topic_filter, self._on_mqtt)

    # -- offers ---------------------------------------------------------------------------------------

    async def on_mdns(self, seen: Discovered) -> None:
        await self._offer(seen, [d for d in self.drivers.values() if seen.service_type in d.service_types])

    async def on_mdns_gone(self, service_type: str, name: str) -> None:
        thing = self._by_key.get(f"mdns:{name}")
        owner = self._things.get(thing) if thing else None
        if owner is not None and service_type in owner.driver.service_types:
            await owner.driver.gone(owner.device_id)

    def _on_mqtt(self, topic: str, payload: bytes, retained: bool) -> None:
        candidates = [d for d in self.drivers.values() if any(topic_matches(f, topic) for f in d.mqtt_discovery)]
        for topic_filter in self._filters:
            if topic_matches(topic_filter, topic):
                seen = MqttSeen(topic_filter, topic, payload, retained)
                self.spawn(self._offer(seen, candidates), "mqtt-discovery")
                return

    async def _offer(self, seen: Seen, candidates: list[Driver]) -> None:
        """Ask every candidate; the highest priority that claims it gets it (ties: by driver name)."""
        what = seen.name if isinstance(seen, Discovered) else seen.topic
        best: tuple[Driver, str, str] | None = None
        for driver in sorted(candidates, key=lambda d: (-d.priority, d.ctx.name)):
            try:
                answer = driver.identify(seen)
            except ValueError as e:
                self.log_once(what, f"{driver.ctx.name}: ignored {what!r}: {e}")
                continue
            if answer is None:
                continue
            device_id, thing = (answer.device_id, answer.thing) if isinstance(answer, Claim) else (answer, seen.key)
            if not valid_device_id(device_id):
                self.log_once(what, f"{driver.ctx.name}: ignored {what!r}: bad device id {device_id!r}")
                continue
            best = (driver, device_id, thing)
            break
        if best is None:
            return
        driver, device_id, thing = best
        owner = self._things.get(thing)
        if owner is not None and owner.driver is not driver:
            if owner.driver.priority >= driver.priority:
                return  # the owner outranks (or ties with) this claim: it keeps the device
            log.info("%s takes %s over from %s (priority %d > %d)", driver.ctx.name, thing,
                     owner.driver.ctx.name, driver.priority, owner.driver.priority)
            await owner.driver.released(owner.device_id)
            if owner.device_id != device_id:
                self.host.device_removed(owner.device_id, by=owner.driver.ctx.name)
        if owner is None and len(self._things) >= MAX_THINGS:
            self.log_once("things", f"{MAX_THINGS} announcements claimed; ignoring new ones")
            return
        self._things[thing] = _Owner(driver, device_id)
        if len(self._by_key) < MAX_THINGS:
            self._by_key[seen.key] = thing
        await driver.seen(device_id, seen)
