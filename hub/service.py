"""Run the hub and its web server until a signal; shared by `hub run` and `hub demo`."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from . import systemd
from .config import HubConfig
from .core import Hub
from .web.app import make_app

log = logging.getLogger(__name__)


@asynccontextmanager
async def running_hub(config: HubConfig, **hub_kwargs) -> AsyncIterator[tuple[Hub, str]]:
    """A started hub with its web server; yields (hub, base URL)."""
    hub = Hub(config, **hub_kwargs)
    await hub.start()
    runner = web.AppRunner(make_app(hub), access_log=None, handle_signals=False)
    try:
        await runner.setup()
        site = web.TCPSite(runner, config.http.host, config.http.port)
        await site.start()
        host = "127.0.0.1" if config.http.host in ("0.0.0.0", "") else config.http.host
        yield hub, f"http://{host}:{config.http.port}"
    finally:
        await runner.cleanup()
        await hub.stop()


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve(config: HubConfig) -> None:
    async with running_hub(config) as (hub, url):
        log.info("hub listening on %s (data in %s)", url, config.data_dir)
        systemd.notify("READY=1")
        dog = asyncio.get_running_loop().create_task(systemd.watchdog(lambda: True))
        try:
            await wait_for_signal()
        finally:
            systemd.notify("STOPPING=1")
            dog.cancel()
