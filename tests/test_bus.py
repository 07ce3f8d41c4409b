"""The event bus: bounded per subscriber, never blocking the publisher, no wake-up lost."""

from __future__ import annotations

import asyncio

import pytest

from hub.bus import Bus, Overflow


async def test_events_arrive_in_order_and_in_batches() -> None:
    bus = Bus()
    with bus.subscribe() as sub:
        for i in range(5):
            bus.publish("state", id="a", n=i)
        assert [e.data["n"] for e in await sub.get_batch(limit=3)] == [0, 1, 2]
        assert [e.to_json() for e in sub.drain()] == [{"type": "state", "id": "a", "n": 3},
                                                      {"type": "state", "id": "a", "n": 4}]


async def test_a_full_subscriber_is_cut_off_and_the_others_go_on() -> None:
    bus = Bus()
    slow, fast = bus.subscribe(maxsize=2), bus.subscribe(maxsize=10)
    for i in range(3):
        bus.publish("state", n=i)
    with pytest.raises(Overflow):
        await slow.get()
    assert slow.overflowed and bus.subscribers == 1
    assert [e.data["n"] for e in fast.drain()] == [0, 1, 2]


async def test_a_reader_cancelled_after_its_wake_up_passes_the_event_on() -> None:
    bus = Bus()
    with bus.subscribe() as sub:
        first = asyncio.ensure_future(sub.get())
        second = asyncio.ensure_future(sub.get())
        await asyncio.sleep(0)  # both waiting
        bus.publish("state", n=1)  # wakes the first reader...
        first.cancel()  # ...which is cancelled before it runs
        event = await asyncio.wait_for(second, 5)
        assert event.data == {"n": 1}


async def test_a_cancelled_reader_leaves_nothing_behind() -> None:
    bus = Bus()
    with bus.subscribe() as sub:
        for _ in range(100):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(sub.get(), 0.001)
        assert not sub._getters
