"""The event bus: the core publishes, each subscriber reads its own bounded queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """device_added, device_updated, state, availability, sync_progress..."""

    type: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **self.data}


class Overflow(Exception):
    """The subscriber fell more than its queue behind; it must resynchronise (reload state)."""


class Subscription:
    """A bounded queue of events. When it fills, the subscriber is cut off, never the publisher."""

    def __init__(self, bus: "Bus", maxsize: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    def _offer(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            # Dropping silently would leave the subscriber with wrong state; cutting it off
            # makes it reconnect and reload, which is always correct.
            self.overflowed = True
            self._bus.unsubscribe(self)
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def get(self) -> Event:
        event = await self._queue.get()
        if event is None:
            raise Overflow("event queue overflowed")
        return event

    async def get_batch(self, limit: int = 500) -> list[Event]:
        """The next event and every one already waiting behind it (up to `limit`): one per tick."""
        events = [await self.get()]
        while len(events) < limit and not self._queue.empty():
            event = self._queue.get_nowait()
            if event is None:
                raise Overflow("event queue overflowed")
            events.append(event)
        return events

    def drain(self) -> list[Event]:
        """Every event queued so far, without waiting; raises Overflow like get()."""
        events: list[Event] = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if event is None:
                raise Overflow("event queue overflowed")
            events.append(event)
        return events

    def close(self) -> None:
        self._bus.unsubscribe(self)

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subs.add(sub)
        return sub

    async def wait_until(self, pred: Callable[[], bool], timeout: float) -> bool:
        """Wait for pred() to hold, re-checking after each event (no polling); False when time is up."""
        with self.subscribe(maxsize=100_000) as sub:
            async def loop() -> None:
                while not pred():
                    await sub.get()
            try:
                await asyncio.wait_for(loop(), timeout)
            except asyncio.TimeoutError:
                return False
        return True

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, type: str, **data: Any) -> None:
        if not self._subs:
            return  # nobody listening: a message flood costs no event objects
        event = Event(type, data)
        for sub in list(self._subs):
            sub._offer(event)

    @property
    def subscribers(self) -> int:
        return len(self._subs)
