"""The event bus: the core publishes, each subscriber reads its own bounded queue."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Event:
    """device_added, device_updated, state, availability, sync_progress..."""

    __slots__ = ("type", "data")  # one per state change: a plain slotted object is the cheapest

    def __init__(self, type: str, data: dict[str, Any]) -> None:
        self.type = type
        self.data = data

    def __repr__(self) -> str:
        return f"Event({self.type!r}, {self.data!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and (self.type, self.data) == (other.type, other.data)

    __hash__ = None  # type: ignore[assignment]  # data is a dict

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **self.data}


class Overflow(Exception):
    """The subscriber fell more than its queue behind; it must resynchronise (reload state)."""


class Subscription:
    """A bounded queue of events. When it fills, the subscriber is cut off, never the publisher.

    A deque and the futures of waiting readers rather than an asyncio.Queue: `publish` runs once
    per state change, and the queue's task accounting (task_done, join) is never used here.
    """

    def __init__(self, bus: "Bus", maxsize: int) -> None:
        self._bus = bus
        self._maxsize = maxsize
        self._events: deque[Event | None] = deque()  # None: overflowed, the last item
        self._getters: deque[asyncio.Future[None]] = deque()
        self.overflowed = False

    def _offer(self, event: Event) -> None:
        if self.overflowed:
            return
        if len(self._events) < self._maxsize:
            self._events.append(event)
        else:
            # Dropping silently would leave the subscriber with wrong state; cutting it off
            # makes it reconnect and reload, which is always correct.
            self.overflowed = True
            self._bus.unsubscribe(self)
            self._events.clear()
            self._events.append(None)
        self._wake_next()

    def _next(self) -> Event:
        event = self._events.popleft()
        if event is None:
            raise Overflow("event queue overflowed")
        return event

    async def get(self) -> Event:
        while not self._events:
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                if getter.done() and not getter.cancelled():
                    if self._events:
                        self._wake_next()  # woken, then cancelled: pass the wake-up on
                else:
                    getter.cancel()
                    try:
                        self._getters.remove(getter)
                    except ValueError:
                        pass
                raise
        return self._next()

    def _wake_next(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    async def get_batch(self, limit: int = 500) -> list[Event]:
        """The next event and every one already waiting behind it (up to `limit`): one per tick."""
        events = [await self.get()]
        while len(events) < limit and self._events:
            events.append(self._next())
        return events

    def drain(self) -> list[Event]:
        """Every event queued so far, without waiting; raises Overflow like get()."""
        events: list[Event] = []
        while self._events:
            events.append(self._next())
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
        for sub in tuple(self._subs):  # a full subscriber unsubscribes itself meanwhile
            sub._offer(event)

    @property
    def subscribers(self) -> int:
        return len(self._subs)
