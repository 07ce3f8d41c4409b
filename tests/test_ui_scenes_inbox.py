"""The UI's scenes, inbox and device page against the API that `uiback` builds (scenes, inbox, ignored,
history, forget): "Movie night" made from the current state without running it, then run with a
result per device; a new device named and given a room from the inbox; rename, history and forget."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import expect

from tests.conftest import RunningHub, until
from tests.homie_peer import LIGHT, HomiePeer, advertise, loopback_zeroconf
from tests.ui_support import assert_accessible, browser, console_errors, household, open_page, screenshots  # noqa: F401

pytestmark = pytest.mark.browser


async def api_get(running: RunningHub, path: str) -> tuple[int, object]:
    async with aiohttp.ClientSession(headers=running.headers) as s:
        async with s.get(f"{running.url}{path}") as r:
            return r.status, (await r.json() if r.status == 200 else None)


def value(running: RunningHub, device: str, prop: str):
    return running.hub.registry.get(device).state.values.get(prop)


async def test_movie_night_from_the_current_state_then_run_with_a_result_per_device(
        running: RunningHub, browser, tmp_path: Path) -> None:  # noqa: F811
    async with household(running, tmp_path) as home:
        page = await open_page(browser, running, f"#/device/{home.projector_id}")
        errors = console_errors(page)
        # set the evening up by hand: projector on, reading lamp on and dim, the ceiling light off
        await page.get_by_role("switch", name="Pico Projector: Power").click()
        await until(running.hub, lambda: value(running, home.projector_id, "power_state") == "on", 20, "projector on")
        await page.evaluate("location.hash = '#/device/living-room-lamp'")
        await page.get_by_role("switch", name="Reading lamp: Power").click()
        await until(running.hub, lambda: value(running, "living-room-lamp", "on") is True, 10, "lamp on")
        before = {d: dict(running.hub.registry.get(d).state.values)
                  for d in ("living-room-lamp", "living-room-ceiling", "bedroom-blind", home.projector_id)}

        # capture it as "Movie night": nothing in the house moves
        await page.get_by_role("link", name="Scenes").click()
        await page.get_by_label("Scene name").fill("Movie night")
        for name in ("Reading lamp", "Living room ceiling light", "Bedroom blind", "Pico Projector"):
            await page.get_by_role("checkbox", name=name).check()
        await page.get_by_role("button", name="Save scene").click()
        scene = page.get_by_role("article", name="Movie night")
        await expect(scene.get_by_role("listitem").filter(has_text="Reading lamp:")).to_contain_text("power on")
        status, scenes = await api_get(running, "/api/scenes")
        assert status == 200 and [s["name"] for s in scenes] == ["Movie night"]
        assert scenes[0]["states"]["living-room-lamp"]["on"] is True
        for d, was in before.items():
            now = running.hub.registry.get(d).state.values
            assert {k: now.get(k) for k in scenes[0]["states"][d]} == {k: was.get(k) for k in scenes[0]["states"][d]}

        # change a light, then one tap: every device confirms and the lamp is back on
        await page.evaluate("location.hash = '#/device/living-room-lamp'")
        await page.get_by_role("switch", name="Reading lamp: Power").click()
        await until(running.hub, lambda: value(running, "living-room-lamp", "on") is False, 10, "lamp off")
        await page.get_by_role("link", name="Scenes").click()
        await page.get_by_role("button", name="Run Movie night").click()
        results = page.get_by_role("list", name="Movie night results")
        await expect(results.get_by_role("listitem")).to_have_count(4, timeout=30000)
        for item in await results.get_by_role("listitem").all():
            await expect(item).to_contain_text("Confirmed")
        assert value(running, "living-room-lamp", "on") is True
        await assert_accessible(page, "scenes with a run's results")

        # editing opens a form, not the devices: change the name and save, nothing runs
        await page.get_by_role("button", name="Edit Movie night").click()
        dialog = page.get_by_role("dialog")
        await dialog.get_by_label("Name", exact=True).fill("Film night")
        await dialog.get_by_role("switch", name="Scene Reading lamp: Power").click()
        await assert_accessible(page, "scene editor")
        await dialog.get_by_role("button", name="Save scene").click()
        await expect(page.get_by_role("article", name="Film night").get_by_role("listitem").filter(
            has_text="Reading lamp:")).to_contain_text("power off")
        assert value(running, "living-room-lamp", "on") is True
        assert errors == []


@pytest.mark.inbox
async def test_a_new_device_waits_in_the_inbox_until_named_and_placed(running: RunningHub, browser) -> None:  # noqa: F811
    aiozc = loopback_zeroconf()
    peers = [HomiePeer(running.broker.port, "garden-light", description={**LIGHT, "name": "Garden light"}),
             HomiePeer(running.broker.port, "neighbours-lamp", description={**LIGHT, "name": "Neighbour's lamp"})]
    for p in peers:
        await p.start()
        await advertise(aiozc, p.id, room="")  # no room: the household says where it is
    try:
        await until(running.hub, lambda: all((d := running.hub.registry.get(p.id)) and d.state.online for p in peers),
                    15, "new devices online")
        page = await open_page(browser, running)
        errors = console_errors(page)
        inbox = page.get_by_role("region", name=re.compile("^New devices"))
        await expect(inbox.get_by_role("form")).to_have_count(2)
        await assert_accessible(page, "home with the inbox")
        # not among the rooms until the household says where it is
        await expect(page.get_by_role("article", name="Garden light")).to_have_count(0)

        new = inbox.get_by_role("form", name="New device Garden light")
        await new.get_by_label("Name").fill("Garden lantern")
        await new.get_by_label("Room").fill("Garden")
        await new.get_by_role("button", name="Add to home").click()
        card = page.get_by_role("region", name="Garden").get_by_role("article", name="Garden lantern")
        await expect(card).to_be_visible()
        await expect(page.get_by_role("switch", name="Garden lantern: Power")).to_be_visible()
        status, dev = await api_get(running, "/api/devices/garden-light")
        assert status == 200 and (dev["name"], dev["room"], dev["inbox"]) == ("Garden lantern", "Garden", False)

        other = inbox.get_by_role("form", name="New device Neighbour's lamp")
        await other.get_by_role("button", name="Ignore").click()
        await expect(inbox).to_be_hidden()
        await expect(page.get_by_text("Ignored devices (1)")).to_be_visible()
        status, dev = await api_get(running, "/api/devices/neighbours-lamp")
        assert dev["ignored"] is True
        assert errors == []
    finally:
        for p in peers:
            await p.stop()
        await aiozc.async_close()


async def test_device_page_history_rename_details_and_forget(running: RunningHub, browser, tmp_path: Path) -> None:  # noqa: F811
    async with household(running, tmp_path) as home:
        page = await open_page(browser, running, "#/device/bedroom-climate")
        errors = console_errors(page)
        chart = page.get_by_role("img", name=re.compile(r"^Temperature over the last 24 hours: from .* °C"))
        await expect(chart).to_be_visible(timeout=15000)
        await expect(page.get_by_text(re.compile(r"^online · last seen (just now|\d+ min ago)$"))).to_be_visible()

        # (by role: hidden views may hold other "Name" fields, the inbox's)
        await page.get_by_role("textbox", name="Name", exact=True).fill("Guest room climate")
        await page.get_by_role("combobox", name="Room", exact=True).fill("Guest room")
        await page.get_by_role("button", name="Save", exact=True).click()
        await expect(page.get_by_role("heading", level=2, name="Guest room climate")).to_be_visible()
        status, dev = await api_get(running, "/api/devices/bedroom-climate")
        assert (dev["name"], dev["room"]) == ("Guest room climate", "Guest room")

        # the projector's diagnostics wait under Details; its plumbing is nowhere
        await page.evaluate(f"location.hash = '#/device/{home.projector_id}'")
        await page.get_by_text("Details").click()
        await expect(page.get_by_text("Error lamp")).to_be_visible()
        await expect(page.get_by_text("Media verified sha-256")).to_have_count(0)
        await assert_accessible(page, "projector page with details open")

        # forget a lamp that was given away (unplugged, no longer announced): gone from the page and the API
        aiozc = loopback_zeroconf()
        old = HomiePeer(running.broker.port, "old-lamp", description={**LIGHT, "name": "Old lamp"})
        await old.start()
        info = await advertise(aiozc, "old-lamp", room="Attic")
        try:
            await until(running.hub, lambda: (d := running.hub.registry.get("old-lamp")) is not None and d.state.online,
                        15, "old lamp online")
            await old.stop()
            await aiozc.async_unregister_service(info)
            await until(running.hub, lambda: not running.hub.registry.get("old-lamp").state.online, 15, "old lamp gone")
        finally:
            await aiozc.async_close()
        await page.evaluate("location.hash = '#/device/old-lamp'")
        await expect(page.get_by_role("heading", level=2, name="Old lamp")).to_be_visible()
        page.once("dialog", lambda d: d.accept())
        await page.get_by_role("button", name="Forget this device").click()
        await expect(page.get_by_role("region", name="Living room")).to_be_visible()  # back home
        await expect(page.get_by_role("region", name="Attic")).to_have_count(0)
        assert (await api_get(running, "/api/devices/old-lamp"))[0] == 404
        assert errors == []

        async def scenes_ready(p):
            await expect(p.get_by_role("heading", name="Scenes", level=2)).to_be_visible()
            await expect(p.get_by_text("No scenes yet.")).to_be_visible()

        await screenshots(browser, running, "#/scenes", "scenes-empty", scenes_ready)


async def test_a_scene_names_the_film_it_plays(running: RunningHub, browser, tmp_path: Path) -> None:  # noqa: F811
    async with household(running, tmp_path) as home:
        film = next(m for m in home.media.values() if m["kind"] == "video")
        async with aiohttp.ClientSession(running.url, headers=running.headers) as s:
            async with s.post("/api/scenes", json={"name": "Film", "states": {home.projector_id: {"power": True}},
                                                   "play": {"media": film["id"], "device": home.projector_id}}) as r:
                assert r.status == 201, await r.text()
        # straight to the scenes page: the library view was never opened on this page
        page = await open_page(browser, running, "#/scenes")
        await expect(page.get_by_text(f"then play {film['name']} on Pico Projector")).to_be_visible()
