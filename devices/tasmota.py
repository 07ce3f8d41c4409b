"""Tasmota driver: every Tasmota on the broker that announces itself (native discovery, SetOption19 0).

Found by its retained `tasmota/discovery/<MAC>/config`; its sensors by `…/sensors`. Topics come
from the FullTopic in that message, so custom `%topic%/%prefix%/` layouts work. On adoption, and
whenever its last will says Online again, the driver asks for `State` and `Status 10` so the state
is known without waiting a TelePeriod. An empty retained config means the device was removed.
Payload handling lives in `tasmota_codec` (pure); this module only does the MQTT I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from hub.driver import BrokerUnavailable, Claim, DeviceUnreachable, Driver, DriverContext, MqttSeen, Priority, Seen, Wiring
from hub.model import DeviceInfo

from . import tasmota_codec as codec

CONFIG_FILTER = codec.DISCOVERY_PREFIX + "+/config"
SENSORS_FILTER = codec.DISCOVERY_PREFIX + "+/sensors"
MAX_CACHED = 10_000  # devices known on the broker, adopted or not
POLL_DEBOUNCE = 2.0  # seconds: adoption and the retained LWT arrive together; ask once
CONNECT_WAIT_STEPS = 100  # of 0.1 s: how long a question waits for the hub's MQTT connection


@dataclass(slots=True)  # one per device: no __dict__ each
class _Device:
    mac: str
    config: codec.Config | None = None
    sensors: dict[str, Any] | None = None
    wiring: Wiring | None = None
    subscribed: tuple[str, ...] = ()
    claimed: bool = False
    online: bool | None = None
    last_poll: float = float("-inf")

    @property
    def id(self) -> str:
        return "tasmota-" + self.mac.lower()


class TasmotaDriver(Driver):
    name: ClassVar[str] = "tasmota"
    priority: ClassVar[int] = Priority.FAMILY
    mqtt_discovery: ClassVar[tuple[str, ...]] = (CONFIG_FILTER,)

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        self._devices: dict[str, _Device] = {}  # by MAC
        self._by_base: dict[str, _Device] = {}  # stat/tele topic base → device

    async def start(self) -> None:
        # the core offers non-empty configs; removals (empty) and sensors are this driver's own
        self.ctx.mqtt.subscribe(CONFIG_FILTER, self._on_discovery)
        self.ctx.mqtt.subscribe(SENSORS_FILTER, self._on_discovery)

    async def stop(self) -> None:
        self.ctx.mqtt.unsubscribe(CONFIG_FILTER, self._on_discovery)
        self.ctx.mqtt.unsubscribe(SENSORS_FILTER, self._on_discovery)
        for dev in self._devices.values():
            self._unsubscribe(dev)

    # -- discovery -------------------------------------------------------------------------------

    def identify(self, seen: Seen) -> Claim | None:
        if not isinstance(seen, MqttSeen) or not seen.payload:
            return None  # an empty config is a removal: _on_discovery handles it
        found = codec.mac_of(seen.topic)
        if found is None or found[1] != "config":
            return None
        config = codec.parse_config(seen.payload, found[0])  # ValueError: ours, but unusable
        return Claim(config.device_id, "tasmota:" + config.mac)

    async def seen(self, device_id: str, seen: Seen) -> None:
        assert isinstance(seen, MqttSeen)
        found = codec.mac_of(seen.topic)
        dev = self._device(found[0]) if found else None
        if dev is None:
            return
        config = codec.parse_config(seen.payload, dev.mac)
        dev.claimed = True
        if config != dev.config:
            dev.config = config
            self._subscribe(dev)
            self._describe(dev)
        await self._poll(dev)

    async def released(self, device_id: str) -> None:
        for dev in self._devices.values():
            if dev.id == device_id:
                dev.claimed = False
                self._unsubscribe(dev)

    def _device(self, mac: str) -> _Device | None:
        dev = self._devices.get(mac)
        if dev is None and len(self._devices) < MAX_CACHED:
            dev = self._devices[mac] = _Device(mac)
        return dev

    def _on_discovery(self, topic: str, payload: bytes, retained: bool) -> None:
        found = codec.mac_of(topic)
        if found is None:
            return
        mac, kind = found
        if kind == "config":
            if not payload:
                self._removed(mac)
            return
        dev = self._device(mac)
        if dev is None:
            return
        if not payload:
            dev.sensors = None
        else:
            try:
                dev.sensors = codec.parse_sensors(payload)
            except ValueError as e:
                if dev.claimed:
                    self.ctx.device_error(dev.id, f"discovery sensors: {e}")
                return
        if dev.claimed and dev.config is not None:
            self._describe(dev)

    def _describe(self, dev: _Device) -> None:
        """Tell the hub what the device is and what it last said (the discovery `sn` is a reading too)."""
        config = dev.config
        assert config is not None
        dev.wiring = codec.wiring(config, dev.sensors)
        self.ctx.device_found(DeviceInfo(
            id=dev.id, name=config.name, driver=self.name, exposes=codec.exposes(dev.wiring),
            model=config.model or "Tasmota", manufacturer="Tasmota", address=config.ip,
        ))
        if dev.sensors:
            self.ctx.report(dev.id, dev.wiring, codec.flatten(dev.sensors))
        if dev.online is not None:
            self.ctx.availability_changed(dev.id, dev.online, "LWT")

    def _removed(self, mac: str) -> None:
        """An empty retained config: the device was removed (SetOption19 changed, or reset)."""
        dev = self._devices.pop(mac, None)
        if dev is None:
            return
        self._unsubscribe(dev)
        if dev.claimed:
            self.ctx.device_removed(dev.id)

    # -- the device's own topics -------------------------------------------------------------------

    def _subscribe(self, dev: _Device) -> None:
        self._unsubscribe(dev)
        assert dev.config is not None
        dev.subscribed = (dev.config.stat, dev.config.tele)
        for base in dev.subscribed:
            # two devices configured with one Topic: the newest announcement has it (one handler each)
            if self._by_base.setdefault(base, dev) is not dev:
                self.ctx.log.warning("%s and %s share the topic %s+; %s has it now", self._by_base[base].id,
                                     dev.id, base, dev.id)
                old = self._by_base[base]
                old.subscribed = tuple(b for b in old.subscribed if b != base)
                self._by_base[base] = dev
                continue
            self.ctx.mqtt.subscribe(base + "+", self._on_message)

    def _unsubscribe(self, dev: _Device) -> None:
        for base in dev.subscribed:
            if self._by_base.get(base) is dev:
                del self._by_base[base]
                self.ctx.mqtt.unsubscribe(base + "+", self._on_message)
        dev.subscribed = ()

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        dev = self._by_base.get(topic[:topic.rfind("/") + 1])
        if dev is None or dev.config is None or not dev.claimed or dev.wiring is None:
            return
        try:
            reading = codec.read(dev.config, topic, payload)
        except ValueError as e:
            self.ctx.device_error(dev.id, f"{topic}: {e}")
            return
        if reading.online is not None and reading.online is not dev.online:
            dev.online = reading.online
            self.ctx.availability_changed(dev.id, reading.online, "LWT " + ("online" if reading.online else "offline"))
            if reading.poll:
                self.ctx.spawn(self._poll(dev), f"poll-{dev.mac}")
        if reading.values:
            self.ctx.report(dev.id, dev.wiring, reading.values)

    async def _poll(self, dev: _Device) -> None:
        """Ask for the power/light state and the sensors (Tasmota answers on stat/RESULT and STATUS10)."""
        now = self.ctx.clock.monotonic()
        if dev.config is None or now - dev.last_poll < POLL_DEBOUNCE:
            return
        dev.last_poll = now
        for _ in range(CONNECT_WAIT_STEPS):  # retained discovery replays while the hub is still connecting
            if self.ctx.mqtt.connected:
                break
            await self.ctx.clock.sleep(0.1)
        try:
            await self.ctx.mqtt.publish(dev.config.cmnd + "STATE", "", qos=0)
            if dev.sensors:
                await self.ctx.mqtt.publish(dev.config.cmnd + "STATUS", "10", qos=0)
        except BrokerUnavailable:
            dev.last_poll = float("-inf")  # the next Online (after the reconnect) asks again
            self.ctx.log.info("%s: broker unavailable; state comes with the next telemetry", dev.id)

    # -- commands ----------------------------------------------------------------------------------

    async def send(self, device_id: str, values: Mapping[str, Any]) -> None:
        dev = self._devices.get(device_id.removeprefix("tasmota-").upper())
        if dev is None or dev.config is None or dev.wiring is None or not dev.claimed:
            raise DeviceUnreachable(f"{device_id} has not announced itself")
        commands = dev.wiring.encode(values)
        # Dimmer before Power: with SetOption20 0 a Dimmer powers the light on, so
        # {"on": false, "brightness": 40} ends off at 40
        for key in sorted(commands, key=lambda k: k != "Dimmer"):
            await self.ctx.mqtt.publish(dev.config.cmnd + key, commands[key], qos=1)
