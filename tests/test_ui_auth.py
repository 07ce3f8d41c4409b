"""Signing in as a household does, in a real browser (Debian chromium through Playwright)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import expect

from hub.broker import Broker
from hub.service import running_hub
from tests.conftest import hub_config, until
from tests.homie_peer import HomiePeer, advertise, loopback_zeroconf
from tests.test_ui_browser import page, sign_in  # noqa: F401 - the page fixture

pytestmark = pytest.mark.browser


@pytest.fixture
async def new_hub(tmp_path: Path, broker: Broker) -> AsyncIterator[tuple[object, str]]:
    """A hub as just installed: no accounts, a lamp on the network."""
    async with running_hub(hub_config(tmp_path, broker)) as (hub, url):
        await hub.mqtt.wait_connected(10)
        yield hub, url


async def test_set_up_sign_in_toggle_sign_out_and_a_member_sees_no_user_management(
        new_hub, broker: Broker, page) -> None:  # noqa: F811
    hub, url = new_hub
    aiozc = loopback_zeroconf()
    lamp = HomiePeer(broker.port, "lamp")
    await lamp.start()
    await advertise(aiozc, "lamp", room="Living room")
    try:
        await until(hub, lambda: (d := hub.registry.get("lamp")) is not None and d.state.online, 15, "lamp online")

        # a new hub greets its household with the set-up page
        await page.goto(url)
        await expect(page).to_have_url(f"{url}/setup")
        await page.get_by_label("Name").fill("Ann")
        await page.get_by_label("Password", exact=True).fill("ann's long password")
        await page.get_by_label("Password again").fill("ann's long password")
        await page.get_by_role("button", name="Create owner and sign in").click()
        await expect(page.locator("#conn")).to_have_text("live")

        # signed in: the lamp answers the switch, and the API sees it on
        switch = page.locator('article.device[data-id="lamp"]').get_by_role("switch")
        await switch.click()
        assert await asyncio.wait_for(lamp.commands.get(), 10) == ("light/on", "true")
        await expect(switch).to_have_attribute("aria-checked", "true")
        assert hub.registry.get("lamp").state.values["on"] is True

        # the owner adds a member from the account page
        await page.get_by_role("link", name="Account").click()
        await expect(page.get_by_role("heading", name="Household")).to_be_visible()
        await page.get_by_label("New member's name").fill("Kid")
        await page.get_by_label("Their password").fill("kid's long password")
        await page.get_by_role("button", name="Add").click()
        await expect(page.get_by_role("status").filter(has_text="Added Kid")).to_be_visible()

        # sign out: the page asks for a sign-in again, and the old cookie is dead
        await page.get_by_role("button", name="Sign out", exact=True).click()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await page.goto(url)
        await expect(page).to_have_url(f"{url}/login")

        # wrong password: said plainly, still on the sign-in page
        await page.get_by_label("Name").fill("Kid")
        await page.get_by_label("Password", exact=True).fill("not it at all")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_have_text("wrong name or password")

        # a member signs in; the account page has no household management, and the API agrees
        await page.get_by_label("Password", exact=True).fill("kid's long password")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#conn")).to_have_text("live")
        await page.goto(f"{url}/account")
        await expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
        await expect(page.get_by_role("heading", name="Household")).to_be_hidden()
        status = await page.evaluate("fetch('/api/users').then(r => r.status)")
        assert status == 403

        # the member's signed-in devices are listed, and one can be signed out from here
        await expect(page.locator("#sessions tbody tr")).to_have_count(1)
        await expect(page.locator("#sessions tbody tr td").first).to_contain_text("Chrome on Linux — this browser")
    finally:
        await lamp.stop()
        await aiozc.async_close()


async def test_tokens_are_made_and_revoked_from_the_account_page(running, page) -> None:  # noqa: F811
    await sign_in(page, running.url, running.user, running.password)
    await page.goto(f"{running.url}/account")
    await page.get_by_label("New token's name").fill("Hall tablet")
    await page.get_by_label("Access").select_option("read")
    await page.get_by_role("button", name="Create token").click()
    token = await page.locator("code.secret").text_content()
    assert token and token.startswith("hub_")
    async with aiohttp.ClientSession(running.url, headers={"Authorization": f"Bearer {token}"}) as s:
        async with s.get("/api/devices") as r:
            assert r.status == 200
        await page.get_by_role("button", name="Revoke token Hall tablet").click()
        await expect(page.locator("#tokens tbody")).not_to_contain_text("Hall tablet")
        async with s.get("/api/devices") as r:
            assert r.status == 401
