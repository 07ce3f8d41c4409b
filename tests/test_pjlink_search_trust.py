"""PJLink Class 2 search trust: a UDP datagram never re-points a known projector by itself.

Real peers: the project's projector simulator twice, the projector at 127.0.0.1 and another
unit (a clone, an impostor, or the same projector after a move) at 127.0.0.2, both on the
same port, as two hosts of one LAN would be. The whole 127/8 is loopback inside the namespace.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from devices.pjlink import PJLinkDriver, device_id_for
from devices.pjlink_identity import Identity, mismatch
from devices.pjlink_search import PJLinkUdp, SearchAck, StatusNotice
from firmware_sim.projector import ProjectorSim
from firmware_sim.projector.model import Power, ProjectorConfig
from tests.pjlink_helpers import RecordingContext
from tests.test_pjlink_e2e import free_port_for_tcp_and_udp

PASSWORD = "trust-secret"
MAC = "02:00:00:aa:bb:01"
DEV = device_id_for(MAC)
HOME, ELSEWHERE = "127.0.0.1", "127.0.0.2"


def unit(host: str, port: int, *, serial: str = "PB1-0001", password: str | None = PASSWORD) -> ProjectorSim:
    config = ProjectorConfig(name="Living room", mac=MAC, serial=serial, warmup=0.2, cooldown=0.2)
    return ProjectorSim(config, host=host, port=port, udp_port=port, password=password, idle_timeout=10.0)


class Setup:
    def __init__(self, ctx: RecordingContext, driver: PJLinkDriver, home: ProjectorSim, port: int) -> None:
        self.ctx, self.driver, self.home, self.port = ctx, driver, home, port

    def address(self) -> str:
        return self.ctx.devices[DEV].address

    async def refused(self) -> str:
        """The device error that says a claim was ignored."""
        await self.ctx.wait_for(lambda: any("claimed to be this projector" in m for _, m in self.ctx.errors))
        return next(m for _, m in self.ctx.errors if "claimed to be this projector" in m)


@pytest.fixture
async def found() -> AsyncIterator[Setup]:
    """The hub's PJLink driver has found the projector at home by search and loaded its identity."""
    port = free_port_for_tcp_and_udp()
    home = unit(HOME, port)
    await home.start()
    ctx = RecordingContext()
    driver = PJLinkDriver(ctx.configure(PJLinkDriver, dict(passwords={MAC: PASSWORD}, port=port, notify_port=0, udp_host=HOME,
                          poll_interval=3600, timeout=2, backoff=(0.05, 0.2))))
    await driver.start()
    try:
        await driver.search((HOME, port), window=0.3)  # the test says when the hub searches
        await ctx.wait_for(lambda: ctx.online.get(DEV) and ctx.devices[DEV].expose("input"))
        assert ctx.devices[DEV].address == HOME
        yield Setup(ctx, driver, home, port)
    finally:
        await driver.stop()
        await home.stop()


