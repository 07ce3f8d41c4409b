"""Test helpers for the firmware_sim tests: an independent MQTT observer (aiomqtt only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt


class Observer:
    """Records every message on the subscribed topics; lets a test wait for a value."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.latest: dict[str, bytes] = {}
        self.history: list[tuple[str, bytes, bool]] = []
        self._changed = asyncio.Condition()

    async def _pump(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            async with self._changed:
                self.latest[message.topic.value] = payload
                self.history.append((message.topic.value, payload, bool(message.retain)))
                self._changed.notify_all()

    async def wait_for(self, topic: str, expected: str | Callable[[bytes], bool] | None = None,
                       timeout: float = 10.0) -> bytes:
        """The latest payload of `topic` once it equals `expected` (or satisfies it)."""
        def ok() -> bool:
            if topic not in self.latest:
                return False
            if expected is None:
                return True
            if callable(expected):
                return expected(self.latest[topic])
            return self.latest[topic] == expected.encode()

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(ok), timeout)
            except asyncio.TimeoutError:
                raise AssertionError(
                    f"{topic} never became {expected!r}; last {self.latest.get(topic)!r}") from None
        return self.latest[topic]

    def count(self, topic: str) -> int:
        return sum(1 for t, _, _ in self.history if t == topic)

    async def wait_count(self, topic: str, n: int, timeout: float = 10.0) -> bytes:
        """Until `topic` has been received at least `n` times; its latest payload."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.count(topic) >= n), timeout)
            except asyncio.TimeoutError:
                raise AssertionError(f"{topic} received {self.count(topic)} times, not {n}") from None
        return self.latest[topic]

    async def json(self, topic: str, timeout: float = 10.0) -> Any:
        return json.loads(await self.wait_for(topic, timeout=timeout))

    async def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        await self.client.publish(topic, payload, qos=1, retain=retain)


@contextlib.asynccontextmanager
async def observe(host: str, port: int, *topics: str) -> AsyncIterator[Observer]:
    async with aiomqtt.Client(host, port, identifier=None) as client:
        observer = Observer(client)
        pump = asyncio.create_task(observer._pump())
        for t in topics:
            await client.subscribe(t, qos=1)
        try:
            yield observer
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump
