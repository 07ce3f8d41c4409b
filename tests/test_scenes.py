"""Scenes: saved without running, checked against the exposes, run per device over REST, MQTT and WebSocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from firmware_sim.homie.house import House, parse_house
from hub.commands import CommandTimeout, DeviceNotFound, DeviceOffline
from hub.model import Access, Action, Binary, DeviceInfo, InvalidCommand, Numeric, Text
from hub.registry import Device
from hub.model import DeviceState
from hub.scenes import InvalidScene, capture, outcome, slugify, unique_id, validate_states
from tests.conftest import RunningHub, next_event, until
from tests.homie_peer import HomiePeer
from tests.sim_support import observe
from tests.test_homie_e2e import wait_online

# -- pure parts -------------------------------------------------------------------------------------


def test_ids_are_slugs_of_the_name_and_unique() -> None:
    assert slugify("Movie night") == "movie-night"
    assert slugify("  Soirée ciné!  ") == "soiree-cine"
    assert slugify("🎬") == "scene"
    assert len(slugify("x" * 200)) <= 48
    assert unique_id("Movie night", {"movie-night", "movie-night-2"}) == "movie-night-3"
    assert unique_id("All off", {"movie-night"}) == "all-off"


LIGHT = DeviceInfo(id="lamp", name="Lamp", driver="homie", exposes=(
    Binary(name="on", access=Access.STATE | Access.SET),
    Numeric(name="brightness", access=Access.STATE | Access.SET, min=0, max=100, integer=True),
    Numeric(name="power", unit="W"),
    Action(name="flash", values=("once",)),
    Text(name="media_url", access=Access.STATE | Access.SET, category="config"),
))


def test_states_are_checked_against_the_exposes_naming_device_and_field() -> None:
    devices = {"lamp": Device(LIGHT)}
    assert validate_states(devices, {"lamp": {"on": True, "brightness": 10.0}}) == {"lamp": {"on": True, "brightness": 10}}
    for states, field in (({"lamp": {"brightness": 400}}, "states.lamp.brightness"),
                          ({"lamp": {"power": 3}}, "states.lamp.power"),
                          ({"lamp": {}}, "states.lamp"), ({"lamp": "on"}, "states.lamp"),
                          ({"ghost": {"on": True}}, "states.ghost")):
        with pytest.raises(InvalidScene) as e:
            validate_states(devices, states)
        assert e.value.field == field and e.value.device == next(iter(states))


def test_capture_takes_the_settable_look_not_actions_or_plumbing() -> None:
    dev = Device(LIGHT, DeviceState(values={"on": True, "brightness": 12, "power": 4.5, "media_url": "http://x"}))
    assert capture(dev) == {"on": True, "brightness": 12}
    assert capture(Device(LIGHT, DeviceState(values={"brightness": 9000}))) == {}  # out of range: not a look


def test_each_outcome_has_a_status() -> None:
    assert outcome(None, {"on": True}) == {"status": "confirmed", "state": {"on": True}}
    assert outcome(CommandTimeout("lamp did not confirm on"))["status"] == "not_confirmed"
    assert outcome(DeviceOffline("lamp is offline"))["status"] == "offline"
    assert "no device lamp" in outcome(DeviceNotFound("lamp"))["error"]
    assert outcome(InvalidCommand("on", "must be true or false")) == {"status": "error",
                                                                        "error": "on: must be true or false"}
    assert outcome(RuntimeError("boom")) == {"status": "error", "error": "internal error"}


class _StuckMqtt:
    """An MQTT link whose publishes never finish: runs pile up."""

    def __init__(self) -> None:
        self.handlers: list = []

    def subscribe(self, topic_filter: str, handler) -> None:
        self.handlers.append((topic_filter, handler))

    def unsubscribe(self, topic_filter: str, handler) -> None:
        self.handlers.remove((topic_filter, handler))

    async def publish(self, *args, **kwargs) -> None:
        await asyncio.Event().wait()


async def test_mqtt_runs_are_bounded_and_retained_or_odd_topics_ignored() -> None:
    from types import SimpleNamespace

    from hub.scenes import MAX_MQTT_RUNS, Scenes
    from hub.topics import Topics

    async def no_rows(fn):
        return []

    hub = SimpleNamespace(topics=Topics("hub"), mqtt=_StuckMqtt(), store=SimpleNamespace(call=no_rows))
    scenes = Scenes(hub)  # type: ignore[arg-type]
    await scenes.start()
    (topic_filter, handler), = hub.mqtt.handlers
    assert topic_filter == "hub/scene/+/set"
    handler("hub/scene/movie-night/set", b"", True)  # retained: would replay on every connect
    handler("hub/scene/Movie+Night/set", b"", False)  # not an id we could answer on
    assert not scenes._tasks
    for _ in range(MAX_MQTT_RUNS * 3):
        handler("hub/scene/movie-night/set", b"go", False)
    assert len(scenes._tasks) == MAX_MQTT_RUNS
    await scenes.stop()
    assert not scenes._tasks and not hub.mqtt.handlers


async def test_a_film_gone_from_the_library_is_an_error_for_its_projector_alone() -> None:
    from types import SimpleNamespace

    from hub.bus import Bus
    from hub.scenes import Play, Scene, Scenes

    async def media_url(media_id: int, base_url: str | None) -> str:
        raise LookupError(media_id)  # what MediaService.signed_url raises for an unknown id

    async def set_state(device_id: str, payload: dict) -> dict:
        return dict(payload)

    hub = SimpleNamespace(bus=Bus(), set_state=set_state, registry=SimpleNamespace(get=lambda i: None))
    scenes = Scenes(hub, media_url=media_url)  # type: ignore[arg-type]
    scenes.scenes["film"] = Scene("film", "Film", {"lamp": {"on": False}}, Play(42, "projector"))
    result = await scenes.run("film", "http://hub.local")
    assert result["results"]["lamp"] == {"status": "confirmed", "state": {"on": False}}
    assert result["results"]["projector"] == {"status": "error",
                                              "error": "film 42 is no longer in the media library"}


# -- the API, with one hand-driven Homie lamp -----------------------------------------------------


async def test_saving_checks_everything_and_runs_nothing(running: RunningHub, lamp: HomiePeer) -> None:  # noqa: F811
    api = f"{running.url}/api/scenes"
    async with aiohttp.ClientSession(headers=running.headers) as s:
        await wait_online(s, running, "test-lamp")
        for body, field in (
            ({"name": "Dim", "states": {"test-lamp": {"brightness": 400}}}, "states.test-lamp.brightness"),
            ({"name": "Dim", "states": {"test-lamp": {"power": 3}}}, "states.test-lamp.power"),
            ({"name": "Dim", "states": {"nope": {"on": True}}}, "states.nope"),
            ({"name": "Dim", "from_devices": ["nope"]}, "from_devices.nope"),
            ({"name": "Film", "states": {}, "play": {"media": 1, "device": "test-lamp"}}, "play.device"),
            ({"name": "Dim", "states": {}}, "states"),
            ({"name": "", "states": {"test-lamp": {"on": True}}}, "name"),
            ({"name": "Dim", "states": {"test-lamp": {"on": True}}, "from_devices": ["test-lamp"]}, "from_devices"),
            ({"name": "Dim", "states": {"test-lamp": {"on": True}}, "colour": 1}, "colour"),
        ):
            async with s.post(api, json=body) as r:
                assert r.status == 422, body
                err = await r.json()
            assert err["field"] == field, err
            if field.startswith(("states.", "from_devices.", "play.")):
                assert err["device"] == field.split(".")[1] or field == "play.device"
        async with s.post(api, data=b"{nope") as r:
            assert r.status == 422 and (await r.json())["field"] == "body"

        async with s.post(api, json={"name": "Reading", "states": {"test-lamp": {"on": True, "brightness": 80}}}) as r:
            assert r.status == 201, await r.text()
            reading = await r.json()
        assert reading == {"id": "reading", "name": "Reading", "states": {"test-lamp": {"on": True, "brightness": 80}},
                           "play": None}
        assert lamp.commands.empty()  # saved, not run
        async with s.post(api, json={"name": "Reading", "from_devices": ["test-lamp"]}) as r:
            assert r.status == 201
            captured = await r.json()
        assert captured["id"] == "reading-2"
        assert captured["states"] == {"test-lamp": {"on": False, "brightness": 50, "color": "#ffffff"}}
        async with s.put(f"{api}/reading-2", json={"name": "Bright", "states": {"test-lamp": {"brightness": 100}}}) as r:
            assert r.status == 200
            assert (await r.json())["id"] == "reading-2"  # renaming keeps the id (MQTT topics use it)
        async with s.put(f"{api}/reading-2", json={"name": "Bright", "states": {"test-lamp": {"brightness": -1}}}) as r:
            assert r.status == 422
        async with s.get(api) as r:
            assert [(x["id"], x["name"]) for x in await r.json()] == [("reading", "Reading"), ("reading-2", "Bright")]
        async with s.delete(f"{api}/reading-2") as r:
            assert r.status == 204
        for method, url in (("GET", f"{api}/reading-2"), ("PUT", f"{api}/reading-2"), ("DELETE", f"{api}/reading-2"),
                            ("POST", f"{api}/reading-2/run")):
            async with s.request(method, url, json={"name": "x", "states": {"test-lamp": {"on": True}}}) as r:
                assert r.status == 404, (method, url)
        assert lamp.commands.empty()

        lamp.echo = False  # a device that takes the command but never confirms
        async with s.post(f"{api}/reading/run") as r:
            assert r.status == 200
            result = await r.json()
        assert result["scene"] == "reading"
        assert result["results"]["test-lamp"]["status"] == "not_confirmed"
    async with aiohttp.ClientSession() as anon:
        async with anon.get(api) as r:
            assert r.status == 401


# -- the proof: the simulated house on Mosquitto, through REST and MQTT --------------------------

HOUSE = """
[[device]]
id = "lounge-ceiling"
name = "Ceiling light"
type = "light"
room = "Living room"