def send_from(host: str, datagram: bytes, to: tuple[str, int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        s.sendto(datagram, to)


async def test_an_unsolicited_ackn_is_dropped_and_an_lkup_from_elsewhere_is_checked(found: Setup) -> None:
    clone = unit(ELSEWHERE, found.port, password=None)  # same MAC, serial and name; no password
    await clone.start()
    try:
        assert found.driver.udp is not None and not found.driver.udp.searching
        hub_udp = (HOME, found.driver.udp.port)
        send_from(ELSEWHERE, f"%2ACKN={MAC}\r".encode(), hub_udp)  # no search in flight: dropped
        send_from(ELSEWHERE, f"%2LKUP={MAC}\r".encode(), hub_udp)  # checked: the projector answers at home
        reason = await found.refused()
        assert f"{ELSEWHERE}:{found.port}" in reason and f"still answers at {HOME}" in reason
        assert found.address() == HOME
        assert clone.connections_accepted == 0  # it never saw a session, let alone a password digest
        await found.driver.send(DEV, {"power": True})
        assert found.home.model.power in (Power.WARMING, Power.ON)
    finally:
        await clone.stop()


async def test_a_search_reply_from_a_clone_while_the_projector_still_answers(found: Setup) -> None:
    clone = unit(ELSEWHERE, found.port, password=None)
    await clone.start()
    try:
        replies = await found.driver.search((ELSEWHERE, found.port), window=0.3)
        assert replies == {MAC.replace(":", ""): ELSEWHERE}  # the clone did answer our search
        assert f"still answers at {HOME}" in await found.refused()
        assert found.address() == HOME and clone.connections_accepted == 0
    finally:
        await clone.stop()


async def test_a_projector_that_moved_is_followed_once_checked(found: Setup) -> None:
    await found.home.stop()  # unplugged here, plugged in there: a new DHCP lease
    moved = unit(ELSEWHERE, found.port)
    await moved.start()
    try:
        await found.driver.search((ELSEWHERE, found.port), window=0.3)
        await found.ctx.wait_for(lambda: found.address() == ELSEWHERE, timeout=15)
        await found.driver.send(DEV, {"power": True})
        assert moved.model.power in (Power.WARMING, Power.ON)
        assert not [m for _, m in found.ctx.errors if "claimed" in m]
    finally:
        await moved.stop()


@pytest.mark.parametrize("password,serial,why", [
    (None, "PB1-0001", "does not ask for the projector's password"),  # a clone that can't know it
    (PASSWORD, "PB1-9999", "serial number (SNUM) differs"),
    ("another", "PB1-0001", "does not accept the projector's password"),
])
async def test_an_impostor_is_refused_even_when_the_projector_is_gone(
    found: Setup, password: str | None, serial: str, why: str
) -> None:
    await found.home.stop()
    impostor = unit(ELSEWHERE, found.port, serial=serial, password=password)
    await impostor.start()
    try:
        await found.driver.search((ELSEWHERE, found.port), window=0.3)
        reason = await found.refused()
        assert why in reason and f"{ELSEWHERE}:{found.port}" in reason
        assert found.address() == HOME
    finally:
        await impostor.stop()


# ---------------------------------------------------------------- the logic, with injected datagrams


async def test_the_udp_socket_passes_an_ackn_on_only_during_a_search() -> None:
    events: list[object] = []
    udp = PJLinkUdp(lambda ev, source: events.append((ev, source)), host=HOME, port=0)
    await udp.start()
    try:
        udp._received(f"%2ACKN={MAC}\r".encode(), ("10.0.0.66", 4352))
        assert events == []
        search = asyncio.ensure_future(udp.search((HOME, 9), window=0.2))  # port 9: nobody answers
        await asyncio.sleep(0)  # let the search start: the window opens before the first await
        assert udp.searching
        udp._received(f"%2ACKN={MAC}\r".encode(), ("10.0.0.5", 4352))
        assert await search == {MAC.replace(":", ""): "10.0.0.5"}
        assert events == [(SearchAck(MAC.replace(":", "")), "10.0.0.5")]
    finally:
        await udp.stop()


async def test_an_unsolicited_lkup_for_an_unknown_mac_adds_nothing() -> None:
    ctx = RecordingContext()
    driver = PJLinkDriver(ctx.configure(PJLinkDriver, dict(notify_port=0, udp_host=HOME, poll_interval=3600)))
    await driver.start()
    try:
        driver._on_udp(StatusNotice("LKUP", MAC), "10.0.0.66")
        assert ctx.devices == {}
    finally:
        await driver.stop()


KNOWN = Identity(pj_class=2, serial="S1", manufacturer="Hub Labs", model="PicoBeam P1", auth_required=True)


@pytest.mark.parametrize("seen,why", [
    (KNOWN, None),
    (Identity(1, "S1", "Hub Labs", "PicoBeam P1", True), "not a Class 2 projector"),
    (Identity(2, "S1", "Hub Labs", "PicoBeam P1", False), "does not ask for the projector's password"),
    (Identity(2, "S2", "Hub Labs", "PicoBeam P1", True), "serial number"),
    (Identity(2, "", "Hub Labs", "PicoBeam P1", True), "serial number"),
    (Identity(2, "S1", "Other", "PicoBeam P1", True), "manufacturer"),
    (Identity(2, "S1", "Hub Labs", "P2", True), "product name"),
])
def test_identity_mismatch(seen: Identity, why: str | None) -> None:
    got = mismatch(KNOWN, seen)
    assert got == why if why is None else why in (got or "")


def test_an_unknown_serial_is_not_compared() -> None:
    known = Identity(2, "", "Hub Labs", "PicoBeam P1", False)
    assert mismatch(known, Identity(2, "X", "Hub Labs", "PicoBeam P1", True)) is None
