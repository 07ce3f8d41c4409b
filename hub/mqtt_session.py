"""One MQTT connection: paho-mqtt's protocol engine driven by the asyncio loop, no network thread.

paho does the MQTT 3.1.1 framing, keepalive and QoS 1 bookkeeping; this module only moves its
socket events onto the loop (`add_reader`/`add_writer` from paho's socket callbacks, `loop_misc`
on a one-second timer) and turns its callbacks into futures keyed by packet id, so concurrent
SUBSCRIBEs and QoS 1 PUBLISHes each complete on their own acknowledgement.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

log = logging.getLogger(__name__)

Message = tuple[str, bytes, bool]  # topic, payload, retain
OnBatch = Callable[[list[Message]], None]

READS_PER_WAKEUP = 1000  # packets read per readable event before the loop gets a turn
RECV_SIZE = 65536  # bytes taken from the kernel per recv(); paho's small reads are served from them
MISC_INTERVAL = 1.0  # paho's keepalive bookkeeping wants a call about once a second


class ConnectionFailed(Exception):
    """The broker could not be reached, refused us, or the connection was lost."""


class _Client(paho.Client):
    """paho's client with buffered reads and a direct message callback.

    paho reads a packet with three recv() calls (the type byte, the length one byte at a time,
    then the body): three system calls per message. Here one recv() takes what the kernel has and
    paho's reads are served from it, so a flood costs a system call per 64 KiB, not three per
    message. `buffered` says whether bytes are waiting here that the socket will not signal again;
    `drained` that the last recv() took less than it asked for and all of it has been read: the
    kernel had nothing more then, so asking again would only be answered "try again later".
    """

    _rbuf = b""
    _rpos = 0
    _short = False

    def _sock_recv(self, bufsize: int) -> bytes:
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            buf = super()._sock_recv(RECV_SIZE)  # BlockingIOError when the kernel has nothing
            if not buf:
                return buf  # the broker closed the connection
            pos = 0
            self._short = len(buf) < RECV_SIZE
        end = pos + bufsize
        self._rbuf, self._rpos = buf, end
        return buf[pos:end] if pos or end < len(buf) else buf

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        # The session sets on_message and no per-filter callbacks, and all of it runs on the
        # loop's one thread: straight there, without paho's two locks and its filter lookup.
        self.on_message(self, self._userdata, message)  # type: ignore[misc]

    @property
    def buffered(self) -> bool:
        return self._rpos < len(self._rbuf)

    @property
    def drained(self) -> bool:
        return self._short and self._rpos >= len(self._rbuf)


class Session:
    """One paho client on one TCP connection; `open()` to CONNACK, `close()` says goodbye."""

    def __init__(self, host: str, port: int, *, client_id: str, keepalive: int, on_batch: OnBatch,
                 will: tuple[str, bytes] | None = None, username: str | None = None,
                 password: str | None = None, max_inflight: int = 100, max_queued: int = 10_000) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.keepalive = keepalive
        self.on_batch = on_batch
        self.will = will
        self.username = username
        self.password = password
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.closed: asyncio.Future[None] | None = None  # resolves when the socket is gone
        self._client: _Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: Any = None
        self._connack: asyncio.Future[None] | None = None
        self._acks: dict[int, asyncio.Future[Any]] = {}  # packet id -> waiting caller
        self._batch: list[Message] = []
        self._progress = 0  # packets handled by the current read; stops the read loop when flat
        self._misc: asyncio.TimerHandle | None = None
        self._flush_soon = False
        self._reading = False  # in _on_readable: writes wait until the batch has been handled
        self._flush_after_read = False

    # -- lifecycle ------------------------------------------------------------------

    async def open(self, timeout: float = 10.0) -> None:
        """Connect and wait for a successful CONNACK; raises ConnectionFailed."""
        loop = self._loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        self._connack = loop.create_future()
        self._connack.add_done_callback(_retrieved)
        client = self._client = _Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                            protocol=paho.MQTTv311, clean_session=True)
        if self.will is not None:
            client.will_set(self.will[0], self.will[1], qos=1, retain=True)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(self.max_queued)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        # paho's connect resolves the name and does the TCP handshake with blocking calls; it
        # runs in a worker (like asyncio's own getaddrinfo). Every byte after it is on the loop.
        connecting = loop.run_in_executor(None, self._connect_blocking, client)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel on 3.11
                await asyncio.shield(connecting)
        except BaseException:
            connecting.add_done_callback(lambda _: self._drop(client))
            self._connack.cancel()
            raise
        self._attach(client)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._connack)
        except BaseException:
            self.abort()
            raise

    def _connect_blocking(self, client: paho.Client) -> None:
        try:
            client.connect(self.host, self.port, self.keepalive)
            sock = client.socket()
            if sock is not None:
                # Without TCP_NODELAY a QoS 1 round trip stalls 44-88 ms (Nagle + delayed ACK).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, ValueError) as e:
            raise ConnectionFailed(f"cannot connect to {self.host}:{self.port}: {e}") from e

    @staticmethod
    def _drop(client: paho.Client) -> None:
        sock = client.socket()
        if sock is not None:
            sock.close()

    def _attach(self, client: paho.Client) -> None:
        """Hand the connected socket to the loop."""
        assert self._loop is not None
        sock = self._sock = client.socket()
        if sock is None:
            raise ConnectionFailed("connection closed during connect")
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self._loop.add_reader(sock, self._on_readable)
        if client.want_write():
            client.loop_write()
        self._misc = self._loop.call_later(MISC_INTERVAL, self._on_misc)

    async def close(self, timeout: float = 2.0) -> None:
        """Clean DISCONNECT (no last will), then wait for the socket to close."""
        client, closed = self._client, self.closed
        if client is None or closed is None or closed.done():
            self.abort()
            return
        client.disconnect()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(closed)
        except asyncio.TimeoutError:
            log.debug("MQTT disconnect to %s:%s not flushed in %s s", self.host, self.port, timeout)
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the connection now: no DISCONNECT, so the broker publishes our last will."""
        client = self._client
        if client is not None and client.socket() is not None:
            sock = client.socket()
            self._on_socket_close(client, None, sock)
            sock.close()
        self._lost("connection closed")

    # -- requests -------------------------------------------------------------------

    def subscribe(self, topic_filter: str, qos: int = 1) -> asyncio.Future[None]:
        """Send SUBSCRIBE; the future completes on its own SUBACK (several may be in flight)."""
        client = self._live()
        rc, mid = client.subscribe(topic_filter, qos=qos)
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            raise ConnectionFailed(f"SUBSCRIBE {topic_filter} not sent: {paho.error_string(rc)}")
        return self._expect(mid)

    def publish(self, topic: str, payload: bytes | str, *, qos: int, retain: bool) -> asyncio.Future[None] | None:
        """Queue a PUBLISH; for QoS 1 the future completes when its PUBACK arrives."""
        client = self._live()
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectionFailed(f"PUBLISH {topic} not sent: {paho.error_string(info.rc)}")
        return self._expect(info.mid) if qos > 0 else None

    def _live(self) -> paho.Client:
        if self._client is None or self._sock is None or self.closed is None or self.closed.done():
            raise ConnectionFailed("not connected")
        return self._client

    def _expect(self, mid: int) -> asyncio.Future[None]:
        assert self._loop is not None
        fut = self._acks.get(mid)
        if fut is not None and not fut.done():
            fut.set_exception(ConnectionFailed(f"packet id {mid} reused before its acknowledgement"))
        fut = self._acks[mid] = self._loop.create_future()
        fut.add_done_callback(_retrieved)  # a failure nobody awaits is not an "unretrieved" warning
        return fut

    # -- paho's callbacks (all on the loop thread) ---------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self._connack is None or self._connack.done():
            return
        if reason.is_failure:
            self._connack.set_exception(ConnectionFailed(f"broker refused the connection: {reason}"))
        else:
            self._connack.set_result(None)

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        self._progress += 1
        try:
            topic = message.topic
        except UnicodeDecodeError:
            log.warning("MQTT message with a topic that is not UTF-8 dropped")
            return
        self._batch.append((topic, message.payload, bool(message.retain)))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: list[Any], properties: Any) -> None:
        self._progress += 1
        fut = self._acks.pop(mid, None)
        if fut is None or fut.done():
            return
        failed = [r for r in reasons if r.is_failure]
        if failed:
            fut.set_exception(ConnectionFailed(f"broker refused the subscription: {failed[0]}"))
        else:
            fut.set_result(None)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self._progress += 1
        fut = self._acks.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _on_readable(self) -> None:
        client = self._client
        if client is None:
            return
        more = False
        self._reading = True
        try:
            # paho reads one packet per call; keep reading while packets keep coming, bounded
            for _ in range(READS_PER_WAKEUP):
                before = self._progress
                if client.loop_read() != paho.MQTT_ERR_SUCCESS or self._progress == before or client.drained:
                    break  # (the socket is level-triggered: bytes that come meanwhile wake the loop again)
            else:
                # bytes already taken from the socket wait in paho's buffer: the socket will not
                # say so again, so the next turn of the loop reads on
                more = client.buffered
        finally:
            try:
                if self._batch:
                    batch, self._batch = self._batch, []
                    self.on_batch(batch)
            finally:
                self._reading = False
                if self._flush_after_read and self._loop is not None:
                    self._flush_after_read = False
                    self._loop.call_soon(self._flush)
        if more and self._sock is not None and self._loop is not None:
            self._loop.call_soon(self._on_readable)

    def _on_writable(self) -> None:
        if self._client is not None:
            self._client.loop_write()  # unregisters the writer once everything is out

    def _on_register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        # Write later in this same loop turn, not after the next poll: a command goes out without
        # waiting a turn, and everything queued meanwhile goes with it. While a read is being
        # handled, wait until its batch has been: the PUBACKs it owes and what its handlers publish
        # then go out together, after the work the batch woke up (a REST command the device just
        # confirmed answers first, instead of waiting behind socket writes).
        if self._flush_soon:
            return
        self._flush_soon = True
        if self._reading:
            self._flush_after_read = True
        else:
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        client, loop = self._client, self._loop
        if client is None or loop is None or self._sock is None:
            return
        client.loop_write()
        if client.want_write() and self._sock is not None:
            loop.add_writer(self._sock, self._on_writable)  # the socket is full: wait until writable

    def _on_unregister_write(self, client: Any, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_writer(sock)

    def _on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        if self._loop is not None and sock is not None and sock is self._sock:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
            self._sock = None
        self._lost("connection lost")

    def _on_misc(self) -> None:
        self._misc = None
        client = self._client
        if client is None or self._sock is None:
            return
        client.loop_misc()  # PINGREQ when due; closes the socket when a PINGRESP is overdue
        if self._sock is not None and self._loop is not None:
            self._misc = self._loop.call_later(MISC_INTERVAL, self._on_misc)

    def _lost(self, why: str) -> None:
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        acks, self._acks = self._acks, {}
        for fut in acks.values():
            if not fut.done():
                fut.set_exception(ConnectionFailed(f"{why} before the acknowledgement"))
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(ConnectionFailed(why))
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)


def _retrieved(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
