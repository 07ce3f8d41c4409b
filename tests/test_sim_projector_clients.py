"""The simulated projector against PJLink clients we did not write: pypjlink2 and aiopjlink2.

The projector runs in-process on loopback with a fake clock, so warm-up and cooling end
when the test advances time; the clients run over real TCP (pypjlink2 in a thread).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiopjlink import PJLink, PJLinkERR2, PJLinkERR3, PJLinkERR4, PJLinkPassword, PJClass
from aiopjlink import Errors as AioErrors
from aiopjlink import Power as AioPower
from aiopjlink import Sources
from pypjlink import MUTE_AUDIO, MUTE_VIDEO, Projector
from pypjlink.projector import ProjectorError

from firmware_sim.projector import ProjectorSim
from firmware_sim.projector.model import FakeClock, Power, ProjectorConfig

PASSWORD = "JBMIAProjectorLink"
TIMEOUT = 10.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def projector(clock: FakeClock, tmp_path: Path) -> AsyncIterator[ProjectorSim]:
    config = ProjectorConfig(name="Living room projector", serial="PB-0042", warmup=20,
                             cooldown=10, speed=1.0)
    sim = ProjectorSim(config, port=0, udp_port=0, password=PASSWORD, idle_timeout=10,
                       busy_grace=2.0, state_dir=tmp_path, clock=clock)
    async with sim:
        yield sim


def pypjlink(sim: ProjectorSim, password: str = PASSWORD) -> Projector:
    """A connected, authenticated pypjlink2 projector (blocking: call in a thread)."""
    p = Projector.from_address("127.0.0.1", sim.port, timeout=TIMEOUT)
    assert p.authenticate(password) is True
    return p


async def test_pypjlink_power_on_warm_up_on_and_off(projector: ProjectorSim, clock: FakeClock) -> None:
    def session() -> list[str]:
        seen = []
        with pypjlink(projector) as p:
            seen.append(p.get_power())
            p.set_power("on")
            seen.append(p.get_power())
            clock.advance(20)
            seen.append(p.get_power())
            p.set_power("off")
            seen.append(p.get_power())
            clock.advance(10)
            seen.append(p.get_power())
        return seen

    assert await asyncio.to_thread(session) == ["off", "warm-up", "on", "cooling", "off"]


async def test_pypjlink_inputs_mute_and_lamp(projector: ProjectorSim, clock: FakeClock) -> None:
    def session() -> dict[str, object]:
        out: dict[str, object] = {}
        with pypjlink(projector) as p:
            out["inputs"] = p.get_inputs()
            try:
                p.set_input("DIGITAL", 2)
            except ProjectorError as exc:
                out["input while off"] = str(exc)
            p.set_power("on")
            clock.advance(20 + 3 * 3600)
            p.set_input("DIGITAL", 2)
            out["input"] = p.get_input()
            p.set_mute(MUTE_VIDEO, True)
            out["video muted"] = p.get_mute()
            p.set_mute(MUTE_VIDEO | MUTE_AUDIO, True)
            out["both muted"] = p.get_mute()
            out["lamps"] = p.get_lamps()
            try:
                p.set_input("VIDEO", 1)
            except ProjectorError as exc:
                out["missing input"] = str(exc)
        return out

    out = await asyncio.to_thread(session)
    assert out["inputs"] == [("DIGITAL", 1), ("DIGITAL", 2), ("DIGITAL", 3), ("STORAGE", 1),
                             ("NETWORK", 1), ("NETWORK", 2)]
    assert out["input while off"] == "unavailable time"
    assert out["input"] == ("DIGITAL", 2)
    assert out["video muted"] == (True, False)
    assert out["both muted"] == (True, True)
    assert out["lamps"] == [(3, True)]
    assert out["missing input"] == "out of parameter"


async def test_pypjlink_errors_and_names(projector: ProjectorSim) -> None:
    projector.inject_error("filter", 1)
    projector.inject_error("temperature", 2)

    def session() -> tuple[object, ...]:
        with pypjlink(projector) as p:
            errors = p.get_errors()
            try:
                p.set_power("on")
                refused = ""
            except ProjectorError as exc:
                refused = str(exc)
            return (errors, refused, p.get_name(), p.get_manufacturer(), p.get_product_name(),
                    p.get_other_info(), p.get("CLSS"))

    errors, refused, *names = await asyncio.to_thread(session)
    assert errors == {"fan": "ok", "lamp": "ok", "temperature": "error", "cover": "ok",
                      "filter": "warning", "other": "ok"}
    assert refused == "projector failure"
    assert names == ["Living room projector", "Hub Labs", "PicoBeam P1", "firmware-sim", "2"]


async def test_pypjlink_lamp_fault_while_on_cools_the_projector(projector: ProjectorSim,
                                                                clock: FakeClock) -> None:
    def power_on() -> None:
        with pypjlink(projector) as p:
            p.set_power("on")
            clock.advance(20)

    await asyncio.to_thread(power_on)
    projector.inject_error("lamp", 2)

    def read() -> tuple[str, dict[str, str]]:
        with pypjlink(projector) as p:
            return p.get_power(), p.get_errors()

    power, errors = await asyncio.to_thread(read)
    assert power == "cooling" and errors["lamp"] == "error"


async def test_pypjlink_wrong_password_is_rejected(projector: ProjectorSim) -> None:
    def attempt() -> object:
        p = Projector.from_address("127.0.0.1", projector.port, timeout=TIMEOUT)
        with p:
            return p.authenticate("not the password")

    assert await asyncio.to_thread(attempt) is False


async def test_pypjlink_without_password() -> None:
    sim = ProjectorSim(ProjectorConfig(), port=0, udp_port=0, idle_timeout=10)
    async with sim:
        def session() -> tuple[object, str]:
            p = Projector.from_address("127.0.0.1", sim.port, timeout=TIMEOUT)
            with p:
                return p.authenticate(), p.get_power()

        assert await asyncio.to_thread(session) == (None, "off")


# -- aiopjlink2: Class 2, a new connection per command ---------------------------------------

def aio(sim: ProjectorSim, password: str | None = PASSWORD) -> PJLink:
    return PJLink("127.0.0.1", sim.port, password=password, timeout=TIMEOUT)


async def test_aiopjlink_class2_information(projector: ProjectorSim) -> None:
    link = aio(projector)
    assert await link.info.serial_number() == "PB-0042"
    assert await link.info.software_version() == "1.4.2"
    assert await link.info.pjlink_class() is PJClass.TWO
    assert await link.info.pjlink_class(PJClass.TWO) is PJClass.TWO
    assert await link.lamps.replacement_models() == ["LMP-PB1"]
    assert await link.filter.replacement_models() == ["FLT-PB1"]
    assert await link.filter.hours() == 0
    table = await link.info.table()
    assert table["projector_name"] == "Living room projector"
    assert table["serial_number"] == "PB-0042"


async def test_aiopjlink_input_names_and_resolution(projector: ProjectorSim,
                                                    clock: FakeClock) -> None:
    link = aio(projector)
    names = await link.sources.available_with_names()
    assert names == [(Sources.Mode.DIGITAL, "1", "HDMI1"), (Sources.Mode.DIGITAL, "2", "HDMI2"),
                     (Sources.Mode.DIGITAL, "3", "USB-C"), (Sources.Mode.STORAGE, "1", "USB storage"),
                     (Sources.Mode.NETWORK, "1", "Network"), (Sources.Mode.NETWORK, "2", "Media player")]
    with pytest.raises(PJLinkERR3):
        await link.sources.resolution()  # standby: no picture
    await link.power.turn_on()
    assert await link.power.get() is AioPower.State.WARMING
    clock.advance(20)
    assert await link.power.get(PJClass.TWO) is AioPower.State.ON
    assert await link.sources.get() == (Sources.Mode.NETWORK, "2")
    assert await link.sources.resolution() == (1920, 1080)
    await link.sources.set(Sources.Mode.NETWORK, 1, pjclass=PJClass.TWO)
    assert await link.sources.get(PJClass.TWO) == (Sources.Mode.NETWORK, "1")
    assert await link.sources.resolution() == (1280, 720)
    assert await link.sources.recommended_resolution() == (1920, 1080)
    with pytest.raises(PJLinkERR2):
        await link.sources.set(Sources.Mode.VIDEO, 3)


async def test_aiopjlink_freeze_volume_mute_and_filter(projector: ProjectorSim,
                                                      clock: FakeClock) -> None:
    link = aio(projector)
    with pytest.raises(PJLinkERR3):
        await link.freeze.set(True)
    await link.power.turn_on()
    clock.advance(20 + 5 * 3600)
    await link.freeze.set(True)
    assert await link.freeze.get() is True
    await link.freeze.set(False)
    assert await link.freeze.get() is False
    before = projector.model.speaker_volume
    await link.speaker.turn_up()
    await link.speaker.turn_up()
    await link.microphone.turn_down()
    assert projector.model.speaker_volume == before + 2
    await link.mute.set(video=False, audio=True)
    assert await link.mute.status() == (False, True)
    assert await link.filter.hours() == 5
    assert await link.lamps.hours() == 5


async def test_aiopjlink_errors_and_err4(projector: ProjectorSim) -> None:
    projector.inject_error("cover", 2)
    projector.inject_error("fan", 1)
    link = aio(projector)
    errors = await link.errors.query()
    assert errors[AioErrors.Category.COVER] is AioErrors.Level.ERROR
    assert errors[AioErrors.Category.FAN] is AioErrors.Level.WARN
    assert errors[AioErrors.Category.LAMP] is AioErrors.Level.OK
    with pytest.raises(PJLinkERR4):
        await link.power.turn_on()
    projector.clear_errors()
    await link.power.turn_on()
    assert projector.model.power is Power.WARMING


async def test_aiopjlink_wrong_or_missing_password(projector: ProjectorSim) -> None:
    with pytest.raises(PJLinkPassword):
        await aio(projector, "wrong").power.get()
    with pytest.raises(PJLinkPassword):
        await aio(projector, None).power.get()
    assert await aio(projector).power.get() is AioPower.State.OFF  # still serving afterwards


async def test_two_aiopjlink_controllers_at_once_are_served_one_session_at_a_time(
        projector: ProjectorSim) -> None:
    """Each command is its own connection; the second waits while the first is served."""
    a, b = aio(projector), aio(projector)

    async def ask(link: PJLink, n: int) -> list[str]:
        return [await link.info.serial_number() for _ in range(n)]

    results = await asyncio.wait_for(asyncio.gather(ask(a, 10), ask(b, 10)), 60)
    assert results == [["PB-0042"] * 10, ["PB-0042"] * 10]
