"""`firmware-sim projector`: the simulated PJLink projector on TCP and UDP, plus its mDNS record.

`ProjectorSim` is the asyncio runtime around the pure parts (`model`,
`pjlink`): one TCP session at a time with an idle close, UDP search answers and status
notifications (PJLink 2.00 search and status notification procedures), a `_pjlink._tcp` advertisement, the state file, and the
projector's Homie 5 media player when a broker is known.

A second TCP connection while a session is open waits unanswered (no greeting) for up to
`busy_grace` seconds for the session to end, like a unit serving one socket at a time; if
the session is still open then, the newcomer is closed without a greeting. The grace absorbs
clients that open a new connection per command (aiopjlink2) right after closing the last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import replace
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
from firmware_sim.common.state import StateStore, default_state_dir

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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
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


# -- CLI ------------------------------------------------------------------------------------

def _error_arg(text: str) -> tuple[ErrorKind, Level]:
    kind, _, level = text.partition("=")
    try:
        return ErrorKind[kind.strip().upper()], Level(int(level or 2))
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r}: use KIND[=LEVEL], KIND one of "
            f"{', '.join(k.name.lower() for k in ErrorKind)}, LEVEL 0/1/2") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ProjectorConfig()
    parser.add_argument("--host", default="127.0.0.1", help="TCP address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4352, help="PJLink TCP port (default 4352)")
    parser.add_argument("--udp-host", default=None,
                        help="UDP address for search/notifications (default: --host; "
                             "0.0.0.0 to hear broadcast searches)")
    parser.add_argument("--udp-port", type=int, default=4352, help="UDP port (default 4352)")
    parser.add_argument("--notify-port", type=int, default=4352,
                        help="controller's UDP port for status notifications (default 4352)")
    parser.add_argument("--password", default=None, help="PJLink password (default: none)")
    parser.add_argument("--name", default=d.name, help=f"projector name (default {d.name!r})")
    parser.add_argument("--room", default="Living room", help="room advertised in mDNS TXT (default 'Living room')")
    parser.add_argument("--mac", default="", help="MAC address (default: derived from --name)")
    parser.add_argument("--serial", default="", help="serial number (default: from --name)")
    parser.add_argument("--warmup", type=float, default=d.warmup, help="warm-up seconds")
    parser.add_argument("--cooldown", type=float, default=d.cooldown, help="cooling seconds")
    parser.add_argument("--speed", type=float, default=d.speed,
                        help="lamp/filter hours grow this many times faster than real time")
    parser.add_argument("--idle-timeout", type=float, default=30.0,
                        help="close a silent TCP session after this many seconds")
    parser.add_argument("--error", action="append", type=_error_arg, default=[],
                        metavar="KIND[=LEVEL]",
                        help="inject a fault at start: fan, lamp, temperature, cover, filter, "
                             "other; LEVEL 1 warning or 2 error (default 2); repeatable")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where power, input and lamp hours persist "
                             "(default $XDG_STATE_HOME/firmware-sim)")
    parser.add_argument("--interface", default="127.0.0.1",
                        help="interface address for mDNS (default 127.0.0.1)")
    parser.add_argument("--no-mdns", action="store_true", help="do not advertise over mDNS")
    parser.add_argument("--broker", default=None,
                        help="MQTT broker for the media player, mqtt://host:port "
                             "(default: found by mDNS _mqtt._tcp)")


def _validate(args: argparse.Namespace) -> str | None:
    if len(args.name.encode()) > 64 or not args.name.strip():
        return "--name must be 1 to 64 bytes (PJLink NAME)"
    if args.password is not None and len(args.password.encode()) > 32:
        return "--password must be at most 32 bytes"
    if args.mac and not _valid_mac(args.mac):
        return "--mac must look like 02:00:00:aa:bb:cc"
    if args.broker is not None:
        try:
            parse_broker_url(args.broker)
        except ValueError as exc:
            return str(exc)
    if min(args.warmup, args.cooldown) < 0 or args.speed <= 0 or args.idle_timeout <= 0:
        return "--warmup/--cooldown must be >= 0, --speed and --idle-timeout > 0"
    return None


def _valid_mac(mac: str) -> bool:
    parts = mac.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                   for p in parts)


def sim_from_args(args: argparse.Namespace) -> ProjectorSim:
    config = replace(ProjectorConfig(), name=args.name, mac=args.mac, serial=args.serial,
                     warmup=args.warmup, cooldown=args.cooldown, speed=args.speed)
    return ProjectorSim(
        config, host=args.host, port=args.port, udp_host=args.udp_host, udp_port=args.udp_port,
        notify_port=args.notify_port, password=args.password, idle_timeout=args.idle_timeout,
        state_dir=args.state_dir or default_state_dir(),
        mdns_interface=None if args.no_mdns else args.interface,
        broker=args.broker, find_broker=not args.no_mdns, room=args.room)


async def run(args: argparse.Namespace) -> int:
    sim = sim_from_args(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await sim.start()
    except OSError as exc:
        print(f"firmware-sim projector: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        for kind, level in args.error:
            sim.inject_error(kind, level)
        print(f"PJLink projector {sim.config.name!r} on {sim.host}:{sim.port} "
              f"(UDP {sim.udp_host}:{sim.udp_port}), mac {sim.config.mac}, "
              f"serial {sim.config.serial}, password {'set' if sim.password else 'off'}",
              flush=True)
        await stop.wait()
    finally:
        await sim.stop()
    return 0


def main(args: argparse.Namespace) -> int:
    problem = _validate(args)
    if problem:
        print(f"firmware-sim projector: {problem}", file=sys.stderr)
        return 2
    return asyncio.run(run(args))
