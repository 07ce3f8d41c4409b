"""Retained topics through the outbox reach Mosquitto once each, with their latest payload."""

from __future__ import annotations

import asyncio
import subprocess

from hub.broker import Broker
from hub.mqtt import MqttLink
from hub.outbox import Outbox


async def test_a_burst_goes_out_coalesced_and_complete(broker: Broker) -> None:
    link = MqttLink(broker.host, broker.port or 0, client_id="outbox-test", will_topic="hub/bridge/state")
    await link.start()
    outbox = Outbox(link, window=50)
    try:
        await link.wait_connected(10)
        for round_ in range(3):  # every device changes three times within the burst
            for i in range(1000):
                outbox.put(f"burst/dev-{i:04d}", f"{i}:{round_}")
        outbox.put("burst/gone", lambda: None)  # a device forgotten before its turn: skipped
        await asyncio.wait_for(outbox.flush(), 30)
        assert outbox.sent == 1000  # all put in one turn of the loop: one publish per topic
    finally:
        await outbox.stop()
        await link.stop()
    out = subprocess.run(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", "burst/#", "-v", "-W", "3",
         "-C", "1000", "--retained-only"], capture_output=True, text=True, timeout=20)
    retained = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert len(retained) == 1000  # every device, once, and nothing for the one that was skipped
    assert all(retained[f"burst/dev-{i:04d}"] == f"{i}:2" for i in range(1000))  # the latest payload
