"""A Homie 5 device runtime: one MQTT connection per device, driving a model.

`HomieDevice` is the thin asyncio adapter over the pure wire code in `wire`: it owns one
aiomqtt connection (last will `$state`=`lost`), publishes `$state`, `$description` and the
values, routes `/set` commands to a device model (see `firmware_sim.homie.devices`), ticks the model
with a simulation clock, reconnects with backoff and saves the model's state atomically.

Homie 5 references: homieiot.github.io, convention v5 ("Device lifecycle", "$target").
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiomqtt

from firmware_sim.common.backoff import Backoff
from firmware_sim.common.clock import SimClock
from firmware_sim.common.state import StateStore

from .wire import FAULT_PREFIX, InvalidValue, Model, Update, description, topic, valid_id

log = logging.getLogger(__name__)

@dataclass
class DeviceConfig:
    """Identity and connection settings of one simulated device."""

    device_id: str
    name: str
    room: str = ""
    host: str = "127.0.0.1"
    port: int = 1883
    keepalive: int = 10
    save_interval: float = 30.0


class HomieDevice:
    """One Homie 5 device on its own MQTT connection; `start()`/`stop()` own the connection."""

    MIN_TICK = 0.05
    MAX_TICK = 30.0

    def __init__(self, config: DeviceConfig, model: Model, clock: SimClock,
                 store: StateStore | None = None,
                 on_command: Callable[[str, str, Any], None] | None = None,
                 rng: random.Random | None = None) -> None:
        if not valid_id(config.device_id):
            raise ValueError(f"bad Homie device id {config.device_id!r}")
        self.config = config
        self.model = model
        self.clock = clock
        self.store = store
        self.on_command = on_command
        self.rng = rng or random.Random()
        self.ready = asyncio.Event()
        self.description = description(config.name, model.kind, model.nodes())
        self._nodes = {n.id: n for n in model.nodes()}
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._last_saved: dict[str, Any] | None = None
        self._last_save_at = 0.0
        self._save_lock = asyncio.Lock()
        self._logged_bad: set[str] = set()

    @property
    def device_id(self) -> str:
        return self.config.device_id

    @property
    def connected(self) -> bool:
        return self._client is not None and self.ready.is_set()

    async def start(self) -> None:
        """Restore saved state, then connect in the background (and keep reconnecting)."""
        if self.store is not None:
            data = await asyncio.to_thread(self.store.load, self.device_id)
            if data:
                self.model.restore(data)
                log.info("%s: restored state %s", self.device_id, data)
        self._last_saved = self.model.saved()
        self.model.begin(self.clock.now())
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"homie-{self.device_id}")

    async def stop(self) -> None:
        """Publish `$state` = disconnected, disconnect cleanly (no will), save state."""
        self._stopping.set()
        client = self._client
        if client is not None and self.ready.is_set():
            try:
                await asyncio.wait_for(
                    client.publish(topic(self.device_id, "$state"), "disconnected", qos=1, retain=True), 3)
            except (aiomqtt.MqttError, asyncio.TimeoutError) as exc:
                log.debug("%s: could not publish disconnected: %s", self.device_id, exc)
        if self._task is not None:
            self._task.cancel()
            # aiomqtt waits up to its timeout for the socket to close after DISCONNECT; the
            # farewell is published already, so don't let a slow close hold the stop up
            await asyncio.wait({self._task}, timeout=5)
            if not self._task.done():
                log.warning("%s: MQTT disconnect still pending after 5 s; leaving it", self.device_id)
            self._task = None
        self.ready.clear()
        await self._save(force=True)

    async def push(self, updates: Iterable[Update]) -> None:
        """Publish updates made outside a tick or command (e.g. by the media player's fetcher)."""
        client = self._client
        if client is None:
            return  # the values live in the model; a reconnect republishes them
        try:
            await self._publish_updates(client, list(updates))
        except aiomqtt.MqttError as exc:
            log.debug("%s: push failed: %s", self.device_id, exc)

    def wake(self) -> None:
        """Ask the tick loop to run now (after the model changed outside the runtime)."""
        self._wake.set()

    async def _run(self) -> None:
        backoff = Backoff(rng=self.rng)
        while not self._stopping.is_set():
            try:
                await self._session(backoff)
            except* aiomqtt.MqttError as group:
                log.warning("%s: MQTT connection to %s:%s failed: %s", self.device_id,
                            self.config.host, self.config.port, group.exceptions[0])
            except* Exception:  # a bug must not kill the device for good: log, back off, retry
                log.exception("%s: device session crashed", self.device_id)
            finally:
                self._client = None
                self.ready.clear()
            delay = backoff.next_delay()
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _session(self, backoff: Backoff) -> None:
        will = aiomqtt.Will(topic(self.device_id, "$state"), "lost", qos=1, retain=True)
        async with aiomqtt.Client(
            self.config.host, self.config.port, identifier=f"firmware-sim-{self.device_id}",
            will=will, keepalive=self.config.keepalive, clean_session=True, timeout=10,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        ) as client:
            await self._announce(client)
            self._client = client
            backoff.reset()
            self.ready.set()
            log.debug("%s: ready on %s:%s", self.device_id, self.config.host, self.config.port)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._messages(client))
                tg.create_task(self._ticker(client))

    async def _announce(self, client: aiomqtt.Client) -> None:
        """Homie 5 lifecycle: `init`, subscribe, description, values, then `ready`."""
        dev = self.device_id
        await client.publish(topic(dev, "$state"), "init", qos=1, retain=True)
        await client.subscribe(topic(dev, "+", "+", "set"), qos=1)
        await client.subscribe(f"{FAULT_PREFIX}/{dev}/fault", qos=1)
        await client.publish(topic(dev, "$description"), json.dumps(self.description), qos=1, retain=True)
        await self._publish_updates(client, self.model.tick(self.clock.now()) + self.model.snapshot())
        await client.publish(topic(dev, "$state"), "ready", qos=1, retain=True)

    async def _publish_updates(self, client: aiomqtt.Client, updates: list[Update],
                               command: tuple[str, str, bytes] | None = None) -> None:
        """Values retained QoS 1; non-retained ones QoS 0 (Homie 5, "QoS and retained messages").

        A `$target` set by a command repeats the command's payload byte for byte (Homie 5,
        "Target attribute"), so the controller can match it to what it sent.
        """
        for u in updates:
            prop = self._nodes[u.node].prop(u.prop) if u.node in self._nodes else None
            if prop is None:
                log.error("%s: model produced unknown property %s/%s", self.device_id, u.node, u.prop)
                continue
            if u.target:
                echo = command is not None and command[:2] == (u.node, u.prop)
                payload: str | bytes = command[2] if echo else prop.encode(u.value)  # type: ignore[index]
                await client.publish(topic(self.device_id, u.node, u.prop, "$target"), payload, qos=1, retain=True)
            elif prop.retained:
                await client.publish(topic(self.device_id, u.node, u.prop), prop.encode(u.value), qos=1, retain=True)
            else:
                await client.publish(topic(self.device_id, u.node, u.prop), prop.encode(u.value), qos=0, retain=False)

    async def _messages(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                await self._handle(client, message.topic.value, message.payload)
            except aiomqtt.MqttError:
                raise
            except Exception:  # a bad message must never stop the device
                log.exception("%s: error handling %s", self.device_id, message.topic.value)

    def _log_once(self, key: str, msg: str, *args: Any) -> None:
        level = logging.WARNING if key not in self._logged_bad else logging.DEBUG
        if len(self._logged_bad) < 1000:
            self._logged_bad.add(key)
        log.log(level, msg, *args)

    async def _handle(self, client: aiomqtt.Client, name: str, payload: Any) -> None:
        if not isinstance(payload, (bytes, bytearray)):
            payload = b"" if payload is None else str(payload).encode()
        if name.startswith(f"{FAULT_PREFIX}/"):
            await self._handle_fault(client, payload)
            return
        parts = name.split("/")
        if len(parts) != 6 or parts[5] != "set":
            return
        node_id, prop_id = parts[3], parts[4]
        node = self._nodes.get(node_id)
        prop = node.prop(prop_id) if node else None
        if prop is None or not prop.settable:
            self._log_once(f"unknown:{node_id}/{prop_id}", "%s: ignored /set on %s/%s (not settable)",
                           self.device_id, node_id, prop_id)
            return
        try:
            value = prop.decode(payload)
        except InvalidValue as exc:
            self._log_once(f"bad:{node_id}/{prop_id}", "%s: ignored invalid /set: %s", self.device_id, exc)
            return
        try:
            updates = self.model.command(node_id, prop_id, value, self.clock.now())
        except InvalidValue as exc:
            self._log_once(f"bad:{node_id}/{prop_id}", "%s: refused /set: %s", self.device_id, exc)
            return
        log.debug("%s: %s/%s <- %r", self.device_id, node_id, prop_id, value)
        if self.model.saved() != self._last_saved:
            # persist before confirming: a device killed right after its echo keeps the value
            await self._save()
        await self._publish_updates(client, updates, command=(node_id, prop_id, bytes(payload)))
        if self.on_command is not None:
            self.on_command(node_id, prop_id, value)
        self._wake.set()

    async def _handle_fault(self, client: aiomqtt.Client, payload: bytes) -> None:
        """Test hooks on `firmware-sim/<id>/fault` (not Homie): {"garbage": suffix, "payload": ..}."""
        try:
            data = json.loads(payload)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            self._log_once("fault", "%s: ignored bad fault message: %s", self.device_id, exc)
            return
        log.info("%s: fault injected: %s", self.device_id, data)
        if "garbage" in data:
            suffix = str(data["garbage"]).strip("/")
            raw = data.get("payload", "")
            body = raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()
            if not suffix or "+" in suffix or "#" in suffix:
                self._log_once("fault", "%s: garbage needs a topic suffix without wildcards", self.device_id)
            else:
                await client.publish(topic(self.device_id, suffix), body, qos=1,
                                     retain=bool(data.get("retain", False)))
        await self._publish_updates(client, self.model.fault(data, self.clock.now()))
        self._wake.set()

    async def _ticker(self, client: aiomqtt.Client) -> None:
        while True:
            self._wake.clear()  # a command arriving from here on wakes the wait below at once
            now = self.clock.now()
            await self._publish_updates(client, self.model.tick(now))
            if time.monotonic() - self._last_save_at > self.config.save_interval:
                await self._save()
            wait_sim = self.model.next_tick(self.clock.now())
            wait = self.MAX_TICK if wait_sim is None else self.clock.real_seconds(wait_sim)
            wait = min(self.MAX_TICK, max(self.MIN_TICK, wait))
            try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel (stop() hangs)
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _save(self, force: bool = False) -> None:
        if self.store is None:
            return
        async with self._save_lock:
            data = self.model.saved()
            self._last_save_at = time.monotonic()
            if data == self._last_saved and not force:
                return
            self._last_saved = data
            try:
                await asyncio.to_thread(self.store.save, self.device_id, data)
            except OSError as exc:
                log.error("%s: could not save state: %s", self.device_id, exc)
