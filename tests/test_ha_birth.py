"""The HA discovery publisher's logic, on the in-memory MQTT link: birth, dedupe, disconnects, removal."""

from __future__ import annotations

import asyncio
import json

from hub.ha.discovery import Origin
from hub.ha.publisher import HaDiscovery
from hub.model import Access, Binary, DeviceInfo
from hub.registry import Device
from hub.testing import FakeMqtt
from hub.topics import Topics

PLUG = DeviceInfo("plug", "Plug", "homie", (Binary(name="on", access=Access.STATE | Access.SET),))
CONFIG = "homeassistant/device/plug/config"


class Gate:
    """A sleep the test releases by hand; records the delays asked for."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.open = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        await self.open.wait()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)  # let spawned publish tasks run (no time passes)


async def test_birth_online_republishes_once_per_burst_after_a_random_delay() -> None:
    mqtt, gate, devices = FakeMqtt(), Gate(), [Device(PLUG)]
    ha = HaDiscovery(mqtt, Topics(), "homeassistant", Origin("hub", "1"), lambda: devices,
                     delay=lambda: 1.5, sleep=gate.sleep)
    await ha.start()
    mqtt.inject("homeassistant/status", "offline", retained=False)
    await settle()
    assert gate.asked == []
    for _ in range(3):
        mqtt.inject("homeassistant/status", "online", retained=False)
    await settle()
    assert gate.asked == [1.5] and mqtt.published == []
    gate.open.set()
    await settle()
    assert [t for t, _ in mqtt.published] == [CONFIG]
    assert json.loads(mqtt.published[0][1])["dev"]["name"] == "Plug"
    await ha.stop()
    mqtt.inject("homeassistant/status", "online", retained=False)  # unsubscribed: nothing
    assert len(gate.asked) == 1


async def test_configs_are_sent_when_they_change_and_again_after_a_reconnect() -> None:
    mqtt, dev = FakeMqtt(), Device(PLUG)
    ha = HaDiscovery(mqtt, Topics(), "homeassistant", Origin("hub", "1"), lambda: [dev])
    await ha.start()
    ha.device_changed(dev)
    ha.device_changed(dev)  # same config: not resent
    await settle()
    assert len(mqtt.published) == 1
    dev.user_room = "Kitchen"
    ha.device_changed(dev)
    await settle()
    assert len(mqtt.published) == 2 and json.loads(mqtt.published[1][1])["dev"]["suggested_area"] == "Kitchen"

    mqtt.connected = False
    dev.user_name = "Kettle"
    ha.device_changed(dev)  # offline: nothing now ...
    await settle()
    assert len(mqtt.published) == 2
    mqtt.connected = True
    await ha.republish()  # ... everything on the next connect
    assert json.loads(mqtt.published[-1][1])["dev"]["name"] == "Kettle"

    ha.device_forgotten("plug")
    await settle()
    assert mqtt.published[-1] == (CONFIG, "")
    await ha.stop()


async def test_switched_off_it_only_clears_old_configs_once() -> None:
    mqtt, dev = FakeMqtt(), Device(PLUG)
    ha = HaDiscovery(mqtt, Topics(), "homeassistant", Origin("hub", "1"), lambda: [dev], enabled=False)
    await ha.start()
    assert mqtt.handlers == []  # HA's birth means nothing to it
    await ha.republish()
    assert mqtt.published == [(CONFIG, "")]
    await ha.republish()  # later reconnects: nothing
    ha.device_changed(dev)
    await settle()
    assert mqtt.published == [(CONFIG, "")]
    await ha.stop()


async def test_an_ignored_device_leaves_home_assistant_and_comes_back_when_unignored() -> None:
    mqtt, dev = FakeMqtt(), Device(PLUG)
    ha = HaDiscovery(mqtt, Topics(), "homeassistant", Origin("hub", "1"), lambda: [dev])
    ha.device_changed(dev)
    dev.ignored = True
    ha.device_changed(dev)
    await ha.republish()  # on reconnect too: nothing for it but the removal
    dev.ignored = False
    ha.device_changed(dev)
    await settle()
    sent = [p for _, p in mqtt.published]
    assert [bool(p) for p in sent] == [True, False, False, True]
