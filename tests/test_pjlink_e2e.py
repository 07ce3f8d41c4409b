"""The PJLink driver against the project's projector simulator as a black box (its CLI only):
real mDNS on loopback, a real Mosquitto for the media player, PJLink TCP + Class 2 UDP."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devices.pjlink import PJLinkDriver
from hub.broker import Broker
from hub.discovery import Discovery
from hub.driver import Claim, Discovered
from hub.mqtt import MqttLink
from tests.pjlink_helpers import RecordingContext

PASSWORD = "e2e-secret"
FIRMWARE_SIM = Path(sys.executable).with_name("firmware-sim")


def free_port_for_tcp_and_udp() -> int:
    for _ in range(50):
        t, u = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


@pytest.fixture
async def mqtt(broker: Broker) -> AsyncIterator[MqttLink]:
    link = MqttLink(broker.host, broker.port, client_id="pjlink-e2e", will_topic="hub/bridge/state")
    await link.start()
    await link.wait_connected(10)
    try:
        yield link
    finally:
        await link.stop()


async def test_driver_finds_and_drives_the_simulated_projector(
    broker: Broker, mqtt: MqttLink, tmp_path: Path
) -> None:
    port, notify = free_port_for_tcp_and_udp(), free_port_for_tcp_and_udp()
    ctx = RecordingContext()
    ctx.mqtt = mqtt  # type: ignore[assignment]
    driver = PJLinkDriver(ctx.configure(PJLinkDriver, dict(default_password=PASSWORD, search_address="127.0.0.1", port=port, notify_port=notify,
                          udp_host="127.0.0.1", poll_interval=3600, transition_poll=0.2, search_interval=3600)))

    async def on_seen(seen: Discovered) -> None:
        answer = driver.identify(seen)
        if answer:
            await driver.seen(answer.device_id if isinstance(answer, Claim) else answer, seen)

    async def on_gone(service_type: str, name: str) -> None:
        pass

    sim = await asyncio.create_subprocess_exec(
        str(FIRMWARE_SIM), "projector", "--host", "127.0.0.1", "--port", str(port), "--udp-port", str(port),
        "--notify-port", str(notify), "--password", PASSWORD, "--name", "E2E Projector",
        "--warmup", "0.3", "--cooldown", "0.3", "--state-dir", str(tmp_path / "sim"),
        "--interface", "127.0.0.1", "--broker", broker.url,
    )
    discovery = Discovery(driver.service_types, on_seen, on_gone, ["127.0.0.1"])
    await driver.start()
    await discovery.start()
    try:
        def merged() -> str | None:
            for dev_id, info in ctx.devices.items():
                if info.expose("input") and info.expose("media_url") and ctx.online.get(dev_id):
                    return dev_id
            return None

        dev = await ctx.wait_for(merged, timeout=30)
        assert list(ctx.devices) == [dev] and dev.startswith("projector-")  # ONE device: display + player
        await driver.send(dev, {"power": True})
        await ctx.wait_for(lambda: ctx.state[dev].get("power_state") == "on", timeout=15)
        await driver.send(dev, {"media_volume": 30})
        await ctx.wait_for(lambda: ctx.state[dev].get("media_volume") == 30, timeout=15)
        assert not ctx.errors, ctx.errors
    finally:
        await discovery.stop()
        await driver.stop()
        sim.terminate()
        await asyncio.wait_for(sim.wait(), 10)
