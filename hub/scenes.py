"""Scenes: named device states (and a film to play), saved in SQLite, run device by device."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from .commands import CommandTimeout, DeviceNotFound, DeviceOffline
from .core import Hub
from .driver import BrokerUnavailable, DeviceTimeout, DeviceUnreachable
from .model import Access, Action, InvalidCommand, validate_command
from .registry import Device
from .tasks import Tasks, logged
from .topics import dumps

log = logging.getLogger(__name__)

MAX_MQTT_RUNS = 16  # runs asked for over MQTT at once; more are dropped (and logged), never queued
SCENE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MediaUrl = Callable[[int, "str | None"], Awaitable[str]]  # (media id, base URL) -> signed URL
MediaExists = Callable[[int], Awaitable[bool]]


class InvalidScene(ValueError):
    """A scene that can't be saved (422); names the field, and the device when one is at fault."""

    def __init__(self, field: str, rule: str, device: str | None = None) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
        self.device = device


class SceneNotFound(LookupError):
    """No scene with that id (404)."""


@dataclass(frozen=True)
class Play:
    """Play this film (a media library id) on this projector."""

    media: int
    device: str


@dataclass(frozen=True)
class Scene:
    id: str
    name: str
    states: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    play: Play | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "states": {d: dict(s) for d, s in self.states.items()},
                "play": {"media": self.play.media, "device": self.play.device} if self.play else None}


# -- pure parts -----------------------------------------------------------------------------------


def slugify(name: str) -> str:
    """A scene id from its name: "Movie night" -> "movie-night" (ASCII, fits an MQTT topic level)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48].rstrip("-")
    return slug or "scene"


def unique_id(name: str, taken: Iterable[str]) -> str:
    taken = set(taken)
    base = slugify(name)
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def validate_states(devices: Mapping[str, Device], states: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each device's partial state checked against its exposes; normalised, or InvalidScene."""
    out: dict[str, dict[str, Any]] = {}
    for device_id, partial in states.items():
        dev = devices.get(device_id)
        if dev is None:
            raise InvalidScene(f"states.{device_id}", "unknown device", device_id)
        try:
            out[device_id] = validate_command(dev.info.exposes, partial)
        except InvalidCommand as e:
            where = f"states.{device_id}" if e.field == "body" else f"states.{device_id}.{e.field}"
            raise InvalidScene(where, e.rule, device_id) from None
    return out


def capture(dev: Device) -> dict[str, Any]:
    """The settable state a device has now: what a scene needs to bring it back.

    Actions have no state, and `config` exposes are the hub's plumbing (a media URL), not a look.
    """
    out: dict[str, Any] = {}
    for e in dev.info.exposes:
        if not e.access & Access.SET or isinstance(e, Action) or e.category == "config":
            continue
        if e.name in dev.state.values:
            try:
                out[e.name] = e.validate(dev.state.values[e.name])
            except InvalidCommand:
                log.debug("%s: %s is %r, not capturable", dev.id, e.name, dev.state.values[e.name])
    return out


