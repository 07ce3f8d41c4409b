"""Publishes Home Assistant discovery for the registry's devices and follows HA's birth message."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..driver import BrokerUnavailable, Mqtt
from ..registry import Device
from ..tasks import Tasks, logged
from ..topics import Topics, dumps
from .discovery import Origin, config_topic, device_config

log = logging.getLogger(__name__)


def _digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


def _birth_delay() -> float:
    # HA's docs ask for a random delay before answering its birth, so hubs don't all answer at once
    return random.uniform(0.5, 2.5)


class HaDiscovery:
    """Retained `<prefix>/device/<id>/config` per device; republished on connect and on HA's birth.

    Switched off (`enabled=False`) it publishes nothing but, once, the removal of every config an
    earlier run may have left retained: no ghost devices in HA after turning discovery off.
    """

    def __init__(self, mqtt: Mqtt, topics: Topics, prefix: str, origin: Origin,
                 devices: Callable[[], Iterable[Device]], *, enabled: bool = True,
                 delay: Callable[[], float] = _birth_delay,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.enabled = enabled
        self.mqtt = mqtt
        self.topics = topics
        self.prefix = prefix
        self.origin = origin
        self.devices = devices
        self.delay = delay
        self.sleep = sleep
        # what HA has now, per device, as a digest of the config (a config is ~1 KiB; with 1,000
        # devices the configs themselves would be a megabyte kept only to compare): unchanged
        # configs aren't resent
        self._sent: dict[str, bytes] = {}
        self._tasks = Tasks(logged(log, "Home Assistant discovery task"))
        self._birth: asyncio.Task[None] | None = None
        self._cleared = False

    @property
    def status_topic(self) -> str:
        return f"{self.prefix}/status"

    async def start(self) -> None:
        if self.enabled:
            self.mqtt.subscribe(self.status_topic, self._on_status)

    async def stop(self) -> None:
        if self.enabled:
            self.mqtt.unsubscribe(self.status_topic, self._on_status)
        await self._tasks.cancel()

    def payload(self, dev: Device) -> bytes:
        """The device's config; empty (removed from HA) for one the household ignored ("not mine")."""
        if dev.ignored:
            return b""
        return dumps(device_config(dev.info, name=dev.name, room=dev.room, topics=self.topics, origin=self.origin))

    def device_changed(self, dev: Device) -> None:
        """The device's definition, name or room changed: tell HA if its config did."""
        if not self.enabled:
            return
        payload = self.payload(dev)
        digest = _digest(payload)
        if self._sent.get(dev.id) != digest and self.mqtt.connected:
            self._sent[dev.id] = digest
            self._tasks.spawn(self._publish(dev.id, payload), f"ha-config-{dev.id}")

    def device_forgotten(self, device_id: str) -> None:
        """An empty retained config removes the device and its entities from HA."""
        self._sent.pop(device_id, None)
        self._tasks.spawn(self._publish(device_id, b""), f"ha-forget-{device_id}")

    async def republish(self) -> None:
        """Every device's config (after a connect, or HA's birth); BrokerUnavailable if the link drops."""
        sem = asyncio.Semaphore(100)
        self._sent.clear()
        if not self.enabled and self._cleared:
            return

        async def one(dev: Device) -> None:
            payload = self.payload(dev) if self.enabled else b""
            async with sem:
                await self.mqtt.publish(config_topic(self.prefix, dev.id), payload, qos=1, retain=True)
            self._sent[dev.id] = _digest(payload)

        await asyncio.gather(*(one(d) for d in list(self.devices())))
        self._cleared = not self.enabled

    async def _publish(self, device_id: str, payload: bytes) -> None:
        try:
            await self.mqtt.publish(config_topic(self.prefix, device_id), payload, qos=1, retain=True)
        except BrokerUnavailable:
            self._sent.pop(device_id, None)  # the next connect republishes everything

    def _on_status(self, topic: str, payload: bytes, retain: bool) -> None:
        if payload.strip().lower() != b"online":
            return
        if self._birth is None or self._birth.done():
            self._birth = self._tasks.spawn(self._answer_birth(), "ha-birth")

    async def _answer_birth(self) -> None:
        await self.sleep(self.delay())
        log.info("Home Assistant came online; republishing discovery for %d devices", len(list(self.devices())))
        try:
            await self.republish()
        except BrokerUnavailable:
            pass  # our own reconnect republishes

