"""Homie 5 driver: any self-describing Homie device on the broker becomes a device.

Found over MQTT alone (`homie/5/+/$state`, as every Homie implementation publishes it); an mDNS
`_homie._tcp` record is a hint that adds a room and an address. Homie 5 in brief: retained
`$description` (JSON: nodes → properties), `$state` (init, ready, disconnected, sleeping, lost),
values at `<node>/<property>`, commands to `…/set`, the target a device moves to at `…/$target`,
and removal by clearing the retained `$state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any, ClassVar, NamedTuple

from hub.driver import Claim, DeviceUnreachable, Discovered, Driver, DriverContext, MqttSeen, Priority, Wire, Wiring
from hub.model import DeviceInfo, shared

from .homie_mapping import (HOMIE_ID, Description, Property, decode_value, encode_value, parse_description, parse_topic,
                            to_expose, topic_filters)

ROOT = "homie/5/"
MAX_CACHED = 10_000  # devices known on the broker, reported or not
ONLINE_STATES = {"ready"}


class Hint(NamedTuple):
    """The part of a `_homie._tcp` record the device's definition uses (not the whole record:
    a thousand devices would keep a thousand TXT tables)."""

    address: str
    room: str
    name: str
    type: str


@dataclass(slots=True)  # one per device: no __dict__ each
class _Device:
    id: str
    description: Description | None = None
    wiring: Wiring | None = None
    description_error: str = ""
    state: str = ""
    raw_values: dict[str, bytes] = field(default_factory=dict)
    claimed: bool = False  # the hub gave it to this driver: only then is it reported
    hint: Hint | None = None  # what its mDNS record adds, if it has one


NO_HINT = Hint("", "", "", "")


@lru_cache(maxsize=1024)  # a fleet has few distinct descriptions; a device keeps its own reference
def _wiring(properties: tuple[Property, ...]) -> Wiring:
    """Each property is a wire: key `node/prop`, Homie payloads ⇄ expose values.

    A Wiring holds no device state, so devices that describe the same properties share one
    (measured: 2.2 KiB per device when each of 1,000 identical plugs had its own)."""
    return Wiring(Wire(to_expose(p), p.topic_suffix, partial(encode_value, p), partial(decode_value, p))
                  for p in properties)


class HomieDriver(Driver):
    """Generic: a more specific driver may claim a Homie device first (the projector's player)."""

    name: ClassVar[str] = "homie"
    priority: ClassVar[int] = Priority.GENERIC
    service_types: ClassVar[tuple[str, ...]] = ("_homie._tcp.local.",)
    mqtt_discovery: ClassVar[tuple[str, ...]] = (ROOT + "+/$state",)

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        self._devices: dict[str, _Device] = {}

    async def start(self) -> None:
        for topic_filter in topic_filters(ROOT + "+"):
            self.ctx.mqtt.subscribe(topic_filter, self._on_message)

    async def stop(self) -> None:
        for topic_filter in topic_filters(ROOT + "+"):
            self.ctx.mqtt.unsubscribe(topic_filter, self._on_message)

    # -- discovery -----------------------------------------------------------------------------------

    def identify(self, seen: Discovered | MqttSeen) -> Claim | None:
        if isinstance(seen, MqttSeen):
            t = parse_topic(seen.topic, ROOT)
            if t is None or t.kind != "state" or not seen.payload or len(t.device_id) > 64:
                return None  # an empty $state is a removal: _on_message handles it
            return Claim(t.device_id, "homie:" + t.device_id)
        device_id = seen.txt.get("id", "")
        if not device_id:
            raise ValueError("TXT record has no id")
        if not HOMIE_ID.match(device_id) or len(device_id) > 64:
            raise ValueError(f"TXT id {device_id[:80]!r} is not a Homie id")
        topic = seen.txt.get("topic", ROOT + device_id)
        if topic.rstrip("/") != ROOT + device_id:
            raise ValueError(f"TXT topic {topic[:80]!r} is not {ROOT}{device_id}")
        return Claim(device_id, "homie:" + device_id)

    async def seen(self, device_id: str, seen: Discovered | MqttSeen) -> None:
        dev = self._device(device_id)
        if dev is None:
            return
        dev.claimed = True
        if isinstance(seen, Discovered):
            txt = seen.txt
            dev.hint = Hint(seen.address, txt.get("room", "")[:80], txt.get("name", "")[:80], txt.get("type", "")[:40])
        self._report(dev)

    async def gone(self, device_id: str) -> None:
        """The mDNS hint left; `$state` (with the device's last will) decides availability."""

    async def released(self, device_id: str) -> None:
        if (dev := self._devices.get(device_id)) is not None:
            dev.claimed = False

    def _device(self, device_id: str) -> _Device | None:
        dev = self._devices.get(device_id)
        if dev is None:
            if len(self._devices) >= MAX_CACHED:
                return None
            dev = self._devices[device_id] = _Device(device_id)
        return dev

    def _report(self, dev: _Device) -> None:
        """Tell the hub about a claimed device once it has described itself (or failed to)."""
        if not dev.claimed or (dev.description is None and not dev.description_error):
            return
        desc, hint = dev.description, dev.hint or NO_HINT
        self.ctx.device_found(DeviceInfo(
            id=dev.id, driver=self.name, exposes=shared(dev.wiring.exposes) if dev.wiring else (),
            name=(desc.name if desc and desc.name else hint.name) or dev.id,
            model=(desc.type if desc else "") or hint.type or "homie",
            manufacturer="Homie 5", room=hint.room, address=hint.address,
            error=dev.description_error,
        ))
        if dev.wiring is not None and dev.raw_values:
            self.ctx.report(dev.id, dev.wiring, dict(dev.raw_values))
        self.ctx.availability_changed(dev.id, dev.state in ONLINE_STATES, f"$state {dev.state or 'unknown'}")

    # -- the device's messages ------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        t = parse_topic(topic, ROOT)
        if t is None or t.kind in ("set", "other"):
            return
        if t.kind == "state" and not payload:
            self._removed(t.device_id)
            return
        dev = self._device(t.device_id)
        if dev is None:
            return
        if t.kind == "description":
            self._described(dev, payload)
        elif t.kind == "state":
            dev.state = payload.decode("utf-8", errors="replace")[:32]
            if dev.claimed and (dev.description or dev.description_error):
                self.ctx.availability_changed(dev.id, dev.state in ONLINE_STATES, f"$state {dev.state}")
        elif t.kind == "value":
            if not payload:
                dev.raw_values.pop(t.suffix, None)  # a cleared retained value: nothing to report
                return
            dev.raw_values[shared(t.suffix)] = payload  # one `node/prop` string for the whole fleet
            if dev.claimed and dev.wiring is not None:
                self.ctx.report(dev.id, dev.wiring, {t.suffix: payload})
        elif t.kind == "target" and dev.claimed and dev.wiring is not None and payload:
            values, problems = dev.wiring.decode({t.suffix: payload})
            for problem in problems:
                self.ctx.device_error(dev.id, problem)
            if values:
                self.ctx.target_accepted(dev.id, values)

    def _described(self, dev: _Device, payload: bytes) -> None:
        if not payload:
            return  # the description is being cleared: the empty $state that removes it comes first
        try:
            desc = parse_description(payload)
        except ValueError as e:
            dev.description, dev.wiring = None, None
            dev.description_error = f"invalid $description: {e}"
            self._report(dev)  # found (with the error) before the error is reported on it
            if dev.claimed:
                self.ctx.device_error(dev.id, dev.description_error)
            return
        else:
            if dev.description is not None and desc.version != dev.description.version:
                # a new version may rename or drop properties: keep only values it still has
                keep = desc.by_topic()
                dev.raw_values = {k: v for k, v in dev.raw_values.items() if k in keep}
            dev.description, dev.wiring, dev.description_error = desc, _wiring(desc.properties), ""
        self._report(dev)

    def _removed(self, device_id: str) -> None:
        """Homie 5: clearing the retained `$state` removes the device."""
        dev = self._devices.pop(device_id, None)
        if dev is not None and dev.claimed:
            self.ctx.device_removed(device_id)

    # -- commands ------------------------------------------------------------------------------------

    async def send(self, device_id: str, values: Mapping[str, Any]) -> None:
        dev = self._devices.get(device_id)
        if dev is None or dev.wiring is None:
            raise DeviceUnreachable(f"{device_id} has not described itself")
        for suffix, payload in dev.wiring.encode(values).items():
            await self.ctx.mqtt.publish(f"{ROOT}{device_id}/{suffix}/set", payload, qos=1, retain=False)
