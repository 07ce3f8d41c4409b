"""The WebSocket with ?batch=1: a burst of events arrives whole, in order, in a few frames."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import RunningHub


async def test_a_burst_arrives_in_order_in_few_frames(running: RunningHub) -> None:
    async with aiohttp.ClientSession(headers=running.headers) as s:
        async with s.ws_connect(f"{running.url}/api/ws?batch=1") as ws:
            assert (await ws.receive_json())["type"] == "snapshot"
            for i in range(1500):  # one turn of the loop: what 1,000 devices coming online looks like
                running.hub.bus.publish("state", id=f"dev-{i:04d}", state={"on": True})
            frames, events = 0, []
            async with asyncio.timeout(20):
                while len(events) < 1500:
                    frame = await ws.receive_json()
                    assert frame["type"] == "batch"
                    frames += 1
                    events += [e for e in frame["events"] if e["type"] == "state"]
    assert [e["id"] for e in events] == [f"dev-{i:04d}" for i in range(1500)]  # none lost, none twice
    assert frames <= 5  # 500 a frame at most, not one frame per event


async def test_without_batch_each_event_is_its_own_frame(running: RunningHub) -> None:
    async with aiohttp.ClientSession(headers=running.headers) as s:
        async with s.ws_connect(f"{running.url}/api/ws") as ws:
            assert (await ws.receive_json())["type"] == "snapshot"
            running.hub.bus.publish("state", id="dev-1", state={"on": True})
            running.hub.bus.publish("state", id="dev-2", state={"on": False})
            async with asyncio.timeout(10):
                first, second = await ws.receive_json(), await ws.receive_json()
    assert (first["id"], second["id"]) == ("dev-1", "dev-2")
