"""The hub's one MQTT connection: last will, reconnect with backoff, resubscribe, dispatch."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

from .driver import BrokerUnavailable, MessageHandler
from .topics import topic_matches

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[Any]]


class MqttLink:
    """Owns the aiomqtt client; `start()` connects in the background, `stop()` says goodbye."""

    def __init__(self, host: str, port: int, *, client_id: str, will_topic: str,
                 username: str | None = None, password: str | None = None, keepalive: int = 30,
                 on_connect: Callable[[], Awaitable[None]] | None = None,
                 on_disconnect: Callable[[], None] | None = None,
                 sleep: Sleep = asyncio.sleep, max_backoff: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.will_topic = will_topic
        self.username = username
        self.password = password
        self.keepalive = keepalive
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self._sleep = sleep
        self.max_backoff = max_backoff
        self._handlers: list[tuple[str, MessageHandler]] = []
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stopping = False
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._subscribed: set[str] = set()  # on the current connection
        self._subscribing = asyncio.Lock()  # one SUBSCRIBE in flight: aiomqtt mis-pairs concurrent SUBACKs
        self.connects = 0
        self.received = 0
        self.dropped = 0

    @property
    def connected(self) -> bool:
        return self._client is not None and self._connected.is_set()

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    # -- subscriptions --------------------------------------------------------------

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        self._handlers.append((topic_filter, handler))
        if self._client is not None:
            self._spawn(self._subscribe_now(topic_filter))

    def unsubscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        self._handlers = [(f, h) for f, h in self._handlers if not (f == topic_filter and h == handler)]

    def _spawn(self, coro: Any) -> None:
        # keep a reference: the loop holds tasks weakly, and stop() cancels what is left
        task = asyncio.get_running_loop().create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _subscribe_now(self, topic_filter: str) -> None:
        client = self._client
        if client is None:
            return  # resubscribed on the next connect
        try:
            async with self._subscribing:
                if topic_filter not in self._subscribed and client is self._client:
                    await client.subscribe(topic_filter, qos=1, timeout=10)
                    self._subscribed.add(topic_filter)
        except aiomqtt.MqttError as e:
            log.warning("subscribe %s failed (%s); retried on reconnect", topic_filter, e)

    def _dispatch(self, topic: str, payload: bytes, retain: bool) -> None:
        self.received += 1
        for topic_filter, handler in self._handlers:
            if topic_matches(topic_filter, topic):
                try:
                    handler(topic, payload, retain)
                except Exception:
                    log.exception("handler for %s failed on %s; message dropped", topic_filter, topic)
                    self.dropped += 1

    # -- publishing -----------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        client = self._client
        if client is None or not self._connected.is_set():
            raise BrokerUnavailable(f"MQTT broker {self.host}:{self.port} is not connected")
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as e:
            raise BrokerUnavailable(f"MQTT publish failed: {e}") from e

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-link")

    async def stop(self) -> None:
        client = self._client
        if client is not None and self._connected.is_set():
            try:
                # a clean goodbye: the will only fires on an unclean loss
                await asyncio.wait_for(client.publish(self.will_topic, "offline", qos=1, retain=True), 2)
            except (aiomqtt.MqttError, asyncio.TimeoutError):
                pass
        self._stopping = True
        for task in list(self._side_tasks):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            # aiomqtt waits up to its timeout for the broker to acknowledge the disconnect
            await asyncio.wait({self._task}, timeout=5)
            if not self._task.done():
                log.warning("MQTT disconnect did not finish in 5 s; leaving it")
            self._task = None

    def _new_client(self) -> aiomqtt.Client:
        link = self

        class DispatchQueue(asyncio.Queue):  # type: ignore[type-arg]
            """Hands each message to the handlers as paho delivers it: no queue, no task per message."""

            def put_nowait(self, item: aiomqtt.Message) -> None:
                link._on_message(item)

        return aiomqtt.Client(
            self.host, self.port, identifier=self.client_id,
            username=self.username, password=self.password, keepalive=self.keepalive,
            will=aiomqtt.Will(self.will_topic, "offline", qos=1, retain=True),
            # Without TCP_NODELAY a QoS 1 round trip stalls 44-88 ms (Nagle + delayed ACK).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            max_inflight_messages=100, timeout=10, queue_type=DispatchQueue,
        )

    def _on_message(self, message: aiomqtt.Message) -> None:
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = b"" if payload is None else str(payload).encode()
        self._dispatch(message.topic.value, payload, bool(message.retain))

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            client = self._new_client()
            client.pending_calls_threshold = 1000
            try:
                async with client:
                    self._client = client
                    self._subscribed = set()
                    async with self._subscribing:
                        # filters added from here on are subscribed by their own _subscribe_now
                        filters = list(dict.fromkeys(f for f, _ in self._handlers))
                        for f in filters:
                            await client.subscribe(f, qos=1, timeout=10)
                            self._subscribed.add(f)
                    await client.publish(self.will_topic, "online", qos=1, retain=True)
                    self._connected.set()
                    self.connects += 1
                    backoff = 0.2
                    log.info("MQTT connected to %s:%s (%d subscriptions)", self.host, self.port, len(filters))
                    if self.on_connect is not None:
                        self._spawn(self._call_on_connect())
                    async for _ in client.messages:  # never yields (see DispatchQueue); ends on disconnect
                        pass
            except aiomqtt.MqttError as e:
                task = asyncio.current_task()
                if self._stopping or (task is not None and task.cancelling()):
                    # aiomqtt turns a cancelled disconnect into MqttError: don't reconnect
                    raise asyncio.CancelledError from e
                if self._connected.is_set() or self.connects == 0:
                    log.warning("MQTT connection to %s:%s lost or refused: %s; retrying", self.host, self.port, e)
            finally:
                was_connected = self._connected.is_set()
                self._connected.clear()
                self._client = None
                if was_connected and self.on_disconnect is not None:
                    self.on_disconnect()
            await self._sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _call_on_connect(self) -> None:
        try:
            assert self.on_connect is not None
            await self.on_connect()
        except BrokerUnavailable:
            pass  # lost again already; the next connect republishes
        except Exception:
            log.exception("on_connect failed")
