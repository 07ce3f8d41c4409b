"""A real Home Assistant finds every device of the demo house through the hub's MQTT discovery."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from firmware_sim.homie.house import House, default_house_text, parse_house
from firmware_sim.projector import ProjectorSim
from firmware_sim.projector.model import ProjectorConfig
from hub.accounts import create_token, create_user
from hub.broker import Broker, free_port
from hub.core import Hub
from hub.ha.discovery import Origin, device_config
from hub.service import running_hub
from tests.conftest import OWNER, OWNER_PASSWORD, hub_config, until
from tests.ha_instance import HaSocket, HomeAssistant
from tests.sim_support import observe

pytestmark = [pytest.mark.homeassistant, pytest.mark.timeout(300)]

HOUSE = parse_house(default_house_text())


@pytest.fixture
async def home_assistant(tmp_path: Path, broker: Broker) -> AsyncIterator[HomeAssistant]:
    """Home Assistant onboarded, with its MQTT integration on the test's Mosquitto."""
    ha = HomeAssistant(tmp_path / "ha", free_port())
    await ha.start()
    try:
        async with aiohttp.ClientSession() as s:
            await ha.onboard(s)
            await ha.add_mqtt(s, "127.0.0.1", broker.port)
        yield ha
    finally:
        await ha.stop()


def expected_unique_ids(hub: Hub) -> dict[str, str]:
    """unique_id → platform of every entity the hub announces (from the same pure mapping)."""
    out = {}
    for dev in hub.registry.devices.values():
        cfg = device_config(dev.info, name=dev.name, room=dev.room, topics=hub.topics, origin=Origin("hub", ""))
        out.update({c["unique_id"]: c["p"] for c in cfg["cmps"].values()})
    return out


class HaView:
    """What Home Assistant knows, read through its WebSocket API."""

    def __init__(self, sock: HaSocket) -> None:
        self.sock = sock
        self.entities: dict[str, dict[str, Any]] = {}  # unique_id → registry entry (mqtt only)
        self.states: dict[str, dict[str, Any]] = {}  # entity_id → state

    async def refresh(self) -> None:
        entries = await self.sock.call("config/entity_registry/list")
        self.entities = {e["unique_id"]: e for e in entries if e["platform"] == "mqtt"}
        self.states = {s["entity_id"]: s for s in await self.sock.call("get_states")}

    def state(self, unique_id: str) -> dict[str, Any]:
        return self.states.get(self.entities[unique_id]["entity_id"], {})

    async def devices(self) -> dict[str, dict[str, Any]]:
        """HA device registry entries of the hub's devices, by hub device id."""
        areas = {a["area_id"]: a["name"] for a in await self.sock.call("config/area_registry/list")}
        out = {}
        for d in await self.sock.call("config/device_registry/list"):
            for domain, ident in d["identifiers"]:
                if domain == "mqtt" and ident.startswith("hub_"):
                    out[ident[4:]] = {**d, "area": areas.get(d["area_id"])}
        return out


