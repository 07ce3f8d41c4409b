"""The simulated PJLink projector on TCP and UDP, plus its mDNS record (`command` is its CLI).

`ProjectorSim` is the asyncio runtime around the pure parts (`model`, `pjlink`): one TCP
session at a time with an idle close, UDP search answers and status notifications (PJLink 2.00
search and status notification procedures), a `_pjlink._tcp` advertisement, the state file,
and the projector's Homie 5 media player when a broker is known.

A second TCP connection while a session is open waits unanswered (no greeting) for up to
`busy_grace` seconds for the session to end, like a unit serving one socket at a time; if
the session is still open then, the newcomer is closed without a greeting. The grace absorbs
clients that open a new connection per command (aiopjlink2) right after closing the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from firmware_sim.common.net import (
    Advertiser,
    BrokerAddress,
    discover_broker,
    instance_name,
    make_zeroconf,
    parse_broker_url,
)
from firmware_sim.common.state import StateStore

from .model import (
    Change,
    ErrorKind,
    Level,
    ProjectorConfig,
    ProjectorModel,
    SavedState,
)
from .pjlink import (
    Close,
    PJLinkServerConnection,
    Send,
    SessionState,
    notification,
    search_reply,
)
from .player import MediaPlayer

log = logging.getLogger(__name__)

SERVICE_TYPE = "_pjlink._tcp.local."
READ_CHUNK = 1024


class ProjectorSim:
    """The projector's I/O: `start()` opens every socket and task, `stop()` closes them."""

    def __init__(self, config: ProjectorConfig, *, host: str = "127.0.0.1", port: int = 4352,
                 udp_host: str | None = None, udp_port: int = 4352, notify_port: int = 4352,
                 password: str | None = None, idle_timeout: float = 30.0,
                 busy_grace: float = 1.0, state_dir: Path | None = None,
                 mdns_interface: str | None = None, broker: str | None = None, room: str = "",
                 find_broker: bool = False, broker_timeout: float = 30.0,
                 save_interval: float = 60.0, player_speed: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config.resolved()
        self.host = host
        self.port = port
        self.udp_host = udp_host or host
        self.udp_port = udp_port
        self.notify_port = notify_port
        self.password = password or None
        self.idle_timeout = idle_timeout
        self.busy_grace = busy_grace
        self.state_dir = state_dir
        self.mdns_interface = mdns_interface
        self.broker = broker
        self.find_broker = find_broker
        self.broker_timeout = broker_timeout
        self.save_interval = save_interval
        self.player_speed = player_speed
        self.clock = clock
        self.controller: str | None = None  # IP of the controller that last spoke to us
        self.connections_accepted = 0  # TCP sessions opened by controllers (for benchmarks)
        self.room = room  # advertised in TXT (not PJLink: real units don't know their room)
        self._model: ProjectorModel | None = None
        self._store: StateStore | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._server: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._session = asyncio.Lock()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._dirty = False
        self._saving: asyncio.Future[None] | None = None
        self._zeroconf: AsyncZeroconf | None = None
        self._advertiser: Advertiser | None = None
        self.player: MediaPlayer | None = None

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def model(self) -> ProjectorModel:
        """The running state machine (tests drive and inspect it in-process)."""
        if self._model is None:
            raise RuntimeError("projector not started")
        return self._model

    @property
    def state_key(self) -> str:
        return "projector-" + self.config.mac.replace(":", "")

    async def start(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            saved = SavedState()
            if self.state_dir is not None:
                self._store = StateStore(self.state_dir)
                raw = await asyncio.to_thread(self._store.load, self.state_key)
                try:
                    saved = SavedState.from_json(raw) if raw else SavedState()
                except ValueError as exc:
                    log.warning("projector state unusable (%s); starting from defaults", exc)
            self.controller = saved.controller
            self._model = ProjectorModel(self.config, self.clock, saved)
            self._model.update()
            stack.callback(self._model.subscribe(self._on_change))

            self._server = await asyncio.start_server(self._accept, self.host, self.port)
            stack.push_async_callback(self._close_server)
            self.port = self._server.sockets[0].getsockname()[1]

            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.udp_host, self.udp_port))
            self._udp = transport
            stack.callback(transport.close)
            self.udp_port = transport.get_extra_info("sockname")[1]

            ticker = asyncio.create_task(self._tick(), name="projector-tick")
            stack.push_async_callback(_cancel, ticker)

            if self.mdns_interface is not None:
                self._zeroconf = make_zeroconf(self.mdns_interface)
                stack.push_async_callback(self._close_zeroconf)
                self._advertiser = Advertiser(self._zeroconf)
                await self._advertiser.register([self.service_info()])
                stack.push_async_callback(self._advertiser.unregister)  # goodbye, TTL 0
            stack.push_async_callback(self._stop_player)
            if self.broker is not None:
                await self._start_player(parse_broker_url(self.broker))
            elif self.find_broker and self._zeroconf is not None:
                # The projector serves PJLink at once; its player joins when a broker shows up.
                finder = asyncio.create_task(self._discover_player(), name="projector-broker")
                stack.push_async_callback(_cancel, finder)

            self._send_notification("LKUP", self.config.mac)  # the link is up (PJLink 2.00 LKUP)
            log.info("projector %r: PJLink on %s:%d, UDP %s:%d, mac %s, serial %s, password %s",
                     self.config.name, self.host, self.port, self.udp_host, self.udp_port,
                     self.config.mac, self.config.serial, "set" if self.password else "off")
            self._stack = stack.pop_all()

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
            await self._save()

    async def __aenter__(self) -> ProjectorSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _close_zeroconf(self) -> None:
        zc, self._zeroconf = self._zeroconf, None
        if zc is not None:
            await zc.async_close()

    async def _close_server(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    # -- runtime control hooks --------------------------------------------------------------

    def inject_error(self, kind: ErrorKind | str, level: Level | int = Level.ERROR) -> None:
        """Set one ERST category (fan, lamp, temperature, cover, filter, other) to a level."""
        if isinstance(kind, str):
            kind = ErrorKind[kind.upper()]
        self.model.set_error(kind, Level(level))

    def clear_errors(self) -> None:
        self.model.clear_errors()

    # -- TCP --------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        peer = writer.get_extra_info("peername")
        try:
            try:
                await asyncio.wait_for(self._session.acquire(), self.busy_grace)
            except TimeoutError:
                log.info("projector busy: closing connection from %s without a greeting", peer)
                return
            try:
                await self._session_loop(reader, writer, peer)
            finally:
                self._session.release()
        except (ConnectionError, OSError) as exc:
            log.debug("projector session with %s ended: %s", peer, exc)
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _session_loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            peer: Any) -> None:
        conn = PJLinkServerConnection(self.model, self.password, secrets.token_hex(4))
        writer.write(conn.greeting())
        await writer.drain()
        while True:
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), self.idle_timeout)
            except TimeoutError:
                log.debug("projector: closing idle session with %s", peer)
                return
            if not data:
                return
            outputs = conn.receive_data(data)
            if conn.state is SessionState.READY and isinstance(peer, tuple):
                self.controller = peer[0]
            for out in outputs:
                if isinstance(out, Send):
                    writer.write(out.data)
                elif isinstance(out, Close):
                    await writer.drain()
                    log.debug("projector: closing session with %s: %s", peer, out.reason)
                    return
            await writer.drain()

    # -- UDP --------------------------------------------------------------------------------

    def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = search_reply(data, self.config.mac)
        if reply is None:
            log.debug("projector: dropping datagram %r from %s", data[:40], addr)
            return
        self.controller = addr[0]
        if self._udp is not None:
            self._udp.sendto(reply, addr)  # to the sender's address and port

    def _send_notification(self, body: str, value: str) -> None:
        """Status notification to the controller that last spoke to us (PJLink 2.00)."""
        if self._udp is None or self.controller is None:
            return
        try:
            self._udp.sendto(notification(body, value), (self.controller, self.notify_port))
        except (OSError, ValueError) as exc:
            log.debug("projector: notification %s=%s not sent: %s", body, value, exc)

    def _on_change(self, change: Change) -> None:
        self._send_notification(change.body, change.value)
        self._dirty = True
        self._wake.set()  # a new warm-up/cooling deadline, or state to save

    # -- timers and persistence -------------------------------------------------------------

    async def _tick(self) -> None:
        """Ends warm-up and cooling on time (so notifications go out) and saves the state."""
        last_save = self.clock()
        while True:
            now = self.clock()
            deadline = self.model.next_deadline()
            wait = self.save_interval - (now - last_save)
            if deadline is not None:
                wait = min(wait, deadline - now)
            self._wake.clear()
            if wait > 0:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as
                # the wake fires, and stop() would then wait for the ticker forever
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
            self.model.update()
            if self._dirty or self.clock() - last_save >= self.save_interval:
                await self._save()
                last_save = self.clock()

    async def _save(self) -> None:
        if self._store is None or self._model is None:
            return
        self._dirty = False
        data = self._model.saved_state(self.controller).to_json()
        if self._saving is not None:  # one writer at a time, even across a cancelled ticker
            await asyncio.wait([self._saving])
        self._saving = asyncio.ensure_future(asyncio.to_thread(self._store.save, self.state_key,
                                                               data))
        self._saving.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await asyncio.shield(self._saving)
        except OSError as exc:
            log.warning("projector state not saved: %s", exc)

    # -- mDNS -------------------------------------------------------------------------------

    def service_info(self) -> AsyncServiceInfo:
        """The `_pjlink._tcp` record: instance = projector name (RFC 6763 §4.1.1)."""
        address = self.host if self.host not in ("0.0.0.0", "") else self.mdns_interface
        assert address is not None
        return AsyncServiceInfo(
            SERVICE_TYPE, f"{instance_name(self.config.name)}.{SERVICE_TYPE}", port=self.port,
            addresses=[socket.inet_aton(address)],
            server=f"pjlink-{self.config.mac.replace(':', '')}.local.",
            properties=self.txt_record())

    def txt_record(self) -> dict[str, str]:
        """TXT of the `_pjlink._tcp` record; txtvers first (RFC 6763 §6.7)."""
        txt = {"txtvers": "1", "class": "2", "mac": self.config.mac,
               "serial": self.config.serial, "model": self.config.product,
               "auth": "1" if self.password else "0"}
        if self.room:
            txt["room"] = self.room
        return txt

    # -- the media player (Homie 5) -----------------------------------------------------------

    async def _discover_player(self) -> None:
        """Find the broker as `_mqtt._tcp` (mDNS), then start the media player."""
        assert self._zeroconf is not None
        try:
            broker = await discover_broker(self._zeroconf, self.broker_timeout)
        except TimeoutError as exc:
            log.warning("projector: no media player: %s", exc)
            return
        await self._start_player(broker)

    async def _start_player(self, broker: BrokerAddress) -> None:
        """The projector's Homie 5 media player, with the projector's MAC so the hub merges them."""
        player = MediaPlayer(
            f"projector-{self.config.mac.replace(':', '')}-player",
            f"{self.config.name} media player", mac=self.config.mac, broker=broker, room=self.room,
            speed=self.player_speed, state_dir=self.state_dir, aiozc=self._zeroconf,
            interface=self.mdns_interface or "127.0.0.1")
        self.player = player  # before start(): a cancelled start is still stopped
        await player.start()

    async def _stop_player(self) -> None:
        p, self.player = self.player, None
        if p is not None:
            await p.stop()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, sim: ProjectorSim) -> None:
        self._sim = sim

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._sim._datagram(data, addr)
        except Exception:
            log.exception("projector: datagram from %s failed", addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("projector: UDP error %s", exc)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
