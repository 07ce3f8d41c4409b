"""Runs hatasmota (Python >= 3.13 venv, .venv313) as a Tasmota controller for the tests; driven over stdin.

argv[1]: JSON {"host", "port"}. hatasmota is no MQTT client: this script is its glue to aiomqtt
(publish/subscribe/unsubscribe, as Home Assistant provides). It discovers devices from
`tasmota/discovery/#`, builds switch, light and sensor entities, subscribes them, and then answers
one JSON line per JSON command line: devices, set_relay, set_light, wait_state,
wait_available, wait_sensor, state.
"""

import asyncio
import json
import sys
from typing import Any

import aiomqtt
from hatasmota.discovery import (
    TasmotaDiscovery,
    get_device_config,
    get_entities_for_platform,
    get_entity,
)
from hatasmota.mqtt import ReceiveMessage, TasmotaMQTTClient

PLATFORMS = ("switch", "light")


class Glue:
    """hatasmota's three callbacks over one aiomqtt client; routes messages to callbacks by filter."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.routes: dict[int, tuple[str, Any]] = {}
        self.next = 0
        self.published: list[tuple[str, str]] = []

    async def publish(self, topic: str, payload: Any, qos: int | None = 0, retain: bool | None = False) -> None:
        self.published.append((topic, "" if payload is None else str(payload)))
        await self.client.publish(topic, payload, qos=qos or 0, retain=bool(retain))

    async def subscribe(self, sub_state: dict | None, topics: dict) -> dict:
        """Like Home Assistant's subscription helper: an unchanged topic keeps its subscription."""
        old = dict(sub_state or {})
        state = {}
        for name, spec in topics.items():
            kept = old.pop(name, None)
            if kept is not None and kept[1] == spec["topic"]:
                self.routes[kept[0]] = (spec["topic"], spec["msg_callback"])
                state[name] = kept
                continue
            if kept is not None:
                self.routes.pop(kept[0], None)
            self.next += 1
            self.routes[self.next] = (spec["topic"], spec["msg_callback"])
            state[name] = (self.next, spec["topic"])
            await self.client.subscribe(spec["topic"], qos=1)
        await self.unsubscribe(old)
        return state

    async def unsubscribe(self, sub_state: dict | None) -> dict:
        for route, _topic in (sub_state or {}).values():
            self.routes.pop(route, None)
        return {}

    async def pump(self, changed: asyncio.Condition) -> None:
        async for message in self.client.messages:
            payload = message.payload.decode() if isinstance(message.payload, bytes) else str(message.payload)
            msg = ReceiveMessage(message.topic.value, payload, message.qos, bool(message.retain))
            for filt, callback in list(self.routes.values()):
                if message.topic.matches(filt):
                    result = callback(msg)
                    if asyncio.iscoroutine(result):
                        await result
            async with changed:
                changed.notify_all()


async def main() -> None:
    opts = json.loads(sys.argv[1])
    changed = asyncio.Condition()
    devices: dict[str, dict] = {}
    entities: dict[str, Any] = {}
    states: dict[str, Any] = {}
    available: dict[str, bool] = {}
    sensors: dict[str, Any] = {}

    async with aiomqtt.Client(opts["host"], opts["port"]) as client:
        glue = Glue(client)
        mqtt = TasmotaMQTTClient(glue.publish, glue.subscribe, glue.unsubscribe)
        pump = asyncio.create_task(glue.pump(changed))

        async def device_discovered(payload: dict, mac: str) -> None:
            if not payload:
                devices.pop(mac, None)
                return
            devices[mac] = get_device_config(payload)
            for platform in PLATFORMS:
                for cfg, _hash in get_entities_for_platform(payload, platform):
                    if cfg is None:
                        continue
                    key = f"{mac}/{platform}/{cfg.idx}"
                    entity = get_entity(cfg, mqtt)

                    def on_state(state: Any, attributes: dict | None = None, key: str = key, **_: Any) -> None:
                        states[key] = {"on": state, **(attributes or {})}

                    async def on_available(value: bool, mac: str = mac) -> None:
                        available[mac] = value

                    entity.set_on_state_callback(on_state)
                    entity.set_on_availability_callback(on_available)
                    await entity.subscribe_topics()
                    entities[key] = entity

        async def sensors_discovered(found: list, mac: str) -> None:
            for cfg, _hash in found:
                if cfg.platform == "sensor":
                    key = f"{mac}/" + "/".join(str(p) for p in cfg.value_path)
                elif cfg.platform == "status_sensor":
                    key = f"{mac}/status/{cfg.sensor}"
                else:
                    continue
                entity = get_entity(cfg, mqtt)

                def on_value(value: Any, key: str = key, **_: Any) -> None:
                    sensors[key] = value if isinstance(value, (int, float, str, bool)) else str(value)

                entity.set_on_state_callback(on_value)
                await entity.subscribe_topics()
                await entity.poll_status()
                entities[key] = entity

        discovery = TasmotaDiscovery("tasmota/discovery", mqtt)
        await discovery.start_discovery(device_discovered, sensors_discovered)
        print(json.dumps({"ready": True}), flush=True)

        async def until(pred: Any, timeout: float = 20) -> None:
            async with changed:
                await asyncio.wait_for(changed.wait_for(pred), timeout)

        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            cmd = json.loads(line)
            op = cmd["op"]
            out: dict[str, Any] = {"ok": True}
            try:
                if op == "devices":
                    await until(lambda: len(devices) >= cmd["count"] and len(entities) >= cmd.get("entities", 0))
                    out.update(devices=devices, entities=sorted(entities))
                elif op == "set_relay":
                    await entities[cmd["key"]].set_state(cmd["on"])
                elif op == "set_light":
                    await entities[cmd["key"]].set_state(cmd["on"], cmd.get("attributes", {}))
                elif op == "wait_state":
                    want = cmd["state"]
                    await until(lambda: all(states.get(cmd["key"], {}).get(k) == v for k, v in want.items()))
                    out["state"] = states[cmd["key"]]
                elif op == "wait_available":
                    await until(lambda: available.get(cmd["mac"]) == cmd["value"])
                elif op == "wait_sensor":
                    await until(lambda: cmd["key"] in sensors and cmd.get("value", sensors[cmd["key"]]) == sensors[cmd["key"]])
                    out["value"] = sensors[cmd["key"]]
                elif op == "state":
                    out.update(states=states, available=available, sensors=sensors, published=glue.published[-50:])
                else:
                    out = {"ok": False, "error": f"unknown op {op}"}
            except TimeoutError:
                out = {"ok": False, "error": "timeout", "states": states, "available": available,
                       "sensors": sensors, "published": glue.published[-30:]}
            print(json.dumps(out), flush=True)
        await discovery.stop_discovery()
        pump.cancel()


asyncio.run(main())
