"""Retained MQTT topics waiting to go out: the latest payload per topic, sent by one task.

A burst (1,000 devices found, a reconnect, a chatty sensor) costs one entry per topic, not a
task or a publish per change: a topic changed five times while its last payload was in flight
goes out once more, with the latest payload, and at most `window` QoS 1 acknowledgements are
awaited at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .driver import BrokerUnavailable
from .mqtt import MqttLink

log = logging.getLogger(__name__)

Payload = bytes | str | Callable[[], bytes | str | None]  # a callable is read when sent; None skips


class Outbox:
    """`put()` from anywhere on the loop; `flush()` waits until what was put has gone out."""

    def __init__(self, mqtt: MqttLink, window: int = 100) -> None:
        self.mqtt = mqtt
        self.window = window
        self._pending: dict[str, Payload] = {}
        self._sender: asyncio.Task[None] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self.sent = 0

    def put(self, topic: str, payload: Payload) -> None:
        """Publish `payload` retained on `topic` soon; replaces a payload not yet sent."""
        if not self.mqtt.connected:
            return  # everything retained is put again when the link reconnects
        self._pending[topic] = payload
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send(), name="mqtt-outbox")

    async def flush(self) -> None:
        """Until everything put so far was acknowledged, or dropped because the link went down."""
        if self._sender is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(done)
        await done

    async def stop(self) -> None:
        self._pending.clear()
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
            self._sender = None

    async def _send(self) -> None:
        in_flight: set[asyncio.Future[None]] = set()
        waiters: list[asyncio.Future[None]] = []
        try:
            while self._pending or in_flight:
                if not self._pending:
                    await asyncio.wait(in_flight)
                    in_flight = set()
                    continue
                batch, self._pending = self._pending, {}
                waiters, self._waiters = self._waiters, []
                for topic, payload in batch.items():
                    data = payload() if callable(payload) else payload
                    if data is None:
                        continue
                    if len(in_flight) >= self.window:
                        _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    ack = self.mqtt.publish_nowait(topic, data, qos=1, retain=True)
                    self.sent += 1
                    if ack is not None:
                        in_flight.add(ack)
                if waiters:
                    if in_flight:
                        await asyncio.wait(in_flight)
                        in_flight = set()
                    _wake(waiters)
        except BrokerUnavailable:
            self._pending.clear()  # the reconnect puts everything again
        except Exception:
            log.exception("publishing retained topics failed; they go out again on reconnect")
        finally:
            if self._sender is asyncio.current_task():
                self._sender = None
            _wake(waiters)
            _wake(self._waiters)


def _wake(waiters: list[asyncio.Future[None]]) -> None:
    for w in waiters:
        if not w.done():
            w.set_result(None)
    waiters.clear()
