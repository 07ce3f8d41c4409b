"""The hub's one MQTT connection: last will, reconnect with backoff, resubscribe, batched dispatch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .driver import BrokerUnavailable, MessageHandler
from .mqtt_session import ConnectionFailed, Message, Session
from .topics import levels_match

log = logging.getLogger(__name__)

ROUTES_CACHED = 4096  # topics whose matching handlers are remembered (a device has a few dozen)

Sleep = Callable[[float], Awaitable[Any]]


class MqttLink:
    """Owns the connection; `start()` connects in the background, `stop()` says goodbye."""

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
        self._routes: dict[str, tuple[tuple[str, MessageHandler], ...]] = {}  # topic -> its handlers
        self._route_copies: dict[tuple[tuple[str, MessageHandler], ...], tuple[tuple[str, MessageHandler], ...]] = {}
        self._session: Session | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._up = False  # a session and it is connected: read on every message, so a plain bool
        self._on_connect_task: asyncio.Task[None] | None = None
        self._subscribed: set[str] = set()  # SUBSCRIBE sent on the current connection
        self.connects = 0
        self.received = 0
        self.dropped = 0

    @property
    def connected(self) -> bool:
        return self._up

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    # -- subscriptions --------------------------------------------------------------

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        self._handlers.append((topic_filter, handler))
        self._routes = {}
        if self._session is not None:  # connected, or connecting: a handler that subscribes while
            self._subscribe_now(topic_filter)  # retained messages replay must not be left out

    def unsubscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        self._handlers = [(f, h) for f, h in self._handlers if not (f == topic_filter and h == handler)]
        self._routes = {}

    def _subscribe_now(self, topic_filter: str) -> asyncio.Future[None] | None:
        """SUBSCRIBE once per connection; a failure is logged and retried on the next connect."""
        session = self._session
        if session is None or topic_filter in self._subscribed:
            return None
        try:
            fut = session.subscribe(topic_filter, qos=1)
        except ConnectionFailed as e:
            log.warning("subscribe %s failed (%s); retried on reconnect", topic_filter, e)
            return None
        self._subscribed.add(topic_filter)

        def done(f: asyncio.Future[None]) -> None:
            if not f.cancelled() and f.exception() is not None:
                self._subscribed.discard(topic_filter)
                log.warning("subscribe %s failed (%s); retried on reconnect", topic_filter, f.exception())

        fut.add_done_callback(done)
        return fut

    def _dispatch(self, batch: list[Message]) -> None:
        """Hand a batch of messages to the handlers, in order: no task and no queue per message."""
        self.received += len(batch)
        routes = self._routes
        for topic, payload, retain in batch:
            route = routes.get(topic)
            if route is None:
                route = self._route(topic)
            for topic_filter, handler in route:
                try:
                    handler(topic, payload, retain)
                except Exception:
                    log.exception("handler for %s failed on %s; message dropped", topic_filter, topic)
                    self.dropped += 1

    def _route(self, topic: str) -> tuple[tuple[str, MessageHandler], ...]:
        """The handlers whose filter matches `topic`, remembered: a device repeats its topics."""
        levels = topic.split("/")
        route = tuple((f, h) for f, h in self._handlers if levels_match(f.split("/"), levels))
        if len(self._routes) >= ROUTES_CACHED:
            self._routes = {}  # bounded: a client spraying topics can't grow it
        if not self._routes:
            self._route_copies = {}
        # most topics share one route (a device's values all go to its driver): keep one copy
        route = self._route_copies.setdefault(route, route)
        self._routes[topic] = route
        return route

    # -- publishing -----------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        """QoS 1 returns when the broker acknowledged (PUBACK); QoS 0 when queued for sending."""
        ack = self.publish_nowait(topic, payload, qos=qos, retain=retain)
        if ack is not None:
            try:
                await ack
            except ConnectionFailed as e:
                raise BrokerUnavailable(f"MQTT publish failed: {e}") from e

    def publish_nowait(self, topic: str, payload: bytes | str, *, qos: int = 1,
                       retain: bool = False) -> asyncio.Future[None] | None:
        """Queue a publish; for QoS 1 the future completes on its PUBACK or fails if the connection goes."""
        session = self._session
        if session is None or not self._connected.is_set():
            raise BrokerUnavailable(f"MQTT broker {self.host}:{self.port} is not connected")
        try:
            return session.publish(topic, payload, qos=qos, retain=retain)
        except ConnectionFailed as e:
            raise BrokerUnavailable(f"MQTT publish failed: {e}") from e

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-link")

    async def stop(self) -> None:
        session = self._session
        if session is not None and self._connected.is_set():
            try:
                # a clean goodbye: the will only fires on an unclean loss
                await asyncio.wait_for(self.publish(self.will_topic, "offline", qos=1, retain=True), 2)
            except (BrokerUnavailable, asyncio.TimeoutError):
                pass
        if self._on_connect_task is not None:
            self._on_connect_task.cancel()
            self._on_connect_task = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5)
            if not self._task.done():
                log.warning("MQTT disconnect did not finish in 5 s; leaving it")
            self._task = None

    def _new_session(self) -> Session:
        return Session(self.host, self.port, client_id=self.client_id, keepalive=self.keepalive,
                       on_batch=self._dispatch, will=(self.will_topic, b"offline"),
                       username=self.username, password=self.password)

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            session = self._new_session()
            try:
                await self._connect(session)
                backoff = 0.2
                assert session.closed is not None
                try:
                    await session.closed
                finally:
                    if not session.closed.done():  # cancelled: stop() wants a clean goodbye
                        await session.close()
                log.warning("MQTT connection to %s:%s lost; reconnecting", self.host, self.port)
            except (ConnectionFailed, asyncio.TimeoutError) as e:
                if self.connects == 0 or backoff == 0.2:
                    log.warning("MQTT connection to %s:%s failed: %s; retrying", self.host, self.port, e)
            except Exception:
                log.exception("MQTT connection to %s:%s failed unexpectedly; retrying", self.host, self.port)
            finally:
                was_connected = self._connected.is_set()
                self._connected.clear()
                self._up = False
                self._session = None
                session.abort()
                if was_connected and self.on_disconnect is not None:
                    self.on_disconnect()
            await self._sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _connect(self, session: Session) -> None:
        """CONNECT, every SUBSCRIBE at once and their SUBACKs, then `online` and on_connect."""
        await session.open()
        self._session = session
        self._subscribed = set()
        filters = list(dict.fromkeys(f for f, _ in self._handlers))
        acks = [fut for f in filters if (fut := self._subscribe_now(f)) is not None]
        # asyncio.timeout, not wait_for, on this path: on 3.11 wait_for can swallow the cancel of a
        # stop() that lands as the awaited reply arrives, and the link would live on after stop()
        async with asyncio.timeout(10):
            await asyncio.gather(*acks, return_exceptions=True)  # failures logged
        ack = session.publish(self.will_topic, "online", qos=1, retain=True)
        assert ack is not None
        async with asyncio.timeout(10):
            await ack
        self._connected.set()
        self._up = True
        self.connects += 1
        log.info("MQTT connected to %s:%s (%d subscriptions)", self.host, self.port, len(filters))
        if self.on_connect is not None:
            if self._on_connect_task is not None:
                self._on_connect_task.cancel()
            self._on_connect_task = asyncio.get_running_loop().create_task(self._call_on_connect())

    async def _call_on_connect(self) -> None:
        try:
            assert self.on_connect is not None
            await self.on_connect()
        except BrokerUnavailable:
            pass  # lost again already; the next connect republishes
        except Exception:
            log.exception("on_connect failed")
