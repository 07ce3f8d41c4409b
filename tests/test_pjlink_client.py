"""The asyncio PJLink client against pjlink-advance's emulator (an independent projector) and scripted fakes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.pjlink_helpers import Emulator

from devices import pjlink_codec as pj
from devices.pjlink_client import PJLinkClient
from hub.driver import DeviceUnreachable

PASSWORD = "JBMIAProjectorLink"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    e = await Emulator(password=PASSWORD).start()
    try:
        yield e
    finally:
        await e.stop()


async def test_queries_and_commands_with_md5_auth(emu: Emulator) -> None:
    c = PJLinkClient("127.0.0.1", emu.port, PASSWORD, timeout=5)
    try:
        assert await c.request("CLSS") == "2"
        assert await c.request("POWR") == "0"
        assert await c.request("POWR", "1") == "OK"
        assert await c.request("POWR") == "1"
        assert await c.request("INNM", "?31", pj_class=2) == "HDMI1"
        assert await c.request("INPT", "32", pj_class=1) == "OK"
        assert (await emu.call("state"))["input"] == "32"
    finally:
        await c.close()


async def test_err3_in_standby_is_not_now_not_offline(emu: Emulator) -> None:
    c = PJLinkClient("127.0.0.1", emu.port, PASSWORD, timeout=5)
    try:
        with pytest.raises(pj.UnavailableTime):
            await c.request("INPT", "31")
        with pytest.raises(pj.UnavailableTime):
            await c.request("AVMT", "11")
        assert await c.request("POWR") == "0"  # same session still fine
        assert c.connections_opened == 1
    finally:
        await c.close()


async def test_err_codes_from_the_emulator_are_typed(emu: Emulator) -> None:
    c = PJLinkClient("127.0.0.1", emu.port, PASSWORD, timeout=5)
    try:
        with pytest.raises(pj.UndefinedCommand):
            await c.request("XXXX")
        with pytest.raises(pj.OutOfParameter):
            await c.request("POWR", "7")
        await emu.call("set", fail_next="ERR4")
        with pytest.raises(pj.ProjectorFailure):
            await c.request("POWR")
    finally:
        await c.close()


async def test_wrong_or_missing_password_is_an_auth_error(emu: Emulator) -> None:
    for password in ("wrong", None):
        c = PJLinkClient("127.0.0.1", emu.port, password, timeout=5)
        with pytest.raises(pj.AuthenticationFailed):
            await c.request("POWR")
        await c.close()


async def test_one_connection_for_a_hundred_commands(emu: Emulator) -> None:
    c = PJLinkClient("127.0.0.1", emu.port, PASSWORD, timeout=5)
    try:
        results = await asyncio.gather(*(c.request("POWR") for _ in range(100)))  # serialised inside
        assert set(results) == {"0"}
        assert c.connections_opened == 1
        assert (await emu.call("state"))["connections"] == 1
    finally:
        await c.close()


async def test_projector_closing_the_session_is_transparent(emu: Emulator) -> None:
    c = PJLinkClient("127.0.0.1", emu.port, PASSWORD, timeout=5)
    try:
        assert await c.request("POWR") == "0"
        await emu.call("disconnect_all")  # what a projector does after ~30 s idle
        assert await c.request("POWR") == "0"
        assert c.connections_opened == 2
    finally:
        await c.close()


async def test_idle_session_is_reopened_before_the_projector_drops_it(emu: Emulator) -> None:
    now = [1000.0]
    c = PJLinkClient("127.0.0.1", emu.port, PASSWORD, timeout=5, max_idle=25, clock=lambda: now[0])
    try:
        await c.request("POWR")
        now[0] += 10
        await c.request("POWR")
        assert c.connections_opened == 1
        now[0] += 26
        await c.request("POWR")
        assert c.connections_opened == 2
    finally:
        await c.close()


async def test_projector_killed_mid_command_then_back(emu: Emulator) -> None:
    c = PJLinkClient("127.0.0.1", emu.port, PASSWORD, timeout=3)
    try:
        assert await c.request("POWR") == "0"
        await emu.call("set", silent=True)  # it takes the command and never answers...
        pending = asyncio.ensure_future(c.request("POWR", "1"))

        async def command_arrived() -> None:
            while "%1POWR 1" not in (await emu.call("state"))["received"]:
                pass

        await asyncio.wait_for(command_arrived(), 5)
        await emu.kill()  # ...and dies
        with pytest.raises(DeviceUnreachable):
            await asyncio.wait_for(pending, 3 + 2)
        with pytest.raises(DeviceUnreachable):
            await c.request("POWR")  # still gone: refused, not hung
        await emu.start()  # back on the same port
        assert await c.request("POWR") == "0"
    finally:
        await c.close()


async def test_silent_projector_times_out(emu: Emulator) -> None:
    await emu.call("set", silent=True)
    c = PJLinkClient("127.0.0.1", emu.port, PASSWORD, timeout=0.5)
    try:
        with pytest.raises(DeviceUnreachable, match="did not answer"):
            await asyncio.wait_for(c.request("POWR"), 3)
    finally:
        await c.close()


async def test_nothing_listening_is_unreachable() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    c = PJLinkClient("127.0.0.1", port, None, timeout=1)
    with pytest.raises(DeviceUnreachable):
        await asyncio.wait_for(c.request("POWR"), 3)
    assert c.connections_opened == 0


# ---------------------------------------------------------------- scripted fakes for the wire's edge cases

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def fake(script: Script) -> tuple[asyncio.Server, int]:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await script(r, w)
        finally:
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_unsolicited_lkup_and_garbage_are_skipped() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"PJLINK 0\r%2LKUP=00:26:ab:00:00:01\r")
        await r.readuntil(b"\r")
        w.write(b"\x00\xffjunk\r%2LKUP=00:26:ab:00:00:01\r%1POWR=1\r")
        await r.readuntil(b"\r")

    server, port = await fake(script)
    c = PJLinkClient("127.0.0.1", port, None, timeout=2)
    try:
        assert await c.request("POWR") == "1"
    finally:
        await c.close()
        server.close()


async def test_reply_split_byte_by_byte_equals_coalesced() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        for b in b"PJLINK 1 498e4a67\r":
            w.write(bytes([b]))
            await w.drain()
        line = await r.readuntil(b"\r")
        assert line == b"5d8409bc1c3fa39749434aa3a5c38682%1NAME ?\r"
        for b in "%1NAME=Salle à manger\r".encode():
            w.write(bytes([b]))
            await w.drain()
        await r.readuntil(b"\r")

    server, port = await fake(script)
    c = PJLinkClient("127.0.0.1", port, PASSWORD, timeout=2)
    try:
        assert await c.request("NAME") == "Salle à manger"
    finally:
        await c.close()
        server.close()


async def test_endless_garbage_ends_in_timeout_not_a_hang() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"PJLINK 0\r")
        await r.readuntil(b"\r")
        for _ in range(2000):
            w.write(b"x" * 500)
            await w.drain()
            await asyncio.sleep(0)  # the fake keeps talking; the client must give up on its own

    server, port = await fake(script)
    c = PJLinkClient("127.0.0.1", port, None, timeout=0.5)
    try:
        with pytest.raises(DeviceUnreachable):
            await asyncio.wait_for(c.request("POWR"), 5)
    finally:
        await c.close()
        server.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    greet=st.sampled_from([b"PJLINK 0\r", b"PJLINK 1 498e4a67\r", b"PJLINK ERRA\r", b""]),
    chunks=st.lists(st.binary(max_size=80) | st.sampled_from([b"%1POWR=1\r", b"%1POWR=ERR3\r", b"\r"]), max_size=6),
    close=st.booleans(),
)
def test_any_server_bytes_end_in_a_reply_or_a_typed_error(greet: bytes, chunks: list[bytes], close: bool) -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        for c in [greet, *chunks]:
            w.write(c)
            await w.drain()
        if not close:
            await r.read()  # keep the session open until the client gives up

    async def run() -> object:
        server, port = await fake(script)
        c = PJLinkClient("127.0.0.1", port, PASSWORD, timeout=0.3)
        try:
            return await asyncio.wait_for(c.request("POWR"), 3)  # never a hang past the timeout
        except (pj.PJLinkError, DeviceUnreachable) as e:
            return e
        finally:
            await c.close()
            server.close()
            await server.wait_closed()

    result = asyncio.run(run())
    assert isinstance(result, str | pj.PJLinkError | DeviceUnreachable)
