"""Library thumbnails: a film's frame, a picture scaled down, a PDF's first page, made from the synced
files with ffmpeg and pdftoppm, cached, and 404 when nothing can be drawn."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import aiohttp
from rich.console import Console

from firmware_sim.cloud import media_seed
from firmware_sim.cloud.testing import running_cloud
from hub.media.cli import cloud_link
from tests.conftest import RunningHub


def jpeg_size(data: bytes, tmp: Path) -> tuple[int, int]:
    """Width and height as ffprobe (an independent reader) sees them."""
    f = tmp / "probe.jpg"
    f.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "json", str(f)],
                         capture_output=True, check=True, timeout=30).stdout
    s = json.loads(out)["streams"][0]
    return s["width"], s["height"]


async def test_thumbnails_of_films_pictures_and_documents(running: RunningHub, tmp_path: Path) -> None:
    library = tmp_path / "cloud"
    media_seed.seed(library)
    (library / "Documents" / "Broken.mp4").write_bytes(b"not a film at all" * 100)
    async with running_cloud(library, auto_approve=True, interval=1) as cloud, \
            aiohttp.ClientSession(headers=running.headers) as s:
        assert await cloud_link(running.hub.config.data_dir, cloud.url, console=Console(quiet=True)) == 0
        async with s.post(f"{running.url}/api/media/sync") as r:
            assert r.status == 202
        want = len([p for p in library.rglob("*") if p.is_file()])

        async def listed() -> list:
            async with s.get(f"{running.url}/api/media?limit=500") as r:
                return (await r.json())["items"]

        with running.hub.bus.subscribe() as sub:
            while len(items := await listed()) < want:
                await sub.get()
        by_name = {m["name"]: m for m in items}

        async def thumb(name: str) -> tuple[int, bytes]:
            async with s.get(f"{running.url}/api/media/{by_name[name]['id']}/thumb") as r:
                return r.status, await r.read()

        for name in ("Fractal zoom.mp4", "Mandelbrot.png", "Warranty - projector.pdf"):
            assert by_name[name]["thumb"] == f"/api/media/{by_name[name]['id']}/thumb"
            status, body = await thumb(name)
            assert status == 200, name
            assert body[:3] == b"\xff\xd8\xff", f"{name}: not a JPEG"
            width, height = jpeg_size(body, tmp_path)
            assert width <= 320 and height > 0, (name, width, height)
        # a film keeps its shape (640x360 → 320x180)
        assert jpeg_size((await thumb("Fractal zoom.mp4"))[1], tmp_path) == (320, 180)
        # cached on disk, and the same bytes the second time
        first = (await thumb("Mandelbrot.png"))[1]
        assert (await thumb("Mandelbrot.png"))[1] == first
        # asked for twice at once (a page and its reload): drawn once, both answered
        (a_status, a), (b_status, b) = await asyncio.gather(thumb("Holiday 2025.mp4"), thumb("Holiday 2025.mp4"))
        assert a_status == b_status == 200 and a == b
        assert len(list((running.hub.config.data_dir / "thumbs").glob("*.jpg"))) == 4

        # music has nothing to draw; a broken "film" can't be drawn: both 404, and the list says so first
        assert by_name["Chime.wav"]["thumb"] is None
        assert (await thumb("Chime.wav"))[0] == 404
        assert (await thumb("Broken.mp4"))[0] == 404
        assert (await thumb("Broken.mp4"))[0] == 404  # remembered, not retried
        async with s.get(f"{running.url}/api/media/99999/thumb") as r:
            assert r.status == 404
    # like every /api route, it needs a login
    async with aiohttp.ClientSession() as anon:
        async with anon.get(f"{running.url}/api/media/{by_name['Mandelbrot.png']['id']}/thumb") as r:
            assert r.status == 401