[[device]]
id = "lounge-lamp"
name = "Reading lamp"
type = "light"
room = "Living room"

[[device]]
id = "lounge-blind"
name = "Blind"
type = "cover"
room = "Living room"
params = { speed = 200.0 }

[[device]]
id = "kettle-plug"
name = "Kettle"
type = "plug"
room = "Kitchen"
"""
IDS = ("lounge-ceiling", "lounge-lamp", "lounge-blind", "kettle-plug")


@pytest.fixture
async def house(running: RunningHub, tmp_path: Path) -> AsyncIterator[House]:
    h = House(parse_house(HOUSE), broker_url=running.broker.url, state_dir=tmp_path / "sim", speed=20)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


async def test_movie_night_from_the_current_state(running: RunningHub, house: House) -> None:
    hub = running.hub
    await until(hub, lambda: all((d := hub.registry.get(i)) and d.state.online and d.state.values for i in IDS),
                20, "the house online")
    async with aiohttp.ClientSession(headers=running.headers) as s:
        async def set_(device_id: str, body: dict) -> None:
            async with s.post(f"{running.url}/api/devices/{device_id}/set", json=body) as r:
                assert r.status == 200, await r.text()

        # the household sets the room up, then keeps it as "Movie night"
        await set_("lounge-ceiling", {"on": True, "brightness": 10})
        await set_("lounge-lamp", {"on": False})
        await set_("lounge-blind", {"position": 0})
        async with s.post(f"{running.url}/api/scenes",
                          json={"name": "Movie night", "from_devices": ["lounge-ceiling", "lounge-lamp", "lounge-blind"]}) as r:
            assert r.status == 201, await r.text()
            scene = await r.json()
        assert scene["id"] == "movie-night"
        assert scene["states"]["lounge-ceiling"]["brightness"] == 10 and scene["states"]["lounge-lamp"]["on"] is False
        assert scene["states"]["lounge-blind"] == {"position": 0}
        async with s.post(f"{running.url}/api/scenes",
                          json={"name": "All off", "states": {i: {"on": False} for i in IDS if i != "lounge-blind"}}) as r:
            assert r.status == 201, await r.text()

        # the evening goes on: lights change
        await set_("lounge-ceiling", {"brightness": 90})
        await set_("lounge-lamp", {"on": True, "brightness": 70})

        # one tap (REST), with the page's WebSocket watching
        async with s.ws_connect(f"{running.url}/api/ws", headers=running.headers) as ws:
            await ws.receive_json()  # snapshot
            async with s.post(f"{running.url}/api/scenes/movie-night/run") as r:
                assert r.status == 200, await r.text()
                result = await r.json()
            event = await next_event(ws, lambda m: m.get("type") == "scene_result")
        assert event["scene"] == "movie-night" and event["results"] == result["results"]
        statuses = {d: r["status"] for d, r in result["results"].items()}
        assert statuses == {"lounge-ceiling": "confirmed", "lounge-lamp": "confirmed", "lounge-blind": "confirmed"}
        assert result["results"]["lounge-ceiling"]["state"]["brightness"] == 10
        assert hub.registry.get("lounge-lamp").state.values["on"] is False

        # the same through MQTT, as Node-RED or a wall switch would
        await set_("lounge-ceiling", {"brightness": 55})
        async with observe("127.0.0.1", running.broker.port, "hub/scene/+/result") as mqtt:
            await mqtt.publish("hub/scene/movie-night/set", "")
            answer = json.loads(await mqtt.wait_for("hub/scene/movie-night/result", timeout=15))
            assert {d: r["status"] for d, r in answer["results"].items()} == statuses
            assert hub.registry.get("lounge-ceiling").state.values["brightness"] == 10
            await mqtt.publish("hub/scene/no-such-scene/set", "go")
            missing = json.loads(await mqtt.wait_for("hub/scene/no-such-scene/result"))
            assert "no scene" in missing["error"]
            assert not [m for m in mqtt.history if m[2]]  # results are never retained

        # a device that went away does not stop the others
        kettle = next(d for d in house.devices if d.device_id == "kettle-plug")
        await kettle.stop()
        await until(hub, lambda: not hub.registry.get("kettle-plug").state.online, 15, "kettle offline")
        async with s.post(f"{running.url}/api/scenes/all-off/run") as r:
            result = await r.json()
        assert result["results"]["kettle-plug"]["status"] == "offline"
        assert {result["results"][i]["status"] for i in ("lounge-ceiling", "lounge-lamp")} == {"confirmed"}
        assert hub.registry.get("lounge-ceiling").state.values["on"] is False


async def test_openapi_describes_scenes_history_and_the_new_device_fields(running: RunningHub) -> None:
    async with aiohttp.ClientSession(headers=running.headers) as s:
        async with s.get(f"{running.url}/api/openapi.json") as r:
            spec = await r.json()
    assert {"/api/scenes", "/api/scenes/{id}", "/api/scenes/{id}/run", "/api/devices/{id}/history"} <= set(spec["paths"])
    assert set(spec["paths"]["/api/scenes/{id}"]) == {"get", "put", "delete"}
    device = spec["components"]["schemas"]["Device"]["properties"]
    assert {"last_seen", "inbox", "ignored"} <= set(device)
    assert spec["components"]["schemas"]["Expose"]["properties"]["category"]["enum"] == ["config", "diagnostic"]
    statuses = spec["components"]["schemas"]["SceneResult"]["properties"]["results"]["additionalProperties"]
    assert statuses["properties"]["status"]["enum"] == ["confirmed", "not_confirmed", "offline", "error"]
