"""A film from the cloud, synced and verified, plays on the projector: the player fetches it from the
hub with HTTP Range through a signed URL and checks every byte it received."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import aiohttp
from rich.console import Console

from firmware_sim.cloud.testing import running_cloud
from firmware_sim.projector import ProjectorSim
from firmware_sim.projector.model import ProjectorConfig
from hub.broker import free_port
from hub.media.cli import cloud_link
from tests.conftest import RunningHub, until


async def test_cloud_film_plays_on_the_projector(running: RunningHub, tmp_path: Path) -> None:
    hub = running.hub
    library = tmp_path / "cloud"
    (library / "Films").mkdir(parents=True)
    film = os.urandom(3 * 1024 * 1024 + 17)  # not a whole number of blocks or chunks
    (library / "Films" / "Holiday.mp4").write_bytes(film)
    projector = ProjectorSim(ProjectorConfig(name="Lounge projector", warmup=0.2, cooldown=0.2),
                             port=free_port(), udp_port=free_port(), notify_port=free_port(),
                             state_dir=tmp_path / "sim", mdns_interface="127.0.0.1", broker=running.broker.url,
                             room="Lounge", player_speed=200)
    async with running_cloud(library, auto_approve=True, interval=1) as cloud, \
            aiohttp.ClientSession(headers=running.headers) as s:
        assert await cloud_link(hub.config.data_dir, cloud.url, console=Console(quiet=True)) == 0
        async with s.post(f"{running.url}/api/media/sync") as r:
            assert r.status == 202, await r.text()
        items: list = []

        async def listed() -> list:
            async with s.get(f"{running.url}/api/media") as r:
                return (await r.json())["items"]

        with hub.bus.subscribe() as sub:
            while not (items := await listed()):
                await sub.get()  # sync_progress events until the file is in the library
        media = items[0]
        assert media["path"] == "/Films/Holiday.mp4" and media["size"] == len(film)
        synced = hub.config.data_dir / "media" / "Films" / "Holiday.mp4"
        assert synced.read_bytes() == film

        await projector.start()
        try:
            def found() -> str | None:
                for d in hub.registry.devices.values():
                    if d.info.driver == "pjlink" and d.state.online and d.info.expose("media_url"):
                        return d.id
                return None

            await until(hub, lambda: found() is not None, 20, "projector with its player")
            device_id = found()
            assert hub.registry.get(device_id).room == "Lounge"
            async with s.post(f"{running.url}/api/media/{media['id']}/play", json={"device": device_id}) as r:
                assert r.status == 200, await r.text()
                body = await r.json()
            assert "/media/file/" in body["url"] and "sig=" in body["url"]
            assert body["result"]["power"] is True  # the projector was off: play switched it on
            want = hashlib.sha256(film).hexdigest()
            await until(hub, lambda: hub.registry.get(device_id).state.values.get("media_verified") == want,
                        30, "player verified the film")
            assert hub.registry.get(device_id).state.values.get("media_error", "") == ""

            # the signed URL is the only key: tampered or unsigned requests get nothing
            async with aiohttp.ClientSession() as anon:
                async with anon.get(body["url"].replace("sig=", "sig=0")) as r:
                    assert r.status == 403
                async with anon.get(f"{running.url}/media/file/{media['id']}") as r:
                    assert r.status == 403
                async with anon.get(body["url"], headers={"Range": "bytes=100-199"}) as r:
                    assert r.status == 206 and await r.read() == film[100:200]
            # playing on something that is not a projector is refused, naming the field
            async with s.post(f"{running.url}/api/media/{media['id']}/play", json={"device": "nope"}) as r:
                assert r.status == 404 and (await r.json())["field"] == "device"
        finally:
            await projector.stop()
