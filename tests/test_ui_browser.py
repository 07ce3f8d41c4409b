"""The household page in a real browser (Debian chromium through Playwright), found by what a person or
a screen reader sees: roles and accessible names, not CSS classes."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import expect

from tests.conftest import RunningHub, until
from tests.homie_peer import HomiePeer, advertise, loopback_zeroconf
from tests.ui_support import (ARTIFACTS, assert_accessible, browser, console_errors, household,  # noqa: F401
                              open_page, screenshots)

pytestmark = pytest.mark.browser


async def test_rooms_devices_controls_and_live_updates(running: RunningHub, browser) -> None:  # noqa: F811
    aiozc = loopback_zeroconf()
    lamp = HomiePeer(running.broker.port, "lamp")
    await lamp.start()
    await advertise(aiozc, "lamp", room="Living room")
    desc = {"homie": "5.0", "version": 1, "name": "Hall sensor", "nodes": {"s": {"properties": {
        "temperature": {"datatype": "float", "unit": "°C"}}}}}
    sensor = HomiePeer(running.broker.port, "hall-sensor", description=desc)
    await sensor.start(values={"s/temperature": "19.5"})
    await advertise(aiozc, "hall-sensor", room="Hallway")
    try:
        await until(running.hub, lambda: all((d := running.hub.registry.get(i)) and d.state.online
                                            for i in ("lamp", "hall-sensor")), 15, "devices online")
        page = await open_page(browser, running)
        errors = console_errors(page)
        await expect(page.get_by_role("heading", level=2)).to_have_text(["Hallway", "Living room"])
        living = page.get_by_role("region", name="Living room")
        card = living.get_by_role("article", name="Test lamp")
        sensor_card = page.get_by_role("region", name="Hallway").get_by_role("article", name="Hall sensor")
        await expect(sensor_card).to_contain_text("19.5 °C")

        # the switch sends a command; it shows "on" once the device confirmed
        switch = page.get_by_role("switch", name="Test lamp: Power")
        await expect(switch).to_have_attribute("aria-checked", "false")
        await switch.click()
        assert await asyncio.wait_for(lamp.commands.get(), 10) == ("light/on", "true")
        await expect(switch).to_have_attribute("aria-checked", "true")

        # the slider says its value and unit, and sends when let go (keyboard: End = 100)
        slider = page.get_by_role("slider", name="Test lamp: Brightness")
        await slider.focus()
        await slider.press("Home")
        assert await asyncio.wait_for(lamp.commands.get(), 10) == ("light/brightness", "0")
        await expect(slider).to_have_attribute("aria-valuetext", "0 %")

        # a change made elsewhere (the device itself) shows up live
        await sensor.publish("s/temperature", "22.0")
        await expect(sensor_card).to_contain_text("22 °C")

        # unplugged: the card says so; back: live again, same name and room
        await lamp.stop()
        await expect(card).to_contain_text("offline")
        lamp2 = HomiePeer(running.broker.port, "lamp")
        await lamp2.start()
        await expect(card).not_to_contain_text("offline")
        await lamp2.stop()
        assert errors == []
    finally:
        await sensor.stop()
        await aiozc.async_close()


async def test_a_device_with_two_switches_gets_both_on_its_card(running: RunningHub, browser) -> None:  # noqa: F811
    """A two-channel relay (no `on`, no known kind): each settable property is a control, not a read-out."""
    desc = {"homie": "5.0", "version": 1, "name": "Two-channel relay", "nodes": {
        "relay1": {"properties": {"on": {"datatype": "boolean", "settable": True, "name": "Lamp"}}},
        "relay2": {"properties": {"on": {"datatype": "boolean", "settable": True, "name": "Heater"}}},
        "meter": {"properties": {"power": {"datatype": "float", "unit": "W"}}}}}
    relay = HomiePeer(running.broker.port, "relay", description=desc)  # on the broker only: no mDNS, no room
    await relay.start(values={"relay1/on": "false", "relay2/on": "false", "meter/power": "3.5"})
    try:
        await until(running.hub, lambda: (d := running.hub.registry.get("relay")) is not None and d.state.online,
                    15, "relay online")
        page = await open_page(browser, running)
        errors = console_errors(page)
        card = page.get_by_role("article", name="Two-channel relay")
        heater = card.get_by_role("switch", name="Two-channel relay: Heater")
        await expect(card.get_by_role("switch", name="Two-channel relay: Lamp")).to_have_attribute("aria-checked", "false")
        await expect(card).to_contain_text("3.5 W")
        await expect(page.get_by_text("1 device · 1 online")).to_be_visible()
        await heater.click()
        assert await asyncio.wait_for(relay.commands.get(), 10) == ("relay2/on", "true")
        await expect(heater).to_have_attribute("aria-checked", "true")
        assert errors == []

        async def ready(p) -> None:
            await expect(p.get_by_role("switch", name="Two-channel relay: Heater")).to_be_visible()
        await screenshots(browser, running, "#/", "home-two-relay", ready)  # 1280/390, light/dark, axe each
    finally:
        await relay.stop()


async def test_link_the_cloud_from_the_page_and_see_the_library(running: RunningHub, browser, tmp_path) -> None:  # noqa: F811
    from firmware_sim.cloud.testing import running_cloud

    library = tmp_path / "cloud"
    (library / "Photos").mkdir(parents=True)
    (library / "Photos" / "Beach.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 5000)
    async with running_cloud(library, interval=1) as cloud:
        page = await open_page(browser, running, "#/library")
        await page.get_by_label("Operator cloud").fill(cloud.url)
        await page.get_by_role("button", name="Link", exact=True).click()
        code = page.locator("#link-code strong")
        await expect(code).to_be_visible()
        # the household's phone: the verification page from the link, then Allow
        phone = await page.context.new_page()
        await phone.goto(await page.locator("#link-code a").get_attribute("href"))
        await phone.click("button[value=approve]")
        await expect(page.get_by_text(f"Linked to {cloud.url}")).to_be_visible(timeout=20000)
        await expect(page.get_by_role("heading", name="Beach.png")).to_be_visible(timeout=20000)
        # unlink: the link form comes back, the synced file stays
        await page.get_by_role("button", name="Unlink").click()
        await expect(page.get_by_label("Operator cloud")).to_be_visible()
        assert (running.hub.config.data_dir / "media" / "Photos" / "Beach.png").exists()


async def state(running: RunningHub, device: str) -> dict:
    async with aiohttp.ClientSession(headers=running.headers) as s:
        async with s.get(f"{running.url}/api/devices/{device}") as r:
            return (await r.json())["state"]


async def test_an_evening_at_home_lamp_blind_projector_and_a_film(running: RunningHub, browser, tmp_path: Path) -> None:  # noqa: F811
    async with household(running, tmp_path) as home:
        page = await open_page(browser, running)
        errors = console_errors(page)

        # the reading lamp: one switch, and the API says it is on
        lamp = page.get_by_role("switch", name="Reading lamp: Power")
        await lamp.click()
        await expect(lamp).to_have_attribute("aria-checked", "true")
        assert (await state(running, "living-room-lamp"))["on"] is True

        # the blind, by keyboard on its position slider: the hub confirms the new target
        blind = page.get_by_role("slider", name="Bedroom blind: Position")
        await blind.focus()
        await blind.press("End")
        await until(running.hub, lambda: running.hub.registry.get("bedroom-blind").state.values.get("position") == 100,
                    30, "the blind fully open")
        await expect(blind).to_have_attribute("aria-valuetext", "100 %")

        # the projector is a player, not a list of exposes: no media URL box, no six "Error …: ok" rows
        card = page.get_by_role("article", name="Pico Projector")
        await expect(card.get_by_role("switch", name="Pico Projector: Power")).to_be_visible()
        await expect(card.get_by_role("textbox")).to_have_count(0)
        await expect(card).not_to_contain_text("Error")
        await expect(card).not_to_contain_text("sha-256")

        # its warm-up is shown as such, then it is on
        power = card.get_by_role("switch", name="Pico Projector: Power")
        await power.click()
        await expect(card.get_by_role("status").filter(has_text="Warming up…")).to_be_visible()
        await expect(power).to_have_attribute("aria-disabled", "true")
        await expect(card.get_by_role("status").filter(has_text="On")).to_be_visible(timeout=15000)
        await expect(power).to_have_attribute("aria-checked", "true")

        # a light's swatch shows its warm white, not #ffffff
        swatch = page.get_by_role("article", name="Reading lamp").locator(".swatch")
        assert await swatch.evaluate("e => getComputedStyle(e).backgroundColor") != "rgb(255, 255, 255)"

        # the library: posters, kinds as filters, search; "Play" only where a projector plays it
        await page.get_by_role("link", name="Library").click()
        films = page.get_by_role("button", name="Films")
        await films.click()
        await expect(films).to_have_attribute("aria-pressed", "true")
        await expect(page.get_by_role("heading", level=3)).to_have_text(["Fractal zoom.mp4", "Holiday 2025.mp4"], timeout=10000)
        await page.get_by_role("button", name="Documents").click()
        await expect(page.get_by_role("heading", name="Warranty - projector.pdf")).to_be_visible()
        await expect(page.get_by_role("button", name=re.compile("^Play "))).to_have_count(0)
        await page.get_by_role("button", name="All").click()
        await page.get_by_role("searchbox", name="Search the library").fill("holiday")
        await expect(page.get_by_role("heading", level=3)).to_have_text(["Holiday 2025.mp4"])
        poster = page.get_by_role("listitem").filter(has_text="Holiday 2025.mp4").locator("img")
        await expect(poster).to_have_attribute("src", re.compile("^blob:"))

        # play it: the projector switches on (warming up), and "Now playing" advances
        await page.get_by_role("button", name="Play Holiday 2025.mp4 on Pico Projector").click()
        assert errors == []  # home and library; the device page's history needs the history API
        await page.get_by_role("link", name="Now playing").click()
        now = page.get_by_role("region", name="Now playing on Pico Projector")
        await expect(now).to_contain_text("Holiday 2025", timeout=20000)
        bar = now.get_by_role("progressbar")
        await until(running.hub, lambda: (running.hub.registry.get(home.projector_id).state.values.get("media_position") or 0) >= 1000,
                    20, "the film playing")
        await expect(bar).to_have_attribute("aria-valuetext", re.compile(r"^0:0[1-6] of 0:06$"))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "now-playing-desktop-light.png"), full_page=True)
        await now.get_by_role("button", name="Pause Pico Projector").click()
        await until(running.hub, lambda: running.hub.registry.get(home.projector_id).state.values.get("media_state")
                    in ("paused", "stopped"), 10, "paused (or already at the end)")
        # the player's plumbing is not a control here either; its diagnostics wait under Details
        await expect(page.get_by_role("textbox", name=re.compile("Media url"))).to_have_count(0)
        await expect(page.get_by_text("Lamp hours", exact=True).first).to_be_visible()


async def test_every_page_at_1280_and_390_light_and_dark(running: RunningHub, browser, tmp_path: Path) -> None:  # noqa: F811
    async with household(running, tmp_path) as home:
        async def home_ready(page):
            await expect(page.get_by_role("article", name="Pico Projector")).to_be_visible()

        async def library_ready(page):
            await expect(page.get_by_role("listitem").filter(has_text="Mandelbrot.png").locator("img")
                         ).to_have_attribute("src", re.compile("^blob:"))

        async def device_ready(page):
            await expect(page.get_by_role("heading", name="Pico Projector", level=2)).to_be_visible()

        async def sensor_ready(page):
            await expect(page.get_by_role("heading", name="Bedroom climate sensor", level=2)).to_be_visible()
            await expect(page.get_by_role("region", name="Controls").get_by_text("Temperature")).to_be_visible()

        async def scenes_ready(page):
            await expect(page.get_by_role("heading", name="Scenes", level=2)).to_be_visible()
            await expect(page.get_by_role("checkbox", name="Reading lamp")).to_be_visible()

        shots = []
        shots += await screenshots(browser, running, "#/", "home", home_ready)
        shots += await screenshots(browser, running, "#/library", "library", library_ready)
        shots += await screenshots(browser, running, f"#/device/{home.projector_id}", "projector", device_ready)
        shots += await screenshots(browser, running, "#/device/bedroom-climate", "sensor", sensor_ready)
        shots += await screenshots(browser, running, "#/scenes", "scenes", scenes_ready)
        assert all(p.stat().st_size > 10_000 for p in shots)
        assert len(shots) == 20 and all(p.parent == ARTIFACTS for p in shots)
