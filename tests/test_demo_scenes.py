"""The demo's scenes: "Movie night" dims the living room, closes the blind and plays a synced film;
"All off" switches off every light, plug and the projector."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console

from firmware_sim.cloud.testing import running_cloud
from firmware_sim.homie.house import House, parse_house
from firmware_sim.projector import ProjectorSim
from firmware_sim.projector.model import ProjectorConfig
from hub import demo_scenes
from hub.broker import free_port
from hub.media.cli import cloud_link
from tests.conftest import RunningHub, until


def _device(device_id: str, room: str, *settable: str, ignored: bool = False) -> dict[str, Any]:
    return {"id": device_id, "room": room, "ignored": ignored,
            "exposes": [{"name": n, "access": 3} for n in settable] + [{"name": "power_w", "access": 1}]}


HOUSE_JSON = [
    _device("ceiling", "Living room", "on", "brightness", "color"),
    _device("lamp", "Living room", "on", "brightness"),
    _device("bedroom-light", "Bedroom", "on", "brightness"),
    _device("kettle", "Kitchen", "on"),
    _device("blind", "Bedroom", "position"),
    _device("thermostat", "Living room", "target_temperature", "mode"),
    _device("projector", "Living room", "power", "input", "media_url"),
    _device("neighbours-plug", "", "on", ignored=True),
]


def test_movie_night_and_all_off_from_the_devices() -> None:
    night = demo_scenes.movie_night(HOUSE_JSON, film=7)
    assert night == {"name": "Movie night", "states": {
        "ceiling": {"on": True, "brightness": 10}, "lamp": {"on": True, "brightness": 10},
        "blind": {"position": 0},  # no blind in the living room: the house's blinds close
        "projector": {"power": True}}, "play": {"media": 7, "device": "projector"}}
    assert "play" not in demo_scenes.movie_night(HOUSE_JSON, film=None)
    assert demo_scenes.all_off(HOUSE_JSON)["states"] == {
        "ceiling": {"on": False}, "lamp": {"on": False}, "bedroom-light": {"on": False},
        "kettle": {"on": False}, "projector": {"power": False}}


HOUSE = """
[[device]]
id = "lounge-ceiling"
name = "Ceiling light"
type = "light"
room = "Living room"

[[device]]
id = "lounge-blind"
name = "Blind"
type = "cover"
room = "Living room"
params = { speed = 200.0 }

[[device]]
id = "desk-plug"
name = "Desk plug"
type = "plug"
room = "Office"
"""


async def test_seeded_movie_night_plays_the_synced_film(running: RunningHub, tmp_path: Path) -> None:
    hub = running.hub
    library = tmp_path / "cloud"
    (library / "Films").mkdir(parents=True)
    film = os.urandom(256 * 1024 + 3)
    (library / "Films" / "Big night.mp4").write_bytes(film)
    house = House(parse_house(HOUSE), broker_url=running.broker.url, state_dir=tmp_path / "sim", speed=20)
    projector = ProjectorSim(ProjectorConfig(name="Lounge projector", warmup=0.2, cooldown=0.2),
                             port=free_port(), udp_port=free_port(), notify_port=free_port(),
                             state_dir=tmp_path / "sim", mdns_interface="127.0.0.1", broker=running.broker.url,
                             room="Living room", player_speed=200)
    async with running_cloud(library, auto_approve=True, interval=1) as cloud, \
            aiohttp.ClientSession(headers=running.headers) as s:
        assert await cloud_link(hub.config.data_dir, cloud.url, console=Console(quiet=True)) == 0
        async with s.post(f"{running.url}/api/media/sync") as r:
            assert r.status == 202, await r.text()
        await house.start()
        await projector.start()
        try:
            created = await demo_scenes.seed(hub, running.url, running.token, timeout=30, quiet=0.5)
            assert sorted(created) == ["All off", "Movie night"]
            assert await demo_scenes.seed(hub, running.url, running.token, timeout=5, quiet=0.1) == []  # only if absent
            async with s.get(f"{running.url}/api/scenes/movie-night") as r:
                night = await r.json()
            projector_id = night["play"]["device"]
            assert hub.registry.get(projector_id).info.driver == "pjlink"
            assert night["states"] == {"lounge-ceiling": {"on": True, "brightness": 10},
                                       "lounge-blind": {"position": 0}, projector_id: {"power": True}}

            async with s.post(f"{running.url}/api/scenes/movie-night/run") as r:
                assert r.status == 200, await r.text()
                result = await r.json()
            assert {d: x["status"] for d, x in result["results"].items()} == {
                "lounge-ceiling": "confirmed", "lounge-blind": "confirmed", projector_id: "confirmed"}, result
            want = hashlib.sha256(film).hexdigest()
            await until(hub, lambda: hub.registry.get(projector_id).state.values.get("media_verified") == want,
                        30, "the projector played the film")

            # a projector refuses to switch off while it warms up (PJLink ERR3): wait until it is on
            await until(hub, lambda: hub.registry.get(projector_id).state.values.get("power_state") == "on",
                        15, "the projector warmed up")
            async with s.post(f"{running.url}/api/scenes/all-off/run") as r:
                result = await r.json()
            assert {d: x["status"] for d, x in result["results"].items()} == {
                "lounge-ceiling": "confirmed", "desk-plug": "confirmed", projector_id: "confirmed"}, result
            assert hub.registry.get(projector_id).state.values["power"] is False
        finally:
            await projector.stop()
            await house.stop()
