"""mDNS discovery (RFC 6762/6763) with python-zeroconf: browse, resolve, report; advertise the broker."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping

from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from .driver import Discovered

log = logging.getLogger(__name__)

OnSeen = Callable[[Discovered], Awaitable[None]]
OnGone = Callable[[str, str], Awaitable[None]]  # service type, instance name

RESOLVE_TIMEOUT_MS = 3000
RECEIVE_BUFFER = 1 << 20  # bytes; capped by net.core.rmem_max
RESOLVE_ATTEMPTS = 3  # a burst of announcements can overflow the socket: ask again, don't lose it


def decode_txt(properties: Mapping[bytes, bytes | None]) -> dict[str, str]:
    """TXT per RFC 6763 §6: keys case-insensitive (first wins), `key` alone means present."""
    out: dict[str, str] = {}
    for raw_key, raw_value in properties.items():
        try:
            key = raw_key.decode("ascii").strip().lower()
        except (UnicodeDecodeError, AttributeError):
            continue  # §6.4: keys are printable US-ASCII; anything else is junk
        if not key or key in out or not key.isprintable():
            continue
        out[key] = "" if raw_value is None else raw_value.decode("utf-8", errors="replace")
    return out


def zeroconf_interfaces(interfaces: str | Iterable[str]) -> InterfaceChoice | list[str]:
    return InterfaceChoice.All if interfaces == "all" else list(interfaces)


class Discovery:
    """Browses the service types the drivers asked for; calls on_seen / on_gone."""

    def __init__(self, service_types: Iterable[str], on_seen: OnSeen, on_gone: OnGone,
                 interfaces: str | list[str] = "all") -> None:
        self.service_types = sorted(set(service_types))
        self.on_seen = on_seen
        self.on_gone = on_gone
        self.interfaces = interfaces
        self.aiozc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._advertised: list[AsyncServiceInfo] = []

    async def start(self) -> None:
        self.aiozc = AsyncZeroconf(interfaces=zeroconf_interfaces(self.interfaces), ip_version=IPVersion.V4Only)
        await self.aiozc.zeroconf.async_wait_for_start()
        self._widen_receive_buffers()
        if self.service_types:
            self._browser = AsyncServiceBrowser(self.aiozc.zeroconf, self.service_types,
                                                handlers=[self._on_change])

    def _widen_receive_buffers(self) -> None:
        """1,000 devices announcing at once send thousands of datagrams in a second or two; the
        default ~200 KiB buffer overflows while the loop is busy, and a lost announcement is a
        device found late (measured: 75,000 receive-buffer drops in one 1,000-device start)."""
        assert self.aiozc is not None
        for reader in self.aiozc.zeroconf.engine.readers:
            try:
                reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            except OSError as e:
                log.debug("mDNS: could not widen the receive buffer: %s", e)

    async def stop(self) -> None:
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.aiozc is not None:
            for info in self._advertised:
                await self.aiozc.async_unregister_service(info)
            self._advertised.clear()
            await self.aiozc.async_close()
            self.aiozc = None

    def _on_change(self, zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            self._spawn(self.on_gone(service_type, name))
        else:
            self._spawn(self._resolve(service_type, name))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        assert self.aiozc is not None
        zc = self.aiozc.zeroconf
        info = AsyncServiceInfo(service_type, name)
        try:
            for attempt in range(1, RESOLVE_ATTEMPTS + 1):
                if await info.async_request(zc, RESOLVE_TIMEOUT_MS * attempt):
                    break
                log.info("mDNS: %s did not resolve within %d ms (attempt %d of %d)", name,
                         RESOLVE_TIMEOUT_MS * attempt, attempt, RESOLVE_ATTEMPTS)
            else:
                return
            seen = Discovered(
                service_type=service_type, name=name,
                addresses=tuple(info.parsed_addresses(IPVersion.V4Only)),
                port=info.port or 0, txt=decode_txt(info.properties or {}),
                server=(info.server or "").rstrip("."),
            )
        except Exception:
            log.exception("mDNS: could not read %s; ignored", name)
            return
        try:
            await self.on_seen(seen)
        except Exception:
            log.exception("mDNS: handling %s failed", name)

    async def advertise(self, service_type: str, name: str, port: int, properties: Mapping[str, str],
                        address: str) -> None:
        """Announce a service of ours (the broker as _mqtt._tcp)."""
        assert self.aiozc is not None
        info = AsyncServiceInfo(
            service_type, f"{name}.{service_type}", port=port, properties=dict(properties),
            addresses=[socket.inet_aton(address)], server=f"{socket.gethostname()}.local.",
        )
        await self.aiozc.async_register_service(info, allow_name_change=True)
        self._advertised.append(info)
