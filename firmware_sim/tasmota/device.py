"""The asyncio side of a simulated Tasmota device: one MQTT connection with a last will.

Connect with will `tele/<t>/LWT` = `Offline` (retained, as the firmware sets it), publish
`Online` and the boot messages, subscribe to the command topics, publish native discovery
(retained) after `discovery_delay` simulated seconds (the firmware waits 10 s after boot), then
`tele/<t>/STATE` and `SENSOR` every TelePeriod simulated seconds (the device's, settable by command). Reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Protocol

import aiomqtt

from firmware_sim.common.backoff import Backoff
from firmware_sim.common.net import BrokerAddress

from .model import OFFLINE, Message, TasmotaDevice

log = logging.getLogger(__name__)


class Clock(Protocol):
    """Simulated time (`firmware_sim.common.clock.SimClock` fits)."""

    def now(self) -> float: ...

    def real_seconds(self, sim_seconds: float) -> float: ...


class TasmotaSim:
    """Runs one `TasmotaDevice` against a broker; `start()` connects in the background, `stop()` leaves."""

    def __init__(self, device: TasmotaDevice, broker: BrokerAddress, clock: Clock, *,
                 discovery_delay: float = 10.0, keepalive: int = 30) -> None:
        self.device = device
        self.broker = broker
        self.clock = clock
        self.discovery_delay = discovery_delay
        self.keepalive = keepalive
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._period_changed = asyncio.Event()

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"tasmota-{self.device.config.mqtt_topic}")

    async def stop(self) -> None:
        """Say `Offline` (retained) and disconnect cleanly, as a restart from the console does."""
        self._stopping.set()
        client = self._client
        if client is not None and self.ready.is_set():
            with contextlib.suppress(aiomqtt.MqttError, asyncio.TimeoutError):
                await asyncio.wait_for(client.publish(self.device.lwt_topic, OFFLINE, qos=1, retain=True), 3)
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5)
            self._task = None
        self.ready.clear()

    async def __aenter__(self) -> TasmotaSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                await self._session(backoff)
            except* aiomqtt.MqttError as group:
                log.warning("%s: MQTT connection to %s failed: %s", self.device.config.mqtt_topic,
                            self.broker.url, group.exceptions[0])
            except* Exception:  # a bug must not kill the device for good: log, back off, retry
                log.exception("%s: session crashed", self.device.config.mqtt_topic)
            finally:
                self._client = None
                self.ready.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff.next_delay())

    async def _session(self, backoff: Backoff) -> None:
        dev = self.device
        will = aiomqtt.Will(dev.lwt_topic, OFFLINE, qos=1, retain=True)
        async with aiomqtt.Client(self.broker.host, self.broker.port, identifier=dev.config.client_id,
                                  will=will, keepalive=self.keepalive, clean_session=True, timeout=10,
                                  socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]) as client:
            for topic in dev.command_topics:
                await client.subscribe(topic, qos=0)
            await self._publish(client, dev.boot(self.clock.now()))
            self._client = client
            backoff.reset()
            self.ready.set()
            log.info("tasmota %s (%s) online on %s", dev.config.mqtt_topic, dev.config.mac, self.broker.url)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._messages(client))
                tg.create_task(self._discovery(client))
                tg.create_task(self._telemetry(client))

    async def _publish(self, client: aiomqtt.Client, messages: list[Message]) -> None:
        for m in messages:
            await client.publish(m.topic, m.payload, qos=1 if m.retain else 0, retain=m.retain)

    async def _messages(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            command = self.device.command_of(message.topic.value)
            if command is None:
                continue
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload or "").encode()
            period = self.device.teleperiod
            try:
                out = self.device.handle(command, payload, self.clock.now())
            except Exception:  # a bad command must never stop the device
                log.exception("%s: error handling %s", self.device.config.mqtt_topic, message.topic.value)
                continue
            await self._publish(client, out)
            if self.device.teleperiod != period:
                self._period_changed.set()

    async def _discovery(self, client: aiomqtt.Client) -> None:
        await asyncio.sleep(self.clock.real_seconds(self.discovery_delay))  # the firmware's boot delay
        await self._publish(client, self.device.discovery(self.clock.now()))

    async def _telemetry(self, client: aiomqtt.Client) -> None:
        """Every TelePeriod; a new TelePeriod restarts the period (0 stops telemetry)."""
        publish = True
        while True:
            if publish and self.device.teleperiod:
                await self._publish(client, self.device.telemetry(self.clock.now()))
            self._period_changed.clear()
            period = self.device.teleperiod
            try:
                await asyncio.wait_for(self._period_changed.wait(),
                                       self.clock.real_seconds(period) if period else None)
                publish = False
            except asyncio.TimeoutError:
                publish = True
