"""Asyncio PJLink client: one TCP session, commands one at a time, every call with a timeout.

Projectors accept one connection at a time and drop a session after about 30 s idle (PJLink
spec "Disconnection"; observed in every implementation), so the client keeps ONE connection, reopens it
transparently on the next command, and never has two commands in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from hub.driver import DeviceUnreachable

from .pjlink_codec import (
    NEED_DATA,
    AuthenticationFailed,
    AuthRejected,
    BadReply,
    ClientConnection,
    Closed,
    Greeting,
    ProtocolError,
    Reply,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 4352
MAX_IDLE = 25.0  # reopen before the projector's ~30 s idle cut-off instead of racing it


class _PeerClosed(Exception):
    """The session ended before the reply came (EOF or reset)."""


class PJLinkClient:
    """A PJLink controller for one projector.

    `request()` returns the reply parameter or raises: a CommandRejected subclass for ERR1-4
    (UnavailableTime for ERR3, which means "not now", not "offline"), AuthenticationFailed
    for ERRA, BadReply never (garbage is logged and skipped until the timeout), and
    hub.driver.DeviceUnreachable when the projector cannot be reached or stays silent.
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        password: str | None = None,
        *,
        timeout: float = 5.0,
        max_idle: float = MAX_IDLE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.password = password
        self.timeout = timeout
        self.max_idle = max_idle
        self.clock = clock
        self.connections_opened = 0  # TCP connections opened so far (reported per 100 commands)
        self.commands_sent = 0
        self.auth_required: bool | None = None  # what the last greeting said (None: not greeted yet)
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._conn: ClientConnection | None = None
        self._last_used = 0.0

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    def retarget(self, host: str, port: int, password: str | None) -> None:
        """The projector moved (new address from discovery): the next command reconnects."""
        if (host, port, password) != (self.host, self.port, self.password):
            self.host, self.port, self.password = host, port, password
            self._drop()

    async def request(self, command: str, param: str = "?", *, pj_class: int = 1) -> str:
        """Send one command and return its reply's parameter (see the class docstring)."""
        async with self._lock:
            try:
                return await self._request(command, param, pj_class)
            except asyncio.CancelledError:
                self._drop()  # a reply may still come; never let it answer the next command
                raise

    async def _request(self, command: str, param: str, pj_class: int) -> str:
        fresh = await self._ensure_connected()
        try:
            return await self._exchange(pj_class, command, param)
        except _PeerClosed:
            self._drop()
            if fresh:
                raise DeviceUnreachable(f"{self.host}:{self.port} closed the connection") from None
        # A reused session the projector had already dropped: one retry on a new one.
        log.debug("pjlink %s:%s session was closed; reconnecting", self.host, self.port)
        await self._ensure_connected()
        try:
            return await self._exchange(pj_class, command, param)
        except _PeerClosed:
            self._drop()
            raise DeviceUnreachable(f"{self.host}:{self.port} closed the connection") from None

    async def close(self) -> None:
        """Close the session (the next request opens a new one)."""
        writer = self._writer
        self._drop()
        if writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), self.timeout)

    # ---------------------------------------------------------------- internals

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = self._conn = None

    async def _ensure_connected(self) -> bool:
        """Open (and authenticate lazily) a session unless a live one exists; True if new."""
        if self.connected and self.clock() - self._last_used < self.max_idle:
            return False
        self._drop()
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout
            )
        except (OSError, TimeoutError) as e:
            raise DeviceUnreachable(f"cannot connect to {self.host}:{self.port}: {e or 'timeout'}") from None
        self.connections_opened += 1
        self._conn = ClientConnection(self.password)
        try:
            ev = await self._next_event(lambda ev: isinstance(ev, Greeting | AuthRejected))
        except _PeerClosed:
            self._drop()
            raise DeviceUnreachable(f"{self.host}:{self.port} closed the connection before greeting") from None
        if isinstance(ev, AuthRejected):
            self._drop()
            raise AuthenticationFailed(f"{self.host}:{self.port} rejected the connection (ERRA)")
        self.auth_required = ev.auth_required
        if ev.auth_required and self.password is None:
            self._drop()
            raise AuthenticationFailed(f"{self.host}:{self.port} requires a password; none configured")
        self._last_used = self.clock()
        return True

    async def _exchange(self, pj_class: int, command: str, param: str) -> str:
        assert self._conn is not None and self._writer is not None
        data = self._conn.send(pj_class, command, param)
        self.commands_sent += 1
        try:
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), self.timeout)
        except (OSError, TimeoutError):
            raise _PeerClosed from None
        want = command.upper()

        def is_answer(ev: object) -> bool:
            # Unsolicited `%2LKUP=` (and any stale reply) on TCP is skipped (PJLink v2.00 LKUP).
            return isinstance(ev, AuthRejected) or (isinstance(ev, Reply) and ev.command == want)

        ev = await self._next_event(is_answer)
        self._last_used = self.clock()
        if isinstance(ev, AuthRejected):
            self._drop()
            raise AuthenticationFailed(f"{self.host}:{self.port}: wrong password (ERRA)")
        assert isinstance(ev, Reply)
        if (err := ev.error) is not None:
            raise err
        return ev.param

    async def _next_event(self, wanted: Callable[[object], bool]) -> Greeting | AuthRejected | Reply:
        """Read until an event `wanted` accepts; other events are logged and skipped."""
        assert self._conn is not None and self._reader is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            ev = self._conn.next_event()
            if ev is NEED_DATA:
                remaining = deadline - loop.time()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    data = await asyncio.wait_for(self._reader.read(4096), remaining)
                except TimeoutError:
                    self._drop()
                    raise DeviceUnreachable(
                        f"{self.host}:{self.port} did not answer within {self.timeout:g} s"
                    ) from None
                except OSError:
                    raise _PeerClosed from None
                self._conn.receive_data(data)
                continue
            if isinstance(ev, Closed):
                raise _PeerClosed
            if wanted(ev):
                return ev  # type: ignore[return-value]
            if isinstance(ev, ProtocolError):
                log.warning("pjlink %s:%s sent garbage (%s): %r", self.host, self.port, ev.reason, ev.data)
            else:
                log.debug("pjlink %s:%s skipped %r", self.host, self.port, ev)


__all__ = ["PJLinkClient", "DeviceUnreachable", "AuthenticationFailed", "BadReply", "DEFAULT_PORT"]
