"""PJLink Class 2 over UDP 4352: search (`%2SRCH` → `%2ACKN=<mac>`) and status notifications.

PJLink v2.00 "Search protocol" and "Status Notification Protocol": the controller broadcasts
`%2SRCH\\r`; each Class 2 projector answers `%2ACKN=<mac>\\r`; projectors send `%2LKUP=<mac>`,
`%2POWR=`, `%2INPT=`, `%2ERST=` unprompted. Datagrams are at most 25 bytes in the spec; we
accept up to one 136-byte line per CR and treat the rest as garbage.

Trust: an ACKN is an answer to OUR search, so one that arrives while no search of ours is in
flight is dropped here; anyone on the LAN can send one. What an accepted ACKN or LKUP may change
is the driver's decision (devices/pjlink.py: a known projector moves only after a TCP check).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .pjlink_codec import LineSplitter, ProtocolError, Reply, normalize_mac, parse_line

log = logging.getLogger(__name__)

SEARCH_REQUEST: Final = b"%2SRCH\r"
NOTIFY_COMMANDS: Final = frozenset({"POWR", "INPT", "ERST", "LKUP"})
MAX_ACKS: Final = 1024  # distinct MACs one search collects; a real LAN has a handful of projectors


@dataclass(frozen=True)
class SearchAck:
    """`%2ACKN=<mac>`: a projector answered our search; mac normalised to 12 lowercase hex."""

    mac: str


@dataclass(frozen=True)
class StatusNotice:
    """`%2POWR=`, `%2INPT=`, `%2ERST=` or `%2LKUP=` sent by a projector on its own."""

    command: str
    value: str


UdpEvent = SearchAck | StatusNotice | ProtocolError


def parse_datagram(data: bytes) -> list[UdpEvent]:
    """Every line of one datagram → events; garbage → ProtocolError, our own SRCH echo → nothing."""
    splitter = LineSplitter()
    items = list(splitter.feed(data))
    if splitter.pending:
        items.append(splitter.pending)  # a missing final CR is tolerated on UDP
    out: list[UdpEvent] = []
    for item in items:
        if isinstance(item, ProtocolError):
            out.append(item)
            continue
        if item.strip(b"\n") in (b"%2SRCH", b""):
            continue  # our broadcast looping back to us, or stray line breaks
        ev = parse_line(item)
        if not isinstance(ev, Reply) or ev.pj_class != 2:
            out.append(ev if isinstance(ev, ProtocolError) else ProtocolError("not a Class 2 datagram", item[:64]))
        elif ev.command == "ACKN":
            try:
                out.append(SearchAck(normalize_mac(ev.param)))
            except ValueError:
                out.append(ProtocolError("ACKN without a valid MAC", item[:64]))
        elif ev.command in NOTIFY_COMMANDS:
            out.append(StatusNotice(ev.command, ev.param))
        else:
            out.append(ProtocolError(f"unexpected Class 2 datagram {ev.command}", item[:64]))
    return out


EventHandler = Callable[[UdpEvent, str], None]  # event, source IP


class PJLinkUdp:
    """One UDP socket for search replies and status notifications (only one may own a port)."""

    def __init__(self, on_event: EventHandler, *, host: str = "0.0.0.0", port: int = 4352) -> None:
        self.on_event = on_event
        self.host = host
        self.requested_port = port
        self._transport: asyncio.DatagramTransport | None = None
        self._acks: dict[str, str] | None = None
        self._one_search = asyncio.Lock()  # replies are matched to the one search in flight

    @property
    def searching(self) -> bool:
        """True while a search we started collects replies."""
        return self._acks is not None

    @property
    def port(self) -> int:
        if self._transport is None:
            raise RuntimeError("PJLinkUdp not started")
        return int(self._transport.get_extra_info("sockname")[1])

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.bind((self.host, self.requested_port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def search(self, target: tuple[str, int], window: float = 2.0) -> dict[str, str]:
        """Send `%2SRCH` to target (broadcast or unicast); collect ACKNs for `window` s: mac → IP."""
        async with self._one_search:
            if self._transport is None:
                raise RuntimeError("PJLinkUdp not started")
            acks: dict[str, str] = {}
            self._acks = acks
            try:
                self._transport.sendto(SEARCH_REQUEST, target)
                await asyncio.sleep(window)  # a collection window: replies arrive while we wait
            except OSError as e:
                log.warning("pjlink search to %s:%s failed: %s", target[0], target[1], e)
            finally:
                self._acks = None
            return acks

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        for ev in parse_datagram(data):
            if isinstance(ev, SearchAck):
                if self._acks is None:
                    log.debug("pjlink: %%2ACKN from %s while no search is in flight; dropped", addr[0])
                    continue
                if len(self._acks) >= MAX_ACKS:
                    continue  # bounded: a flood of replies can't grow one search without end
                self._acks.setdefault(ev.mac, addr[0])
            try:
                self.on_event(ev, addr[0])
            except Exception:
                log.exception("pjlink udp handler failed on %r", ev)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: PJLinkUdp) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.owner._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("pjlink udp error: %s", exc)
