"""The projector runtime: UDP search and notifications, one session at a time, idle close,
persistence, the mDNS record, the media player and the `firmware-sim projector` command."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from firmware_sim.projector.pjlink import digest_for
from hub.broker import Broker, free_port  # test helpers; firmware_sim itself never imports hub
from firmware_sim.projector import ProjectorSim
from firmware_sim.projector.model import ErrorKind, FakeClock, Level, Power, ProjectorConfig

TIMEOUT = 10.0
MAC = "02:11:22:33:44:55"


class Datagrams(asyncio.DatagramProtocol):
    """A UDP socket for the test, acting as the PJLink controller."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue(maxsize=100)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))

    async def next(self) -> bytes:
        data, _ = await asyncio.wait_for(self.queue.get(), TIMEOUT)
        return data

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]


@pytest.fixture
async def controller() -> AsyncIterator[Datagrams]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        Datagrams, local_addr=("127.0.0.1", 0), allow_broadcast=True)
    try:
        yield protocol
    finally:
        transport.close()


def make_sim(tmp_path: Path, clock: FakeClock | None = None, name: str = "Projector",
             warmup: float = 20, **kw: object) -> ProjectorSim:
    options: dict[str, object] = {"port": 0, "udp_port": 0, "idle_timeout": 10.0,
                                  "state_dir": tmp_path, "busy_grace": 0.3}
    options.update(kw)
    if clock is not None:
        options["clock"] = clock
    return ProjectorSim(ProjectorConfig(name=name, mac=MAC, warmup=warmup, cooldown=10),
                        **options)  # type: ignore[arg-type]


async def test_udp_search_is_answered_with_the_mac(tmp_path: Path, controller: Datagrams) -> None:
    async with make_sim(tmp_path) as sim:
        assert controller.transport is not None
        controller.transport.sendto(b"%2SRCH\r", ("127.0.0.1", sim.udp_port))
        data, addr = await asyncio.wait_for(controller.queue.get(), TIMEOUT)
        assert data == b"%2ACKN=02:11:22:33:44:55\r"
        assert addr == ("127.0.0.1", sim.udp_port)
        controller.transport.sendto(b"garbage \x00\xff", ("127.0.0.1", sim.udp_port))
        controller.transport.sendto(b"%2SRCH\r", ("127.0.0.1", sim.udp_port))
        assert await controller.next() == b"%2ACKN=02:11:22:33:44:55\r"  # garbage dropped


async def test_a_broadcast_search_is_answered_when_listening_on_all_addresses(
        tmp_path: Path, controller: Datagrams) -> None:
    """How a controller really searches (2.00 §3); safe here: the namespace has only lo."""
    async with make_sim(tmp_path, udp_host="0.0.0.0") as sim:
        assert controller.transport is not None
        controller.transport.sendto(b"%2SRCH\r", ("255.255.255.255", sim.udp_port))
        assert await controller.next() == b"%2ACKN=02:11:22:33:44:55\r"


async def test_status_notifications_go_to_the_controller_that_last_spoke(
        tmp_path: Path, controller: Datagrams) -> None:
    clock = FakeClock()
    async with make_sim(tmp_path, clock, notify_port=controller.port) as sim:
        assert controller.transport is not None
        controller.transport.sendto(b"%2SRCH\r", ("127.0.0.1", sim.udp_port))
        assert (await controller.next()).startswith(b"%2ACKN=")
        sim.model.power_on()
        assert await controller.next() == b"%2POWR=3\r"
        clock.advance(20)
        sim.model.update()
        assert await controller.next() == b"%2POWR=1\r"
        sim.model.select_input("31")
        assert await controller.next() == b"%2INPT=31\r"
        sim.inject_error(ErrorKind.LAMP, Level.ERROR)
        got = {await controller.next(), await controller.next()}
        assert got == {b"%2POWR=2\r", b"%2ERST=020000\r"}
        assert all(len(d) <= 25 for d in got)


async def test_after_a_restart_lkup_goes_out_and_warm_up_ends_on_time(
        tmp_path: Path, controller: Datagrams) -> None:
    """The controller is remembered across a restart; the real-clock timer ends warm-up."""
    assert controller.transport is not None
    async with make_sim(tmp_path, notify_port=controller.port) as sim:
        controller.transport.sendto(b"%2SRCH\r", ("127.0.0.1", sim.udp_port))
        assert (await controller.next()).startswith(b"%2ACKN=")
    async with make_sim(tmp_path, warmup=0.2, notify_port=controller.port) as fast:
        assert await controller.next() == b"%2LKUP=02:11:22:33:44:55\r"
        fast.model.power_on()
        assert await controller.next() == b"%2POWR=3\r"
        assert await controller.next() == b"%2POWR=1\r"  # nobody asked: the timer did it


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    async with make_sim(tmp_path, clock) as sim:
        sim.model.power_on()
        clock.advance(20 + 4 * 3600)
        sim.model.select_input("33")
    saved = json.loads((tmp_path / "projector-021122334455.json").read_text())
    assert saved["power"] == 1 and saved["input"] == "33"
    async with make_sim(tmp_path, FakeClock()) as again:
        assert (again.model.power, again.model.input, again.model.lamp_hours) == (Power.ON, "33", 4)


async def test_a_corrupt_state_file_starts_from_defaults(tmp_path: Path) -> None:
    (tmp_path / "projector-021122334455.json").write_text('{"power": "banana"')
    async with make_sim(tmp_path) as sim:
        assert sim.model.power is Power.OFF


async def _open(sim: ProjectorSim) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", sim.port), TIMEOUT)


