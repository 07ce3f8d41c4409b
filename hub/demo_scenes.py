"""The demo's two scenes, "Movie night" and "All off", built from the devices the hub found."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from .core import Hub
from .model import Access

log = logging.getLogger(__name__)

LIVING_ROOM = "Living room"
LOW_BRIGHTNESS = 10  # %: enough to find the popcorn


def _settable(device: Mapping[str, Any], name: str) -> bool:
    return any(e["name"] == name and e["access"] & Access.SET for e in device.get("exposes", ()))


def _is_light(d: Mapping[str, Any]) -> bool:
    return _settable(d, "on") and _settable(d, "brightness")


def _is_cover(d: Mapping[str, Any]) -> bool:
    return _settable(d, "position") and not _settable(d, "on")


def _is_projector(d: Mapping[str, Any]) -> bool:
    return _settable(d, "power") and _settable(d, "media_url")


def movie_night(devices: Iterable[Mapping[str, Any]], film: int | None) -> dict[str, Any]:
    """Living-room lights low, the blind closed, the projector on and (when there is a film) playing."""
    devices = [d for d in devices if not d.get("ignored")]
    states: dict[str, dict[str, Any]] = {}
    for d in devices:
        if d["room"] == LIVING_ROOM and _is_light(d):
            states[d["id"]] = {"on": True, "brightness": LOW_BRIGHTNESS}
    covers = [d for d in devices if _is_cover(d)]
    # the living room's blind; a house without one closes the blinds it has
    for d in [c for c in covers if c["room"] == LIVING_ROOM] or covers:
        states[d["id"]] = {"position": 0}
    projectors = sorted((d for d in devices if _is_projector(d)), key=lambda d: d["room"] != LIVING_ROOM)
    body: dict[str, Any] = {"name": "Movie night", "states": states}
    if projectors:
        states[projectors[0]["id"]] = {"power": True}
        if film is not None:
            body["play"] = {"media": film, "device": projectors[0]["id"]}
    return body


def all_off(devices: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Every light and plug off, the projector off."""
    states: dict[str, dict[str, Any]] = {}
    for d in devices:
        if d.get("ignored"):
            continue
        if _is_projector(d):
            states[d["id"]] = {"power": False}
        elif _settable(d, "on"):
            states[d["id"]] = {"on": False}
    return {"name": "All off", "states": states}


async def seed(hub: Hub, url: str, token: str, timeout: float = 60.0, quiet: float = 2.0) -> list[str]:
    """Create the demo's scenes through the API unless they exist; returns the names created.

    Waits (bounded) until the projector's player, a light and a blind are known and no new
    device has appeared for `quiet` seconds, then for the first film to sync, so "Movie night"
    can play it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def devices_known() -> bool:
        devs = [d.to_json() for d in hub.registry.devices.values()]
        return any(map(_is_projector, devs)) and any(map(_is_light, devs)) and any(map(_is_cover, devs))

    if not await hub.bus.wait_until(devices_known, timeout):
        log.warning("demo scenes: the projector, a light or a blind did not appear within %.0f s", timeout)
    await _quiet(hub, "device_added", quiet, max(0.0, deadline - loop.time()))
    created: list[str] = []
    async with aiohttp.ClientSession(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                     timeout=aiohttp.ClientTimeout(total=30)) as s:
        async with s.get("/api/scenes") as r:
            have = {scene["name"] for scene in await r.json()}
        async with s.get("/api/devices") as r:
            devices = await r.json()
        wanted = [] if "All off" in have else [all_off(devices)]
        if "Movie night" not in have:
            film = await _first_film(hub, s, timeout)
            wanted.append(movie_night(devices, film))
        for body in wanted:
            async with s.post("/api/scenes", json=body) as r:
                if r.status == 201:
                    created.append(body["name"])
                else:
                    log.warning("demo scene %r not created: %s", body["name"], await r.text())
    return created


async def _quiet(hub: Hub, event_type: str, quiet: float, timeout: float) -> None:
    """Until no `event_type` event has come for `quiet` seconds (at most `timeout`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with hub.bus.subscribe(maxsize=100_000) as sub:
        last = loop.time()
        while (now := loop.time()) < deadline and now - last < quiet:
            try:
                event = await asyncio.wait_for(sub.get(), min(quiet - (now - last), deadline - now))
            except asyncio.TimeoutError:
                continue
            if event.type == event_type:
                last = loop.time()


async def _first_film(hub: Hub, s: aiohttp.ClientSession, timeout: float) -> int | None:
    films: list[dict[str, Any]] = []

    async def look() -> None:
        nonlocal films
        async with s.get("/api/media", params={"kind": "video", "limit": "1"}) as r:
            films = (await r.json()).get("items", [])

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with hub.bus.subscribe(maxsize=100_000) as sub:  # each sync_progress event may have brought one
        await look()
        while not films and (left := deadline - loop.time()) > 0:
            try:
                event = await asyncio.wait_for(sub.get(), left)
            except asyncio.TimeoutError:
                break
            if event.type == "sync_progress":
                await look()
    return films[0]["id"] if films else None