async def test_home_assistant_sees_controls_and_loses_every_device(
        tmp_path: Path, broker: Broker, home_assistant: HomeAssistant) -> None:
    ha = home_assistant
    config = hub_config(tmp_path, broker).model_copy(update={"command_timeout": 5.0})
    create_user(config.data_dir / "hub.db", OWNER, OWNER_PASSWORD, "owner")
    token = create_token(config.data_dir / "hub.db", "tests")
    async with aiohttp.ClientSession() as s, ha.websocket(s) as sock:
        view = HaView(sock)
        for event_type in ("entity_registry_updated", "device_registry_updated", "state_changed"):
            await sock.call("subscribe_events", event_type=event_type)

        started = time.monotonic()
        async with running_hub(config) as (hub, url):
            house = House(HOUSE, broker_url=broker.url, state_dir=tmp_path / "sim", speed=5, keepalive=5)
            projector = ProjectorSim(ProjectorConfig(name="Lounge projector", warmup=0.2, cooldown=0.2),
                                     port=free_port(), udp_port=free_port(), notify_port=free_port(),
                                     state_dir=tmp_path / "sim", mdns_interface="127.0.0.1", broker=broker.url,
                                     room="Lounge")
            await house.start()
            await projector.start()
            try:
                def projector_id() -> str | None:
                    return next((d.id for d in hub.registry.devices.values() if d.info.driver == "pjlink"
                                 and d.state.online and d.info.expose("media_volume")), None)

                ids = {spec.id for spec in HOUSE}
                await until(hub, lambda: projector_id() is not None and all(
                    (d := hub.registry.get(i)) is not None and d.state.online for i in ids),
                    60, "the house and the projector online in the hub")
                pj = projector_id()
                assert pj is not None
                ids.add(pj)
                in_hub = time.monotonic() - started
                expected = expected_unique_ids(hub)

                async def all_present() -> bool:
                    await view.refresh()
                    return set(expected) <= set(view.entities) and all(
                        view.state(u).get("state") not in (None, "unavailable") for u in expected)

                await sock.wait_until(all_present, 90, f"all {len(expected)} entities available in HA")
                in_ha = time.monotonic() - started
                print(f"\nHome Assistant {ha.version}: {len(expected)} entities of {len(ids)} devices present "
                      f"{in_ha:.2f} s after hub start; the hub itself had them all online after {in_hub:.2f} s "
                      f"(ratio {in_ha / in_hub:.2f})")

                # every entity shows a value once the hub settled, not "unknown" (HA compares each
                # rendered template with the entity's state payloads). Buttons are the exception: a
                # button's state is when it was last pressed, so it is "unknown" until someone presses it
                stateless = {u for u, p in expected.items() if p == "button"}
                shown = set(expected) - stateless

                async def all_known() -> bool:
                    await view.refresh()
                    return all(view.state(u).get("state") not in (None, "unknown", "unavailable") for u in shown)

                try:
                    await sock.wait_until(all_known, 60, f"all {len(shown)} stateful entities with a state")
                finally:
                    print(_state_table(view, expected))
                assert stateless and {view.state(u)["state"] for u in stateless} == {"unknown"}

                # every device, in its room
                devices = await view.devices()
                # (HA matches areas without case: onboarding made a "Living Room" already)
                assert {i: devices[i]["area"].casefold() for i in ids} == {
                    pj: "lounge", **{spec.id: spec.room.casefold() for spec in HOUSE}}
                assert devices["living-room-thermostat"]["name"] == "Living room thermostat"

                # the right domains and units
                def entity_id(uid: str) -> str:
                    return view.entities[uid]["entity_id"]

                def domain(uid: str) -> str:
                    return entity_id(uid).split(".")[0]

                assert domain("hub_living-room-ceiling_light") == "light"
                assert domain("hub_bedroom-blind_cover") == "cover"
                assert domain("hub_living-room-thermostat_climate") == "climate"
                assert domain("hub_front-door-lock_lock") == "lock"
                assert domain("hub_kitchen-kettle-plug_on") == "switch"
                assert domain("hub_hallway-motion_motion") == "binary_sensor"
                light = view.state("hub_living-room-ceiling_light")["attributes"]
                assert set(light["supported_color_modes"]) == {"color_temp", "hs"}
                assert (light["min_color_temp_kelvin"], light["max_color_temp_kelvin"]) == (2000, 6536)
                units = {u: (view.state(u)["attributes"].get("device_class"),
                             view.state(u)["attributes"].get("unit_of_measurement"))
                         for u in ("hub_bedroom-climate_temperature", "hub_bedroom-climate_humidity",
                                   "hub_kitchen-kettle-plug_power", "hub_kitchen-kettle-plug_energy",
                                   "hub_bedroom-climate_battery")}
                assert units == {
                    "hub_bedroom-climate_temperature": ("temperature", "°C"),
                    "hub_bedroom-climate_humidity": ("humidity", "%"),
                    "hub_kitchen-kettle-plug_power": ("power", "W"),
                    "hub_kitchen-kettle-plug_energy": ("energy", "kWh"),
                    "hub_bedroom-climate_battery": ("battery", "%"),
                }
                thermostat = view.state("hub_living-room-thermostat_climate")
                assert set(thermostat["attributes"]["hvac_modes"]) == {"off", "heat", "auto"}
                assert thermostat["attributes"]["current_temperature"] is not None

                # the projector: power a switch, input a select, volume a number, lamp hours a sensor
                assert [domain(f"hub_{pj}_{e}") for e in ("power", "input", "media_volume", "lamp_hours")] == [
                    "switch", "select", "number", "sensor"]
                assert view.state(f"hub_{pj}_lamp_hours")["attributes"]["unit_of_measurement"] == "h"
                assert view.entities[f"hub_{pj}_lamp_hours"]["entity_category"] == "diagnostic"
                assert len(view.state(f"hub_{pj}_input")["attributes"]["options"]) >= 2

                # commands from HA reach the simulated devices, through the hub's validation
                lamp = entity_id("hub_living-room-ceiling_light")
                await sock.call("call_service", domain="light", service="turn_on",
                                service_data={"brightness_pct": 40}, target={"entity_id": lamp})
                await until(hub, lambda: hub.registry.get("living-room-ceiling").state.values.get("brightness") == 40
                            and hub.registry.get("living-room-ceiling").state.values.get("on") is True,
                            15, "the light at 40 %")
                await sock.wait_until(
                    lambda: _state_is(view, lamp, lambda s: s["state"] == "on"
                                      and s["attributes"].get("brightness") == 102), 15, "HA showing the light on")

                await sock.call("call_service", domain="switch", service="turn_on",
                                target={"entity_id": entity_id(f"hub_{pj}_power")})
                await until(hub, lambda: hub.registry.get(pj).state.values.get("power") is True, 15,
                            "the projector on")

                # toggling a plug in HA switches the simulated plug, the hub reports it, and HA follows
                kettle_sim = next(d for d in house.devices if d.device_id == "kitchen-kettle-plug").model
                kettle = entity_id("hub_kitchen-kettle-plug_on")
                for want in (not kettle_sim.get("switch", "on"), kettle_sim.get("switch", "on")):
                    await sock.call("call_service", domain="switch", service="toggle", target={"entity_id": kettle})
                    await until(hub, lambda: hub.registry.get("kitchen-kettle-plug").state.values.get("on") is want,
                                15, f"the kettle plug {'on' if want else 'off'} in the hub")
                    assert kettle_sim.get("switch", "on") is want
                    async with s.get(f"{url}/api/devices/kitchen-kettle-plug",
                                     headers={"Authorization": f"Bearer {token}"}) as r:
                        assert r.status == 200 and (await r.json())["state"]["on"] is want
                    await sock.wait_until(
                        lambda: _state_is(view, kettle, lambda s: s["state"] == ("on" if want else "off")),
                        15, f"HA showing the kettle plug {'on' if want else 'off'}")

                blind = entity_id("hub_bedroom-blind_cover")
                await sock.call("call_service", domain="cover", service="set_cover_position",
                                service_data={"position": 30}, target={"entity_id": blind})
                await until(hub, lambda: hub.registry.get("bedroom-blind").state.values.get("position") == 30,
                            30, "the blind at 30 %")
                await sock.wait_until(
                    lambda: _state_is(view, blind, lambda s: s["attributes"].get("current_position") == 30),
                    15, "HA showing the blind at 30 %")

                # HA shows what the hub confirmed, never a guess: a setpoint off the device's 0.5 steps
                # is refused by the hub's validation, and HA keeps showing the confirmed one
                thermostat_id = entity_id("hub_living-room-thermostat_climate")
                confirmed = hub.registry.get("living-room-thermostat").state.values["target_temperature"]
                async with observe("127.0.0.1", broker.port, "hub/living-room-thermostat/set/result") as results:
                    await sock.call("call_service", domain="climate", service="set_temperature",
                                    service_data={"temperature": 21.3}, target={"entity_id": thermostat_id})
                    refused = json.loads(await results.wait_for("hub/living-room-thermostat/set/result"))
                assert (refused["code"], refused["field"]) == (422, "target_temperature")
                assert hub.registry.get("living-room-thermostat").state.values["target_temperature"] == confirmed
                assert await _state_is(view, thermostat_id,
                                       lambda s: s["attributes"]["temperature"] == confirmed)

                # a renamed device follows in HA
                await hub.rename_device("office-desk-plug", "Desk lamp plug", None)
                await sock.wait_until(lambda: _device_named(view, "office-desk-plug", "Desk lamp plug"),
                                      15, "HA showing the new name")

                # a device going offline is unavailable in HA
                plug = entity_id("hub_office-desk-plug_on")
                await next(d for d in house.devices if d.device_id == "office-desk-plug").stop()
                await sock.wait_until(lambda: _state_is(view, plug, lambda s: s["state"] == "unavailable"),
                                      15, "the stopped plug unavailable in HA")

                # a forgotten device leaves HA's device registry
                async with s.delete(f"{url}/api/devices/hallway-motion",
                                    headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status == 204
                await sock.wait_until(lambda: _device_gone(view, "hallway-motion"), 15, "HA forgetting the sensor")

                # Home Assistant restarts: every entity is back and available (but the stopped plug's)
                # without anyone touching the hub, and the hub answers HA's birth message
                lamp_config = "homeassistant/device/living-room-ceiling/config"
                back = {u for u in expected if "hallway-motion" not in u and "office-desk-plug" not in u}
                async with observe("127.0.0.1", broker.port, lamp_config) as configs:
                    await configs.wait_for(lamp_config)  # the retained copy
                    await ha.stop()
                    restarted = time.monotonic()
                    await ha.start()
                    async with ha.websocket(s) as sock2:
                        view2 = HaView(sock2)
                        for event_type in ("entity_registry_updated", "state_changed"):
                            await sock2.call("subscribe_events", event_type=event_type)

                        async def all_back() -> bool:
                            await view2.refresh()
                            return back <= set(view2.entities) and all(
                                view2.state(u).get("state") not in (None, "unavailable") for u in back)

                        await sock2.wait_until(all_back, 60, "every entity back after HA's restart")
                        print(f"after a Home Assistant restart, all {len(back)} entities were back "
                              f"{time.monotonic() - restarted:.2f} s after it was started again")
                        assert view2.state("hub_office-desk-plug_on")["state"] == "unavailable"
                    await configs.wait_count(lamp_config, 2, timeout=60)  # republished after HA's birth
            finally:
                await projector.stop()
                await house.stop()

    # HA took every payload and template without complaint
    complaints = [line for line in ha.log.read_text(errors="replace").splitlines()
                  if (" WARNING " in line or " ERROR " in line)
                  and ("components.mqtt" in line or "helpers.template" in line or "components.sensor" in line)]
    assert not complaints, "\n".join(complaints)


def _state_table(view: HaView, expected: dict[str, str]) -> str:
    """unique_id, platform and HA state of every entity the hub announced (for the test's output)."""
    rows = [f"  {u:<48} {p:<14} {view.state(u).get('state') if u in view.entities else '(missing)'}"
            for u, p in sorted(expected.items())]
    return "\n".join(["entities in Home Assistant:", *rows])


async def _state_is(view: HaView, entity_id: str, pred: Any) -> bool:
    states = {s["entity_id"]: s for s in await view.sock.call("get_states")}
    return entity_id in states and bool(pred(states[entity_id]))


async def _device_named(view: HaView, device_id: str, name: str) -> bool:
    return (await view.devices()).get(device_id, {}).get("name") == name


async def _device_gone(view: HaView, device_id: str) -> bool:
    return device_id not in await view.devices()
