"""Commands in flight are bounded: per WebSocket connection, and for MQTT `hub/<id>/set`.

The device is a real Homie peer on the test Mosquitto that never confirms, so every command
the hub accepts stays in flight; it going offline then answers them all (409) at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import aiomqtt
import pytest

from hub.commands import MQTT_COMMANDS_IN_FLIGHT, WS_COMMANDS_IN_FLIGHT
from tests.conftest import RunningHub, until
from tests.homie_peer import HomiePeer, advertise, loopback_zeroconf

EXTRA = 5  # commands sent beyond the bound


@pytest.fixture
async def silent_lamp(running: RunningHub) -> AsyncIterator[HomiePeer]:
    """A lamp that takes commands and never confirms them; online until the test stops it."""
    running.hub.config.command_timeout = 120  # nothing may time out on its own: the test ends each command
    peer = HomiePeer(running.broker.port, "silent-lamp", echo=False)
    await peer.start()
    aiozc = loopback_zeroconf()
    await advertise(aiozc, peer.id)
    hub = running.hub
    await until(hub, lambda: (d := hub.registry.get(peer.id)) is not None and d.state.online, what="lamp online")
    try:
        yield peer
    finally:
        await peer.stop()
        await aiozc.async_close()


async def test_a_websocket_beyond_its_bound_gets_429(running: RunningHub, silent_lamp: HomiePeer) -> None:
    total = WS_COMMANDS_IN_FLIGHT + EXTRA
    async with aiohttp.ClientSession(headers=running.headers) as s, s.ws_connect(f"{running.url}/api/ws") as ws:
        assert (await ws.receive_json())["type"] == "snapshot"
        for n in range(total):
            await ws.send_json({"type": "set", "id": silent_lamp.id, "state": {"brightness": n}, "request_id": n})

        async def results(count: int) -> list[dict]:
            out: list[dict] = []
            while len(out) < count:
                msg = await ws.receive_json()
                if msg["type"] == "result":
                    out.append(msg)
            return out

        refused = await asyncio.wait_for(results(EXTRA), 20)
        assert [r["status"] for r in refused] == [429] * EXTRA
        assert sorted(r["request_id"] for r in refused) == list(range(WS_COMMANDS_IN_FLIGHT, total))
        assert "too many commands in flight" in refused[0]["error"]

        await silent_lamp.stop()  # the lamp goes offline: every command in flight is answered
        answered = await asyncio.wait_for(results(WS_COMMANDS_IN_FLIGHT), 20)
        assert {r["status"] for r in answered} == {409}
        assert sorted(r["request_id"] for r in answered) == list(range(WS_COMMANDS_IN_FLIGHT))

        # the socket keeps working once the commands in flight have answered
        await ws.send_json({"type": "set", "id": silent_lamp.id, "state": {"brightness": 1}, "request_id": "again"})
        again = (await asyncio.wait_for(results(1), 20))[0]
        assert (again["request_id"], again["status"]) == ("again", 409)


async def test_mqtt_set_beyond_its_bound_gets_an_error_result(running: RunningHub, silent_lamp: HomiePeer) -> None:
    total = MQTT_COMMANDS_IN_FLIGHT + EXTRA
    topic = f"hub/{silent_lamp.id}/set"
    async with aiomqtt.Client("127.0.0.1", running.broker.port, max_inflight_messages=100) as c:
        await c.subscribe(f"{topic}/result", qos=1)
        messages = aiter(c.messages)

        async def results(count: int) -> list[dict]:
            return [json.loads((await anext(messages)).payload) for _ in range(count)]

        await asyncio.gather(*(c.publish(topic, json.dumps({"brightness": n % 100}), qos=1) for n in range(total)))
        refused = await asyncio.wait_for(results(EXTRA), 30)
        assert [(r["status"], r["code"]) for r in refused] == [("error", 429)] * EXTRA
        assert "too many commands in flight" in refused[0]["error"]
        assert silent_lamp.commands.qsize() <= MQTT_COMMANDS_IN_FLIGHT  # refused ones never reach the lamp

        await silent_lamp.stop()
        answered = await asyncio.wait_for(results(MQTT_COMMANDS_IN_FLIGHT), 30)
        assert {r["code"] for r in answered} == {409}

        await c.publish(topic, json.dumps({"brightness": 1}), qos=1)  # the bound is free again
        assert (await asyncio.wait_for(results(1), 30))[0]["code"] == 409


class StalledMqtt:
    """A broker link whose publishes wait until the test releases them (unit test of the bounds)."""

    connected = True

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.published: list[tuple[str, dict]] = []

    async def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        await self.release.wait()
        self.published.append((topic, json.loads(payload)))


async def test_mqtt_refusals_are_bounded_too(tmp_path) -> None:
    """Even the refusals can't grow without bound: past MQTT_REFUSALS_IN_FLIGHT they are dropped and counted."""
    from hub.config import HubConfig
    from hub.commands import MQTT_REFUSALS_IN_FLIGHT
    from hub.core import Hub

    hub = Hub(HubConfig(data_dir=tmp_path))  # constructed, not started: commands for no device fail at once
    mqtt = StalledMqtt()
    hub.mqtt = hub.commands.mqtt = mqtt  # type: ignore[assignment]
    flood = MQTT_COMMANDS_IN_FLIGHT + MQTT_REFUSALS_IN_FLIGHT + EXTRA
    for _ in range(flood):
        hub.commands.on_mqtt_set("hub/nothing/set", b'{"on": true}', False)
    assert len(hub._tasks) == MQTT_COMMANDS_IN_FLIGHT + MQTT_REFUSALS_IN_FLIGHT  # each waits on its publish
    assert hub.mqtt_refusals_dropped == EXTRA
    mqtt.release.set()
    await asyncio.gather(*list(hub._tasks))
    codes = [result["code"] for _, result in mqtt.published]
    assert codes.count(404) == MQTT_COMMANDS_IN_FLIGHT and codes.count(429) == MQTT_REFUSALS_IN_FLIGHT
    hub.commands.on_mqtt_set("hub/nothing/set", b'{"on": true}', False)  # room again
    await asyncio.gather(*list(hub._tasks))
    assert mqtt.published[-1][1]["code"] == 404