async def test_one_session_at_a_time(tmp_path: Path) -> None:
    async with make_sim(tmp_path, password="pw") as sim:
        r1, w1 = await _open(sim)
        greeting = await asyncio.wait_for(r1.readuntil(b"\r"), TIMEOUT)
        token = greeting.decode()[9:17]
        w1.write(digest_for(token, "pw").encode() + b"%1POWR ?\r")
        assert await asyncio.wait_for(r1.readuntil(b"\r"), TIMEOUT) == b"%1POWR=0\r"

        r2, w2 = await _open(sim)  # while the first session is open
        assert await asyncio.wait_for(r2.read(), TIMEOUT) == b""  # closed, no greeting
        w2.close()

        w1.write(b"%1POWR ?\r")  # the first session is unaffected
        assert await asyncio.wait_for(r1.readuntil(b"\r"), TIMEOUT) == b"%1POWR=0\r"
        w1.close()
        await w1.wait_closed()

        r3, w3 = await _open(sim)
        assert (await asyncio.wait_for(r3.readuntil(b"\r"), TIMEOUT)).startswith(b"PJLINK 1 ")
        w3.close()


async def test_a_silent_session_is_closed_after_the_idle_timeout(tmp_path: Path) -> None:
    async with make_sim(tmp_path, idle_timeout=0.3) as sim:
        reader, writer = await _open(sim)
        assert await asyncio.wait_for(reader.readuntil(b"\r"), TIMEOUT) == b"PJLINK 0\r"
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()


async def test_a_wrong_digest_gets_erra_and_the_connection_closes(tmp_path: Path) -> None:
    async with make_sim(tmp_path, password="pw") as sim:
        reader, writer = await _open(sim)
        await asyncio.wait_for(reader.readuntil(b"\r"), TIMEOUT)
        writer.write(b"0" * 32 + b"%1POWR ?\r")
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"PJLINK ERRA\r"
        writer.close()


async def test_advertised_over_mdns_with_txt_and_goodbye_on_stop(tmp_path: Path) -> None:
    sim = make_sim(tmp_path, name="Attic projector", password="pw", mdns_interface="127.0.0.1")
    events: asyncio.Queue[tuple[str, ServiceStateChange]] = asyncio.Queue(maxsize=50)

    def on_change(zeroconf: Zeroconf, service_type: str, name: str,
                  state_change: ServiceStateChange) -> None:
        events.put_nowait((name, state_change))

    aiozc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    browser = AsyncServiceBrowser(aiozc.zeroconf, ["_pjlink._tcp.local."], handlers=[on_change])
    try:
        await sim.start()
        try:
            name, change = await asyncio.wait_for(events.get(), TIMEOUT)
            assert (name, change) == ("Attic projector._pjlink._tcp.local.", ServiceStateChange.Added)
            info = AsyncServiceInfo("_pjlink._tcp.local.", name)
            assert await info.async_request(aiozc.zeroconf, 3000)
            assert info.port == sim.port
            assert info.parsed_addresses() == ["127.0.0.1"]
            assert info.decoded_properties == {
                "txtvers": "1", "class": "2", "mac": MAC, "serial": sim.config.serial,
                "model": "PicoBeam P1", "auth": "1"}
        finally:
            await sim.stop()
        while True:
            name, change = await asyncio.wait_for(events.get(), TIMEOUT)
            if change is ServiceStateChange.Removed:
                break
        assert name == "Attic projector._pjlink._tcp.local."
    finally:
        await browser.async_cancel()
        await aiozc.async_close()


async def test_the_media_player_comes_up_on_the_broker_with_the_projector_mac(
        tmp_path: Path, broker: Broker) -> None:
    async with make_sim(tmp_path, broker=broker.url) as sim:
        assert sim.player is not None
        await asyncio.wait_for(sim.player.ready.wait(), TIMEOUT)
        device_id = "projector-021122334455-player"
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.subscribe(f"homie/5/{device_id}/$state")
            async with asyncio.timeout(TIMEOUT):
                async for message in client.messages:
                    assert message.payload == b"ready"
                    break
    assert sim.player is None


async def test_the_media_player_finds_the_broker_by_mdns(tmp_path: Path, broker: Broker) -> None:
    from firmware_sim.common.net import mqtt_service_info

    device_id = "projector-021122334455-player"
    aiozc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    info = mqtt_service_info(broker.host, broker.port, "Test broker")
    try:
        await (await aiozc.async_register_service(info))
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.subscribe(f"homie/5/{device_id}/$state")
            async with make_sim(tmp_path, mdns_interface="127.0.0.1", find_broker=True) as sim:
                async with asyncio.timeout(TIMEOUT):
                    async for message in client.messages:
                        if message.payload == b"ready":
                            break
                assert sim.player is not None and sim.player.mac == MAC
    finally:
        await aiozc.async_close()


async def test_firmware_sim_projector_command(tmp_path: Path) -> None:
    port, udp_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_sim.cli", "projector", "--port", str(port),
        "--udp-port", str(udp_port), "--password", "pw", "--no-mdns", "--warmup", "0.5",
        "--state-dir", str(tmp_path), "--error", "filter=1", "--name", "Garage",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
        assert f"on 127.0.0.1:{port}".encode() in line and b"password set" in line
        assert b"pw" not in line.replace(b"password", b"")

        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        greeting = (await asyncio.wait_for(reader.readuntil(b"\r"), TIMEOUT)).decode()
        writer.write(digest_for(greeting[9:17], "pw").encode() + b"%1NAME ?\r%1ERST ?\r")
        assert await asyncio.wait_for(reader.readuntil(b"\r"), TIMEOUT) == b"%1NAME=Garage\r"
        assert await asyncio.wait_for(reader.readuntil(b"\r"), TIMEOUT) == b"%1ERST=000010\r"
        writer.close()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), TIMEOUT)
    assert code == 0
    assert list(tmp_path.glob("projector-*.json"))
