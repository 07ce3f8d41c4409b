"""Homie 5 driver: any self-describing Homie device found by mDNS (`_homie._tcp`) becomes a device."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hub.driver import Discovered, Driver
from hub.model import DeviceInfo, shared

from .homie_mapping import HOMIE_ID, Description, decode_value, encode_value, parse_description, parse_topic, to_expose

log = logging.getLogger(__name__)

ROOT = "homie/5/"
MAX_CACHED = 10_000  # devices seen on MQTT but not (yet) by mDNS
ONLINE_STATES = {"ready"}


@dataclass(slots=True)  # one per device: no __dict__ each
class _Device:
    id: str
    description: Description | None = None
    description_error: str = ""
    state: str = ""
    raw_values: dict[str, bytes] = field(default_factory=dict)
    seen: Discovered | None = None  # set once mDNS has found it: only then is it reported


class HomieDriver(Driver):
    """Generic: a more specific driver may claim a Homie service first (the projector's player)."""

    name: ClassVar[str] = "homie"
    generic: ClassVar[bool] = True
    service_types: ClassVar[tuple[str, ...]] = ("_homie._tcp.local.",)

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._devices: dict[str, _Device] = {}

    async def start(self) -> None:
        self.ctx.mqtt.subscribe(ROOT + "#", self._on_message)

    async def stop(self) -> None:
        self.ctx.mqtt.unsubscribe(ROOT + "#", self._on_message)

    def identify(self, seen: Discovered) -> str | None:
        device_id = seen.txt.get("id", "")
        if not device_id:
            raise ValueError("TXT record has no id")
        if not HOMIE_ID.match(device_id) or len(device_id) > 64:
            raise ValueError(f"TXT id {device_id[:80]!r} is not a Homie id")
        topic = seen.txt.get("topic", ROOT + device_id)
        if topic.rstrip("/") != ROOT + device_id:
            raise ValueError(f"TXT topic {topic[:80]!r} is not {ROOT}{device_id}")
        return device_id

    def _device(self, device_id: str) -> _Device | None:
        dev = self._devices.get(device_id)
        if dev is None:
            if len(self._devices) >= MAX_CACHED:
                return None
            dev = self._devices[device_id] = _Device(device_id)
        return dev

    async def seen(self, device_id: str, seen: Discovered) -> None:
        dev = self._device(device_id)
        if dev is None:
            return
        dev.seen = seen
        self._report(dev)

    def _report(self, dev: _Device) -> None:
        """Tell the core about the device once mDNS found it and it has described itself."""
        if dev.seen is None or (dev.description is None and not dev.description_error):
            return
        desc = dev.description
        exposes = shared(tuple(to_expose(p) for p in desc.properties)) if desc else ()
        self.ctx.device_found(DeviceInfo(
            id=dev.id, driver=self.name, exposes=exposes,
            name=(desc.name if desc and desc.name else dev.seen.txt.get("name", "")) or dev.id,
            model=(desc.type if desc else "") or dev.seen.txt.get("type", "") or "homie",
            manufacturer="Homie 5", room=dev.seen.txt.get("room", ""), address=dev.seen.address,
            error=dev.description_error,
        ))
        if desc is not None:
            self._decode_values(dev, dict(dev.raw_values))
        self.ctx.availability_changed(dev.id, dev.state in ONLINE_STATES, f"$state {dev.state or 'unknown'}")

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        t = parse_topic(topic, ROOT)
        if t is None or t.kind in ("set", "other"):
            return
        dev = self._device(t.device_id)
        if dev is None:
            return
        if t.kind == "description":
            if not payload:
                return  # retained message cleared: the device was removed from the broker
            try:
                dev.description = parse_description(payload)
                dev.description_error = ""
            except ValueError as e:
                dev.description_error = f"invalid $description: {e}"
                if dev.seen is not None:
                    self.ctx.device_error(dev.id, dev.description_error)
            self._report(dev)
        elif t.kind == "state":
            dev.state = payload.decode("utf-8", errors="replace")[:32]
            if dev.seen is not None and (dev.description or dev.description_error):
                self.ctx.availability_changed(dev.id, dev.state in ONLINE_STATES, f"$state {dev.state}")
        elif t.kind == "value":
            dev.raw_values[t.suffix] = payload
            if dev.seen is not None and dev.description is not None:
                self._decode_values(dev, {t.suffix: payload})
        elif t.kind == "target" and dev.seen is not None and dev.description is not None:
            prop = dev.description.by_topic().get(t.suffix)
            if prop is not None:
                try:
                    self.ctx.target_accepted(dev.id, {prop.expose_name: decode_value(prop, payload)})
                except ValueError as e:
                    self.ctx.device_error(dev.id, str(e))

    def _decode_values(self, dev: _Device, raw: Mapping[str, bytes]) -> None:
        assert dev.description is not None
        props = dev.description.by_topic()
        values: dict[str, Any] = {}
        for suffix, payload in raw.items():
            prop = props.get(suffix)
            if prop is None or not payload:
                continue
            try:
                values[prop.expose_name] = decode_value(prop, payload)
            except ValueError as e:
                self.ctx.device_error(dev.id, f"dropped a bad value: {e}")
        if values:
            self.ctx.state_changed(dev.id, values)

    async def send(self, device_id: str, values: Mapping[str, Any]) -> None:
        dev = self._devices.get(device_id)
        if dev is None or dev.description is None:
            raise ValueError(f"{device_id} has not described itself")
        props = dev.description.by_expose()
        for name, value in values.items():
            prop = props[name]
            await self.ctx.mqtt.publish(f"{ROOT}{device_id}/{prop.topic_suffix}/set",
                                        encode_value(prop, value), qos=1, retain=False)
