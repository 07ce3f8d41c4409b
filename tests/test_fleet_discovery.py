"""Hundreds of devices announced at once: each found once, saved once, one definition each."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

import paho.mqtt.client as paho

from tests.conftest import RunningHub, until

COUNT = 300


async def test_a_burst_of_announcements_loses_and_duplicates_nothing(running: RunningHub, tmp_path: Path) -> None:
    hub, broker = running.hub, running.broker
    loop = asyncio.get_running_loop()
    definitions: Counter[str] = Counter()
    all_defined = asyncio.Event()

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        definitions[message.topic] += 1
        if len(definitions) == COUNT:
            loop.call_soon_threadsafe(all_defined.set)

    subscribed = asyncio.Event()
    observer = paho.Client(paho.CallbackAPIVersion.VERSION2)  # independent: its own thread and code
    observer.on_message = on_message
    observer.on_subscribe = lambda *a: loop.call_soon_threadsafe(subscribed.set)
    observer.connect(broker.host, broker.port or 0)
    observer.subscribe("hub/bridge/devices/#", qos=1)
    observer.loop_start()
    fleet = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim.cli", "fleet", "--count", str(COUNT), "--prefix", "burst",
         "--broker", broker.url, "--state-dir", str(tmp_path / "fleet"), "--keepalive", "30"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "fleet.log", "wb"))
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        online = lambda: sum(1 for d in hub.registry.devices.values() if d.state.online)  # noqa: E731
        await until(hub, lambda: online() == COUNT, 90, f"all {COUNT} devices online")
        placed = lambda: sum(1 for d in hub.registry.devices.values() if d.info.address)  # noqa: E731
        await until(hub, lambda: placed() == COUNT, 60, f"all {COUNT} mDNS records matched")
        await asyncio.wait_for(all_defined.wait(), 30)
        await hub.outbox.flush()
        await hub.registry.flush()
        rows = await hub.store.call(lambda db: db.execute("select count(*), count(distinct id) from devices").fetchone())
    finally:
        fleet.terminate()
        fleet.wait(30)
        observer.loop_stop()
        observer.disconnect()
    assert len(hub.registry.devices) == COUNT and rows == (COUNT, COUNT)
    # at most two retained definitions per device: when the broker shows it, and when its mDNS record
    # adds the address (often coalesced into one); never one per message of the burst
    assert set(definitions.values()) <= {1, 2}
