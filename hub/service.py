"""Run the hub and its web server until a signal; shared by `hub run` and `hub demo`."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from aiohttp import web

from . import heap, systemd
from .config import HubConfig
from .core import Hub
from .media import MediaService
from .media.players import media_player, playing_media
from .web.app import make_app

log = logging.getLogger(__name__)


def media_service(hub: Hub) -> MediaService:
    """The hub's media feature: syncs while linked, plays on its projectors, keeps what they play."""
    return MediaService(hub.store, hub.config.data_dir, play=media_player(hub), in_use=playing_media(hub),
                        watch=True, on_progress=lambda progress: hub.bus.publish("sync_progress", **progress))


@asynccontextmanager
async def running_hub(config: HubConfig, **hub_kwargs) -> AsyncIterator[tuple[Hub, str]]:
    """A started hub with its media service and web server; yields (hub, base URL)."""
    hub = Hub(config, **hub_kwargs)
    async with AsyncExitStack() as stack:
        await hub.start()
        stack.push_async_callback(hub.stop)
        media = media_service(hub)
        await media.start()
        stack.push_async_callback(media.stop)
        runner = web.AppRunner(make_app(hub, media), access_log=None, handle_signals=False)
        stack.push_async_callback(runner.cleanup)
        await runner.setup()
        site = web.TCPSite(runner, config.http.host, config.http.port)
        await site.start()
        host = "127.0.0.1" if config.http.host in ("0.0.0.0", "") else config.http.host
        yield hub, f"http://{host}:{config.http.port}"


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
        heap.release_free_memory()  # start-up's garbage: ~1.3 MB of RSS at idle
        systemd.notify("READY=1")
        dog = asyncio.get_running_loop().create_task(systemd.watchdog(lambda: True))
        try:
            await wait_for_signal()
        finally:
            systemd.notify("STOPPING=1")
            dog.cancel()
