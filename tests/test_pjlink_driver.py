"""The PJLink driver against pjlink-advance's emulator, with a recording DriverContext."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator

import pytest

from devices.pjlink import PJLinkDriver, device_id_for
from hub.commands import error_status
from hub.driver import Backoff, Claim, DeviceUnreachable, Discovered, load_drivers
from hub.model import Access, InvalidCommand, NotNow
from tests.pjlink_helpers import Emulator, RecordingContext

PASSWORD = "JBMIAProjectorLink"
MAC = "00:26:ab:00:00:01"  # the emulator's default
DEV = "projector-0026ab000001"


def pjlink_service(port: int, mac: str = MAC, name: str = "Living room projector") -> Discovered:
    return Discovered(
        service_type="_pjlink._tcp.local.", name=f"{name}._pjlink._tcp.local.",
        addresses=("127.0.0.1",), port=port, txt={"mac": mac, "serial": "X8JK0000001", "class": "2", "auth": "1"},
    )


def player_service(mac: str = MAC) -> Discovered:
    return Discovered(
        service_type="_homie._tcp.local.", name="Projector player._homie._tcp.local.",
        addresses=("127.0.0.1",), port=1883,
        txt={"txtvers": "1", "id": "projector-player", "topic": "homie/5/projector-player",
             "type": "media-player", "mac": mac},
    )


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    e = await Emulator(password=PASSWORD, transition_delay=0.3).start()
    try:
        yield e
    finally:
        await e.stop()


@pytest.fixture
def ctx() -> RecordingContext:
    return RecordingContext()


@pytest.fixture
async def driver(ctx: RecordingContext) -> AsyncIterator[PJLinkDriver]:
    d = PJLinkDriver(ctx.configure(PJLinkDriver, dict(passwords={MAC: PASSWORD}, notify_port=0, poll_interval=3600,
                     transition_poll=0.1, timeout=2, backoff=(0.05, 0.2))))
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


async def found(ctx: RecordingContext, driver: PJLinkDriver, emu: Emulator) -> None:
    svc = pjlink_service(emu.port)
    device_id = driver.identify(svc)
    assert device_id == DEV
    await driver.seen(device_id, svc)
    await ctx.wait_for(lambda: ctx.online.get(DEV) and ctx.devices.get(DEV) and ctx.devices[DEV].expose("input"))


def test_the_entry_point_is_registered() -> None:
    assert load_drivers()["pjlink"] is PJLinkDriver


def test_backoff_doubles_to_a_cap_with_jitter_and_resets() -> None:
    b = Backoff(1.0, 8.0, jitter=0)
    assert [b.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    b.reset()
    assert b.next() == 1.0
    spread = Backoff(10.0, 10.0, jitter=0.1, rng=random.Random(1))
    delays = [spread.next() for _ in range(200)]
    assert all(9.0 <= d <= 11.0 for d in delays) and max(delays) - min(delays) > 1.5  # a houseful spreads out


def test_identify_claims_only_projectors_and_their_player() -> None:
    d = PJLinkDriver(RecordingContext().configure(PJLinkDriver))
    assert d.identify(pjlink_service(4352, mac="00:26:AB:00:00:01")) == DEV
    assert d.identify(player_service("00-26-ab-00-00-01")) == Claim(DEV, "homie:projector-player")
    plain = Discovered("_homie._tcp.local.", "Lamp._homie._tcp.local.", ("127.0.0.1",), 1883,
                       {"id": "lamp", "type": "light"})
    assert d.identify(plain) is None
    assert d.identify(Discovered("_homie._tcp.local.", "x", (), 0, {"type": "media-player"})) is None
    with pytest.raises(ValueError, match="mac"):
        d.identify(Discovered("_pjlink._tcp.local.", "x", ("127.0.0.1",), 4352, {}))
    with pytest.raises(ValueError):
        d.identify(Discovered("_pjlink._tcp.local.", "x", ("127.0.0.1",), 4352, {"mac": "zz"}))
    assert device_id_for("00:26:AB:00:00:01") == DEV


async def test_found_by_mdns_with_the_right_exposes_and_identity(
    ctx: RecordingContext, driver: PJLinkDriver, emu: Emulator
) -> None:
    await found(ctx, driver, emu)
    info = ctx.devices[DEV]
    assert (info.name, info.manufacturer, info.model, info.driver) == ("EB-L735U", "EPSON", "EB-L735U", "pjlink")
    ex = {e.name: e for e in info.exposes}
    assert ex["input"].values == ("Computer", "HDMI1", "HDMI2", "LAN")  # named by INNM
    assert ex["power_state"].values == ("off", "warming", "on", "cooling")
    assert ex["volume"].values == ("up", "down") and ex["volume"].type == "action"
    for name in ("power", "input", "video_mute", "audio_mute", "freeze"):
        assert ex[name].access & Access.SET, name
    for name in ("power_state", "lamp_hours", "filter_hours"):
        assert not ex[name].access & Access.SET, name
    assert ex["lamp_hours"].unit == "h" and ex["filter_hours"].unit == "h"
    for part in ("fan", "lamp", "temperature", "cover", "filter", "other"):
        e = ex[f"error_{part}"]
        assert e.values == ("ok", "warning", "error") and e.category == "diagnostic"
    await ctx.wait_for(lambda: "filter_hours" in ctx.state.get(DEV, {}))
    s = ctx.state[DEV]
    assert s["power"] is False and s["power_state"] == "off"
    assert s["lamp_hours"] == 1200 and s["filter_hours"] == 300
    assert s["error_fan"] == "ok" and s["video_mute"] is False
    # Many commands, one session (the projector accepts one connection at a time).
    assert driver._projectors[DEV].client.connections_opened == 1


async def test_power_on_reports_target_then_warming_then_on(
    ctx: RecordingContext, driver: PJLinkDriver, emu: Emulator
) -> None:
    await found(ctx, driver, emu)
    mark = len(ctx.reports)
    await driver.send(DEV, {"power": True})
    await ctx.wait_for(lambda: ctx.state[DEV].get("power_state") == "on")
    events = [(k, v) for k, d, v in ctx.reports[mark:] if d == DEV and k in ("target", "state")]
    assert events[0] == ("target", {"power": True})
    states = [v["power_state"] for k, v in events if k == "state" and "power_state" in v]
    assert states == ["warming", "on"]
    assert ctx.state[DEV]["power"] is True
    assert (await emu.call("state"))["power"] == "on"
    await driver.send(DEV, {"power": False})
    await ctx.wait_for(lambda: ctx.state[DEV].get("power_state") == "off")
    assert ctx.state[DEV]["power"] is False


async def test_input_in_standby_is_a_clear_error_naming_the_field(
    ctx: RecordingContext, driver: PJLinkDriver, emu: Emulator
) -> None:
    await found(ctx, driver, emu)
    for field, value in (("input", "HDMI2"), ("video_mute", True)):
        with pytest.raises(NotNow) as err:
            await driver.send(DEV, {field: value})
        assert err.value.field == field and err.value.rule == "projector is in standby"
        # a valid value at the wrong time conflicts with the device's state: 409, naming the field
        assert error_status(err.value) == (409, {"field": field, "rule": "projector is in standby"})
    assert ctx.online[DEV] is True  # "not now" is not "offline"


async def test_commands_when_on(ctx: RecordingContext, driver: PJLinkDriver, emu: Emulator) -> None:
    await emu.call("power", value="on")
    await found(ctx, driver, emu)
    await driver.send(DEV, {"input": "HDMI2", "video_mute": True, "audio_mute": True, "freeze": True})
    assert {k: ctx.state[DEV][k] for k in ("input", "video_mute", "audio_mute", "freeze")} == {
        "input": "HDMI2", "video_mute": True, "audio_mute": True, "freeze": True}
    await driver.send(DEV, {"volume": "up"})
    st = await emu.call("state")
    assert (st["input"], st["video"], st["audio"], st["freeze"], st["speaker_volume"]) == ("32", True, True, True, 1)
    with pytest.raises(InvalidCommand) as err:
        await driver.send(DEV, {"input": "SCART"})
    assert err.value.field == "input"


async def test_unreachable_then_back_online_by_itself(
    ctx: RecordingContext, driver: PJLinkDriver, emu: Emulator
) -> None:
    await found(ctx, driver, emu)
    await emu.kill()
    with pytest.raises(DeviceUnreachable):
        await asyncio.wait_for(driver.send(DEV, {"power": True}), 2 + 2)
    assert ctx.online[DEV] is False
    await emu.start()  # same port; nobody asks the driver to retry
    await ctx.wait_for(lambda: ctx.online.get(DEV) is True, timeout=10)
    await driver.send(DEV, {"power": True})
    await ctx.wait_for(lambda: ctx.state[DEV].get("power_state") == "on")


async def test_wrong_password_is_offline_with_an_error(emu: Emulator) -> None:
    ctx = RecordingContext()
    d = PJLinkDriver(ctx.configure(PJLinkDriver, dict(passwords={DEV: "nope"}, notify_port=None, poll_interval=3600, backoff=(5, 5))))
    await d.start()
    try:
        await d.seen(DEV, pjlink_service(emu.port))
        await ctx.wait_for(lambda: ctx.errors)
        assert ctx.online[DEV] is False and "authentication" in ctx.errors[0][1]
    finally:
        await d.stop()


async def test_password_from_ctx_options_and_env(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for options, env in (({"passwords": {"0026AB000001": PASSWORD}}, None), ({}, PASSWORD)):
        if env:
            monkeypatch.setenv("HUB_PJLINK_PASSWORD", env)
        ctx = RecordingContext().configure(PJLinkDriver, {**options, "notify_port": None, "poll_interval": 3600})
        d = PJLinkDriver(ctx)
        await d.start()
        try:
            await d.seen(DEV, pjlink_service(emu.port))
            await ctx.wait_for(lambda: ctx.online.get(DEV))
        finally:
            await d.stop()


async def test_status_notifications_update_state_without_polling(
    ctx: RecordingContext, driver: PJLinkDriver, emu: Emulator
) -> None:
    await found(ctx, driver, emu)
    assert driver.udp is not None
    target = {"host": "127.0.0.1", "port": driver.udp.port}
    await emu.call("power", value="on")  # the projector changed by itself (remote control)
    await emu.call("notify", command="POWR", value="1", **target)
    await ctx.wait_for(lambda: ctx.state[DEV].get("power_state") == "on")
    await emu.call("notify", command="INPT", value="31", **target)
    await ctx.wait_for(lambda: ctx.state[DEV].get("input") == "HDMI1")
    await emu.call("notify", command="ERST", value="020000", **target)
    await ctx.wait_for(lambda: ctx.state[DEV].get("error_lamp") == "error")
    await emu.call("notify", command="POWR", value="9", **target)  # garbage: an error, not a crash
    await ctx.wait_for(lambda: ctx.errors)


async def test_found_by_class2_search(emu: Emulator) -> None:
    ctx = RecordingContext()
    d = PJLinkDriver(ctx.configure(PJLinkDriver, dict(passwords={MAC: PASSWORD}, search_address="127.0.0.1", port=emu.port,
                     notify_port=0, poll_interval=3600, search_interval=3600)))
    await d.start()
    try:
        await ctx.wait_for(lambda: ctx.online.get(DEV) and ctx.devices[DEV].expose("input"))
        assert ctx.devices[DEV].name == "EB-L735U"
    finally:
        await d.stop()


PLAYER_DESCRIPTION = {
    "homie": "5.0", "version": 1, "name": "Projector player", "type": "media-player",
    "nodes": {"player": {"name": "Player", "properties": {
        "url": {"datatype": "string", "settable": True},
        "state": {"datatype": "enum", "format": "idle,loading,playing,paused,stopped,error"},
        "command": {"datatype": "enum", "format": "play,pause,stop", "settable": True, "retained": False},
        "position": {"datatype": "integer", "unit": "ms"},
        "duration": {"datatype": "integer", "unit": "ms"},
        "volume": {"datatype": "integer", "format": "0:100", "settable": True},
        "error": {"datatype": "string"},
        "verified": {"datatype": "boolean"},
    }}},
}


async def test_media_player_merges_into_the_projector(
    ctx: RecordingContext, driver: PJLinkDriver, emu: Emulator
) -> None:
    await found(ctx, driver, emu)
    svc = player_service()
    assert driver.identify(svc) == Claim(DEV, "homie:projector-player")
    await driver.seen(DEV, svc)
    topic = "homie/5/projector-player"
    ctx.mqtt.inject(f"{topic}/player/state", "playing")  # before the description: kept for later
    ctx.mqtt.inject(f"{topic}/$description", json.dumps(PLAYER_DESCRIPTION))
    ctx.mqtt.inject(f"{topic}/player/position", "1500")
    await ctx.wait_for(lambda: ctx.devices[DEV].expose("media_url") and ctx.state[DEV].get("media_position") == 1500)
    info = ctx.devices[DEV]
    ex = {e.name: e for e in info.exposes}
    assert "power" in ex and "input" in ex  # still one projector
    assert ex["media_url"].type == "text" and ex["media_url"].access & Access.SET
    assert ex["media_state"].type == "enum" and "playing" in ex["media_state"].values
    assert ex["media_command"].type == "action" and ex["media_command"].values == ("play", "pause", "stop")
    assert ex["media_position"].unit == "ms" and ex["media_duration"].unit == "ms"
    assert (ex["media_volume"].min, ex["media_volume"].max) == (0, 100) and ex["media_volume"].access & Access.SET
    assert ctx.state[DEV]["media_state"] == "playing"
    # plumbing is categorised so a UI can hide it; the household's controls have no category
    assert (ex["media_url"].category, ex["media_verified"].category) == ("config", "config")
    assert ex["media_error"].category == "diagnostic"
    assert {ex[n].category for n in ("media_state", "media_command", "media_volume", "power")} == {None}
    assert ex["media_url"].to_json()["category"] == "config" and "category" not in ex["power"].to_json()
    await driver.send(DEV, {"media_url": "http://hub/m/1?sig=x", "media_command": "play", "media_volume": 40})
    assert ctx.mqtt.published == [
        (f"{topic}/player/url/set", "http://hub/m/1?sig=x"),
        (f"{topic}/player/command/set", "play"),
        (f"{topic}/player/volume/set", "40"),
    ]
    ctx.mqtt.inject(f"{topic}/player/volume", "140")  # out of range: an error, state untouched
    await ctx.wait_for(lambda: ctx.errors)
    assert "media_volume" not in ctx.state[DEV]


async def test_class1_projector_has_no_class2_exposes() -> None:
    emu = await Emulator(pj_class=1).start()  # no password either
    ctx = RecordingContext()
    d = PJLinkDriver(ctx.configure(PJLinkDriver, dict(notify_port=None, poll_interval=3600)))
    await d.start()
    try:
        await d.seen(DEV, pjlink_service(emu.port))
        await ctx.wait_for(lambda: ctx.online.get(DEV) and ctx.devices[DEV].expose("input"))
        names = {e.name for e in ctx.devices[DEV].exposes}
        assert not names & {"volume", "freeze", "filter_hours"}
        assert ctx.devices[DEV].expose("input").values == ("RGB 1", "DIGITAL 1", "DIGITAL 2", "NETWORK 1")
        await emu.call("power", value="on")
        await d.send(DEV, {"input": "DIGITAL 2"})
        st = await emu.call("state")
        assert st["input"] == "32"
        assert not [line for line in st["received"] if line.startswith("%2")]  # never Class 2 on Class 1
    finally:
        await d.stop()
        await emu.stop()


async def test_found_by_broadcast_search_inside_the_namespace() -> None:
    # The real-install path: %2SRCH to 255.255.255.255. Only safe because the tests run in a
    # namespace whose one interface is loopback (scripts/in-netns routes broadcast to lo), which is
    # also why this emulator binds 0.0.0.0: a socket bound to 127.0.0.1 never hears a broadcast.
    emu = await Emulator(password=PASSWORD, host="0.0.0.0").start()
    ctx = RecordingContext()
    d = PJLinkDriver(ctx.configure(PJLinkDriver, dict(passwords={MAC: PASSWORD}, search_address="255.255.255.255", port=emu.port,
                     notify_port=0, poll_interval=3600, search_interval=3600)))
    await d.start()
    try:
        await ctx.wait_for(lambda: ctx.online.get(DEV) and ctx.devices[DEV].expose("input"))
    finally:
        await d.stop()
        await emu.stop()