def outcome(error: BaseException | None, state: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One device's result in a scene run."""
    if error is None:
        return {"status": "confirmed", "state": dict(state or {})}
    if isinstance(error, (CommandTimeout, DeviceTimeout)):
        return {"status": "not_confirmed", "error": str(error)}
    if isinstance(error, (DeviceOffline, DeviceUnreachable)):
        return {"status": "offline", "error": str(error)}
    if isinstance(error, DeviceNotFound):
        return {"status": "error", "error": f"no device {error} (forgotten since the scene was saved?)"}
    if isinstance(error, (InvalidCommand, BrokerUnavailable, LookupError)):
        return {"status": "error", "error": str(error) or type(error).__name__}
    log.error("scene: unexpected error: %r", error, exc_info=error)
    return {"status": "error", "error": "internal error"}


def _encode(scene: Scene) -> dict[str, Any]:
    d = scene.to_json()
    return {"id": scene.id, "name": scene.name, "states": json.dumps(d["states"]), "play": json.dumps(d["play"])}


def _decode(row: Mapping[str, Any]) -> Scene:
    play = json.loads(row["play"] or "null")
    return Scene(row["id"], row["name"], json.loads(row["states"] or "{}"),
                 Play(int(play["media"]), str(play["device"])) if play else None)


# -- the service ------------------------------------------------------------------------------------


class Scenes:
    """Saves scenes, runs them through Hub.set_state (one device's failure never stops another)."""

    def __init__(self, hub: Hub, *, media_url: MediaUrl | None = None, media_exists: MediaExists | None = None,
                 base_url: Callable[[], str | None] = lambda: None, clock: Callable[[], float] = time.time) -> None:
        self.hub = hub
        self.media_url = media_url
        self.media_exists = media_exists
        self.base_url = base_url  # where the projector fetches films, for runs that don't come over HTTP
        self.clock = clock
        self.scenes: dict[str, Scene] = {}
        self._tasks = Tasks(logged(log, "scene run"))
        self._lock = asyncio.Lock()  # one save at a time: ids stay unique

    async def start(self) -> None:
        rows = await self.hub.store.call(self._load)
        for row in rows:
            try:
                scene = _decode(row)
            except (ValueError, KeyError, TypeError):
                log.exception("scene row %s unreadable; skipped (left in the database)", row.get("id"))
                continue
            self.scenes[scene.id] = scene
        self.hub.mqtt.subscribe(self.hub.topics.scene_set_filter, self._on_mqtt_set)

    @staticmethod
    def _load(db: sqlite_utils.Database) -> list[dict[str, Any]]:
        db["scenes"].create({"id": str, "name": str, "states": str, "play": str, "created": float},
                            pk="id", if_not_exists=True)
        return list(db.query("select * from scenes order by created, id"))

    async def stop(self) -> None:
        self.hub.mqtt.unsubscribe(self.hub.topics.scene_set_filter, self._on_mqtt_set)
        await self._tasks.cancel()

    # -- saving ------------------------------------------------------------------------

    def get(self, scene_id: str) -> Scene:
        try:
            return self.scenes[scene_id]
        except KeyError:
            raise SceneNotFound(scene_id) from None

    def list(self) -> list[Scene]:
        return list(self.scenes.values())

    async def build(self, name: str, states: Mapping[str, Any] | None = None, play: Play | None = None,
                    from_devices: Iterable[str] | None = None, scene_id: str = "") -> Scene:
        """A checked scene (not saved): from explicit states, or captured from devices as they are now."""
        devices = self.hub.registry.devices
        if from_devices is not None:
            captured: dict[str, dict[str, Any]] = {}
            for device_id in from_devices:
                dev = devices.get(device_id)
                if dev is None:
                    raise InvalidScene(f"from_devices.{device_id}", "unknown device", device_id)
                if not (now := capture(dev)):
                    raise InvalidScene(f"from_devices.{device_id}", "has no settable state to capture", device_id)
                captured[device_id] = now
            states = captured
        checked = validate_states(devices, states or {})
        if play is not None:
            await self._check_play(play)
        if not checked and play is None:
            raise InvalidScene("states", "must set at least one device (or play a film)")
        return Scene(scene_id, name, checked, play)

    async def _check_play(self, play: Play) -> None:
        dev = self.hub.registry.get(play.device)
        if dev is None:
            raise InvalidScene("play.device", "unknown device", play.device)
        if dev.info.expose("media_url") is None:
            raise InvalidScene("play.device", "must be a projector with a media player", play.device)
        if self.media_exists is not None and not await self.media_exists(play.media):
            raise InvalidScene("play.media", "no such film in the media library")

    async def create(self, scene: Scene) -> Scene:
        async with self._lock:
            scene = Scene(unique_id(scene.name, self.scenes), scene.name, scene.states, scene.play)
            await self._save(scene, created=self.clock())
            return scene

    async def replace(self, scene_id: str, scene: Scene) -> Scene:
        """New name, states or play; the id stays (MQTT topics and bookmarks use it)."""
        async with self._lock:
            self.get(scene_id)
            scene = Scene(scene_id, scene.name, scene.states, scene.play)
            await self._save(scene)
            return scene

    async def _save(self, scene: Scene, created: float | None = None) -> None:
        row = _encode(scene)
        if created is not None:
            row["created"] = created

        def write(db: sqlite_utils.Database) -> None:
            with db.conn:
                db["scenes"].upsert(row, pk="id")

        await self.hub.store.call(write)
        self.scenes[scene.id] = scene

    async def delete(self, scene_id: str) -> None:
        async with self._lock:
            self.get(scene_id)

            def write(db: sqlite_utils.Database) -> None:
                with db.conn:
                    db.execute("delete from scenes where id = ?", [scene_id])

            await self.hub.store.call(write)
            del self.scenes[scene_id]

    # -- running -----------------------------------------------------------------------

    async def run(self, scene_id: str, base_url: str | None = None) -> dict[str, Any]:
        """Every device at once, each confirmed (or not) on its own; announced as `scene_result`."""
        scene = self.get(scene_id)
        device_ids = list(scene.states)
        if scene.play is not None and scene.play.device not in scene.states:
            device_ids.append(scene.play.device)
        outcomes = await asyncio.gather(*(self._run_device(scene, d, base_url) for d in device_ids))
        result = {"scene": scene.id, "results": dict(zip(device_ids, outcomes))}
        log.info("scene %s ran: %s", scene.id,
                 ", ".join(f"{d} {r['status']}" for d, r in result["results"].items()) or "nothing to do")
        self.hub.bus.publish("scene_result", **result)
        return result

    async def _run_device(self, scene: Scene, device_id: str, base_url: str | None) -> dict[str, Any]:
        try:
            state: dict[str, Any] = {}
            if device_id in scene.states:
                state = await self.hub.set_state(device_id, dict(scene.states[device_id]))
            if scene.play is not None and scene.play.device == device_id:
                state = await self._play(scene.play, base_url)
        except Exception as e:
            return outcome(e)
        return outcome(None, state)

    async def _play(self, play: Play, base_url: str | None) -> dict[str, Any]:
        if self.media_url is None:
            raise LookupError("no media library to play from")
        try:
            url = await self.media_url(play.media, base_url or self.base_url())
        except LookupError:
            raise LookupError(f"film {play.media} is no longer in the media library") from None
        values: dict[str, Any] = {"media_url": url, "media_command": "play"}
        dev = self.hub.registry.get(play.device)
        if dev is not None and dev.info.expose("power") and dev.state.values.get("power") is False:
            values = {"power": True, **values}  # a film on a projector that is off: switch it on too
        return await self.hub.set_state(play.device, values)

    def _on_mqtt_set(self, topic: str, payload: bytes, retain: bool) -> None:
        scene_id = self.hub.topics.parse_scene_set(topic)
        if scene_id is None or retain:
            return  # a retained "run" would replay on every connect; never act on one
        if not SCENE_ID.match(scene_id):
            log.info("MQTT run of %r ignored: not a scene id", scene_id[:80])
            return
        if len(self._tasks) >= MAX_MQTT_RUNS:
            log.warning("MQTT run of %s dropped: %d runs already under way", scene_id, len(self._tasks))
            return
        self._tasks.spawn(self._mqtt_run(scene_id), f"scene-{scene_id}")

    async def _mqtt_run(self, scene_id: str) -> None:
        try:
            result: dict[str, Any] = await self.run(scene_id)
        except SceneNotFound:
            log.info("MQTT asked for scene %r, which does not exist", scene_id)
            result = {"scene": scene_id, "error": f"no scene {scene_id!r}"}
        try:
            await self.hub.mqtt.publish(self.hub.topics.scene_result(scene_id), dumps(result), qos=1)
        except BrokerUnavailable:
            log.info("scene %s ran, but its result could not be published: broker unreachable", scene_id)
