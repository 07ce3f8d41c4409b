"""Browser test helpers: Debian chromium through Playwright, axe-core, screenshots, and a whole household
(the default simulated house, the projector with its player, the operator cloud's library) on one hub."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, async_playwright
from rich.console import Console

from firmware_sim.cloud import media_seed
from firmware_sim.cloud.testing import running_cloud
from firmware_sim.homie.house import House, load_house
from firmware_sim.projector import ProjectorSim
from firmware_sim.projector.model import ProjectorConfig
from hub.broker import free_port
from hub.media.cli import cloud_link
from tests.conftest import RunningHub, until

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
# kept after the run for people to look at (gitignored); HUB_TEST_ARTIFACTS moves them
ARTIFACTS = Path(os.environ.get("HUB_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts")) / "ui"
SIZES = {"desktop": 1280, "phone": 390}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


def console_errors(page: Page) -> list[str]:
    """Errors the page logs from now on (a failed request is logged as one too)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return errors


_axe = Axe()


async def assert_accessible(page: Page, what: str) -> None:
    """axe-core on the page as it is: no serious or critical violation."""
    results = await _axe.run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{what}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}" for v in bad)


async def sign_in(page: Page, url: str, name: str, password: str) -> None:
    """Sign the page's browser context in (its session cookie), as the sign-in page would."""
    r = await page.context.request.post(f"{url}/api/auth/login", data={"name": name, "password": password},
                                        headers={"Origin": url})
    assert r.ok, await r.text()


async def open_page(browser: Browser, running: RunningHub, route: str = "#/", *, width: int = 1280,
                    scheme: str = "light") -> Page:
    """A fresh page, signed in as the test's owner, showing `route`."""
    ctx = await browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = await ctx.new_page()
    await sign_in(page, running.url, running.user, running.password)
    await page.goto(f"{running.url}/")
    await page.get_by_role("status").filter(has_text="live").wait_for()
    if route not in ("", "#/"):
        await page.evaluate("r => { location.hash = r; }", route)
    return page


async def screenshots(browser: Browser, running: RunningHub, route: str, name: str, ready) -> list[Path]:
    """The page at 1280 and 390 px, light and dark, checked by axe each time; returns the files."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    files = []
    for scheme in ("light", "dark"):
        for size, width in SIZES.items():
            page = await open_page(browser, running, route, width=width, scheme=scheme)
            await ready(page)
            path = ARTIFACTS / f"{name}-{size}-{scheme}.png"
            await page.screenshot(path=str(path), full_page=True)
            # nothing wider than the screen: no sideways scrolling on a phone
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} at {width}px scrolls sideways by {overflow}px"
            await assert_accessible(page, f"{name} {size} {scheme}")
            files.append(path)
            await page.context.close()
    return files


@dataclass
class Household:
    running: RunningHub
    house: House
    projector_id: str
    media: dict[str, dict]  # file name -> library item


def find_projector(running: RunningHub) -> str | None:
    for d in running.hub.registry.devices.values():
        if d.info.driver == "pjlink" and d.state.online and d.info.expose("media_state"):
            return d.id
    return None


@contextlib.asynccontextmanager
async def household(running: RunningHub, tmp_path: Path) -> AsyncIterator[Household]:
    """The demo's evening at home on a test hub: 13 house devices, the projector, a synced library."""
    library = tmp_path / "cloud"
    media_seed.seed(library)
    house = House(load_house(None), broker_url=running.broker.url, state_dir=tmp_path / "house", speed=20)
    projector = ProjectorSim(ProjectorConfig(name="Pico Projector", warmup=2.0, cooldown=0.5),
                             port=free_port(), udp_port=free_port(), notify_port=free_port(),
                             state_dir=tmp_path / "projector", mdns_interface="127.0.0.1",
                             broker=running.broker.url, room="Living room")
    async with running_cloud(library, auto_approve=True, interval=1) as cloud, \
            aiohttp.ClientSession(headers=running.headers) as s:
        await house.start()
        await projector.start()
        try:
            assert await cloud_link(running.hub.config.data_dir, cloud.url, console=Console(quiet=True)) == 0
            async with s.post(f"{running.url}/api/media/sync") as r:
                assert r.status == 202
            want = sum(1 for p in library.rglob("*") if p.is_file())
            items: list = []
            with running.hub.bus.subscribe() as sub:
                while True:
                    async with s.get(f"{running.url}/api/media?limit=500") as r:
                        items = (await r.json())["items"]
                    if len(items) >= want:
                        break
                    await sub.get()
            ids = {spec.id for spec in house.specs}
            await until(running.hub, lambda: all((d := running.hub.registry.get(i)) and d.state.online for i in ids)
                        and find_projector(running) is not None, 30, "house and projector online")
            yield Household(running, house, find_projector(running), {m["name"]: m for m in items})
        finally:
            await projector.stop()
            await house.stop()
