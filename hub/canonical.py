"""The canonical MQTT API the hub publishes (README "MQTT API"): per device a retained definition,
availability and state under `<base>/<id>/…`, plus Home Assistant discovery for each definition.

Retained topics go through the outbox, which coalesces: a device changing ten times between two
rounds costs one publish, built from the registry when it is sent.
"""

from __future__ import annotations

import asyncio
from functools import partial

from .ha.publisher import HaDiscovery
from .mqtt import MqttLink
from .outbox import Outbox
from .registry import Device, Registry
from .topics import Topics, dumps



class CanonicalPublisher:
    def __init__(self, mqtt: MqttLink, topics: Topics, registry: Registry, outbox: Outbox,
                 homeassistant: HaDiscovery) -> None:
        self.mqtt = mqtt
        self.topics = topics
        self.registry = registry
        self.outbox = outbox
        self.homeassistant = homeassistant
        self._state_due: set[str] = set()  # devices whose state message is queued, not yet built

    def definition(self, dev: Device) -> None:
        """One retained definition per device; a device found again in a burst goes out once."""
        self.outbox.put(self.topics.definition(dev.id), partial(self._definition_payload, dev.id))
        self.homeassistant.device_changed(dev)

    def state(self, device_id: str) -> None:
        """The device's retained state, built when sent: a chatty device costs one publish per round."""
        if device_id not in self._state_due and self.mqtt.connected:  # queued: it will carry the newest values
            self._state_due.add(device_id)
            self.outbox.put(self.topics.state(device_id), partial(self._state_payload, device_id))

    def availability(self, device_id: str, online: bool) -> None:
        self.outbox.put(self.topics.availability(device_id), "online" if online else "offline")

    def forgotten(self, device_id: str) -> None:
        """Clear every retained topic of the device (an empty retained message deletes, MQTT 3.1.1 §3.3.1.3)."""
        self.homeassistant.device_forgotten(device_id)  # first, so HA lets go of the topics cleared next
        for topic in (self.topics.state(device_id), self.topics.availability(device_id),
                      self.topics.definition(device_id)):
            self.outbox.put(topic, b"")

    def _definition_payload(self, device_id: str) -> str | None:
        dev = self.registry.get(device_id)
        if dev is None:
            return None
        definition = dev.info.definition()
        definition.update(name=dev.name, room=dev.room)
        return dumps(definition)

    def _state_payload(self, device_id: str) -> str | None:
        self._state_due.discard(device_id)
        dev = self.registry.get(device_id)
        return dumps(dev.state.values) if dev is not None else None

    async def republish(self) -> None:
        """After every (re)connect: all retained definitions, availability and state."""
        self._state_due.clear()  # what was queued before the link dropped may never have been built
        for dev in list(self.registry.devices.values()):
            self.definition(dev)
            self.availability(dev.id, dev.state.online)
            if dev.state.values:
                self.state(dev.id)
        await asyncio.gather(self.outbox.flush(), self.homeassistant.republish())
