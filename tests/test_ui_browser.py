"""The household page in a real browser (Debian chromium through Playwright)."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from playwright.async_api import async_playwright, expect

from tests.conftest import RunningHub, until
from tests.homie_peer import HomiePeer, advertise, loopback_zeroconf

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


async def sign_in(page, url: str, name: str, password: str) -> None:
    """As a household member would: open the hub, get the sign-in page, sign in."""
    await page.goto(url)
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#conn")).to_have_text("live")


@pytest.fixture
async def page():
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = await browser.new_page()
        yield page
        await browser.close()


async def test_rooms_devices_controls_and_live_updates(running: RunningHub, page) -> None:
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
        await sign_in(page, running.url, running.user, running.password)
        await expect(page.locator("section.room h2")).to_have_text(["Hallway", "Living room"])
        card = page.locator('article.device[data-id="lamp"]')
        await expect(card.locator(".name")).to_have_text("Test lamp")
        await expect(page.locator('article.device[data-id="hall-sensor"] .row .value')).to_have_text("19.5 °C")

        # the switch sends a command; it shows "on" once the device confirmed
        switch = card.get_by_role("switch")
        await expect(switch).to_have_attribute("aria-checked", "false")
        await switch.click()
        assert await asyncio.wait_for(lamp.commands.get(), 10) == ("light/on", "true")
        await expect(switch).to_have_attribute("aria-checked", "true")

        # the slider, like a user letting go of it at 30
        await card.locator('input[type="range"]').evaluate(
            "el => { el.value = 30; el.dispatchEvent(new Event('change')); }")
        assert await asyncio.wait_for(lamp.commands.get(), 10) == ("light/brightness", "30")

        # a change made elsewhere (the device itself) shows up live
        await sensor.publish("s/temperature", "22.0")
        await expect(page.locator('article.device[data-id="hall-sensor"] .row .value')).to_have_text("22 °C")

        # unplugged: the card goes grey; back: live again, same name and room
        await lamp.stop()
        await expect(page.locator('article.device[data-id="lamp"]')).to_have_class("device offline")
        lamp2 = HomiePeer(running.broker.port, "lamp")
        await lamp2.start()
        await expect(page.locator('section.room[data-room="Living room"] article.device[data-id="lamp"]')
                     ).to_have_class("device")
        await lamp2.stop()
    finally:
        await sensor.stop()
        await aiozc.async_close()


async def test_link_the_cloud_from_the_page_and_see_the_library(running: RunningHub, page, tmp_path) -> None:
    from firmware_sim.cloud_testing import running_cloud

    library = tmp_path / "cloud"
    (library / "Photos").mkdir(parents=True)
    (library / "Photos" / "Beach.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 5000)
    async with running_cloud(library, interval=1) as cloud:
        await sign_in(page, running.url, running.user, running.password)
        await expect(page.locator("#link-form")).to_be_visible()
        await page.fill("#cloud-url", cloud.url)
        await page.click("#link-form button")
        code = page.locator("#link-code strong")
        await expect(code).to_be_visible()
        # the household's phone: the verification page from the link, then Allow
        phone = await page.context.browser.new_page()
        await phone.goto(await page.locator("#link-code a").get_attribute("href"))
        await phone.click("button[value=approve]")
        await expect(page.locator("#linked span")).to_have_text(f"Linked to {cloud.url}", timeout=20000)
        await expect(page.locator("#media-list tbody tr td").first).to_have_text("/Photos/Beach.png", timeout=20000)
        # unlink: the link form comes back, the synced file stays
        await page.click("#unlink")
        await expect(page.locator("#link-form")).to_be_visible()
        assert (running.hub.config.data_dir / "media" / "Photos" / "Beach.png").exists()
