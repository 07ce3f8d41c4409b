"""Finding the broker (`_mqtt._tcp` over mDNS, or `--broker mqtt://host:port`) and advertising
simulated devices over mDNS (RFC 6763 naming rules, §4.1.1)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)

MQTT_SERVICE = "_mqtt._tcp.local."
MAX_INSTANCE_BYTES = 63  # RFC 6763 §4.1.1: one DNS label


@dataclass(frozen=True)
class BrokerAddress:
    """Where the MQTT broker listens."""

    host: str
    port: int = 1883

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """`mqtt://host:port` (or `tcp://`, or bare `host:port`) -> BrokerAddress; ValueError if bad."""
    text = url if "://" in url else f"mqtt://{url}"
    parts = urlsplit(text)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"broker URL must look like mqtt://host:port, got {url!r}")
    try:
        port = parts.port or 1883
    except ValueError:
        raise ValueError(f"bad port in broker URL {url!r}") from None
    return BrokerAddress(parts.hostname, port)


def make_zeroconf(interface: str = "127.0.0.1") -> AsyncZeroconf:
    """One AsyncZeroconf bound to a single IPv4 interface (never all interfaces)."""
    return AsyncZeroconf(interfaces=[interface], ip_version=IPVersion.V4Only)


async def _resolve(zc: Zeroconf, service_type: str, name: str, timeout_ms: int) -> AsyncServiceInfo | None:
    info = AsyncServiceInfo(service_type, name)
    if not await info.async_request(zc, timeout_ms):
        return None
    return info


async def discover_broker(aiozc: AsyncZeroconf, timeout: float = 10.0) -> BrokerAddress:
    """Browse `_mqtt._tcp` and return the first service that resolves to an IPv4 address."""
    loop = asyncio.get_running_loop()
    found: asyncio.Future[BrokerAddress] = loop.create_future()
    pending: set[asyncio.Task[None]] = set()

    async def resolve(name: str) -> None:
        info = await _resolve(aiozc.zeroconf, MQTT_SERVICE, name, 3000)
        if info is None or not info.port:
            log.debug("could not resolve %s", name)
            return
        addresses = info.parsed_addresses(IPVersion.V4Only)
        if addresses and not found.done():
            found.set_result(BrokerAddress(addresses[0], info.port))

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated) and not found.done():
            task = asyncio.create_task(resolve(name))
            pending.add(task)
            task.add_done_callback(pending.discard)

    log.info("looking for an MQTT broker advertised as %s", MQTT_SERVICE)
    browser = AsyncServiceBrowser(aiozc.zeroconf, MQTT_SERVICE, handlers=[on_change])
    try:
        address = await asyncio.wait_for(found, timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"no MQTT broker advertised as {MQTT_SERVICE} within {timeout:.0f} s; "
                           "pass --broker mqtt://host:port") from None
    finally:
        await browser.async_cancel()
        for task in list(pending):
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    log.info("found MQTT broker by mDNS at %s", address.url)
    return address


async def resolve_broker(url: str | None, aiozc: AsyncZeroconf | None, timeout: float = 10.0) -> BrokerAddress:
    """`--broker` when given, else mDNS discovery (which needs a zeroconf instance)."""
    if url:
        return parse_broker_url(url)
    if aiozc is None:
        raise ValueError("no --broker given and mDNS is off: nowhere to find the broker")
    return await discover_broker(aiozc, timeout)


def instance_name(name: str) -> str:
    """A service instance label: dots replaced, cut to 63 bytes on a UTF-8 boundary."""
    clean = name.replace(".", " ").strip() or "device"
    data = clean.encode("utf-8")[:MAX_INSTANCE_BYTES]
    return data.decode("utf-8", errors="ignore").rstrip()


def mqtt_service_info(address: str, port: int, name: str = "MQTT broker") -> AsyncServiceInfo:
    """A `_mqtt._tcp` record (the hub advertises its broker like this; tests use it too)."""
    return AsyncServiceInfo(
        MQTT_SERVICE, f"{instance_name(name)}.{MQTT_SERVICE}", addresses=[socket.inet_aton(address)],
        port=port, properties={"txtvers": "1"}, server=f"{instance_name(name).replace(' ', '-').lower()}.local.",
    )


class Advertiser:
    """Registers many services on one AsyncZeroconf concurrently; unregisters (goodbye) them all."""

    def __init__(self, aiozc: AsyncZeroconf) -> None:
        self.aiozc = aiozc
        self.infos: list[AsyncServiceInfo] = []

    async def register(self, infos: Iterable[AsyncServiceInfo]) -> None:
        """Probing takes ~1 s per service, so run all probes at once (RFC 6762 §8.1)."""
        infos = list(infos)
        results = await asyncio.gather(
            *(self.aiozc.async_register_service(i, allow_name_change=True) for i in infos),
            return_exceptions=True)
        announce = []
        for info, result in zip(infos, results):
            if isinstance(result, BaseException):
                log.error("could not advertise %s: %s", info.name, result)
            else:
                announce.append(result)
                self.infos.append(info)
        await asyncio.gather(*announce, return_exceptions=True)

    async def unregister(self) -> None:
        """Send goodbyes (TTL 0, RFC 6762 §10.1) for every registered service."""
        infos, self.infos = self.infos, []
        results = await asyncio.gather(*(self.aiozc.async_unregister_service(i) for i in infos),
                                       return_exceptions=True)
        await asyncio.gather(*(r for r in results if not isinstance(r, BaseException)), return_exceptions=True)
