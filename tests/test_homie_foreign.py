"""Homie 5 devices the hub did not make: plain `mosquitto_pub` messages, as any Homie library
publishes them, with no mDNS record at all. Adopted, commanded from REST, state follows, removed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Iterator

import aiohttp
import pytest

from tests.conftest import RunningHub, until
from tests.homie_peer import advertise, loopback_zeroconf

RELAY = {
    "homie": "5.0", "version": 1, "name": "Two-channel relay", "type": "relay",
    "nodes": {
        "relay1": {"name": "Channel 1", "properties": {"on": {"datatype": "boolean", "settable": True}}},
        "relay2": {"name": "Channel 2", "properties": {"on": {"datatype": "boolean", "settable": True}}},
        "meter": {"properties": {"power": {"datatype": "float", "unit": "W", "format": "0:3600"}}},
    },
}


def pub(port: int, topic: str, payload: str | None, retain: bool = True) -> None:
    """One `mosquitto_pub`, as a person at a shell would send it (None: an empty, deleting payload)."""
    args = ["mosquitto_pub", "-p", str(port), "-q", "1", "-t", topic]
    args += ["-n"] if payload is None else ["-m", payload]
    subprocess.run(args + (["-r"] if retain else []), check=True, timeout=10)


@pytest.fixture
def echo(running: RunningHub) -> Iterator[None]:
    """The device's firmware in one shell line: every `…/set` is applied and published back, retained."""
    port = running.broker.port
    script = (f"mosquitto_sub -p {port} -q 1 -v -t 'homie/5/+/+/+/set' | "
              f"while read -r topic value; do mosquitto_pub -p {port} -q 1 -r -t \"${{topic%/set}}\" -m \"$value\"; done")
    proc = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def announce_relay(port: int, device_id: str = "relay-x") -> None:
    base = f"homie/5/{device_id}"
    pub(port, f"{base}/$state", "init")
    pub(port, f"{base}/$description", json.dumps(RELAY))
    pub(port, f"{base}/relay1/on", "true")
    pub(port, f"{base}/relay2/on", "false")
    pub(port, f"{base}/meter/power", "41.5")
    pub(port, f"{base}/$state", "ready")


async def test_a_mosquitto_pub_device_is_adopted_commanded_and_removed(running: RunningHub, echo: None) -> None:
    hub, port = running.hub, running.broker.port
    await asyncio.to_thread(announce_relay, port)
    await until(hub, lambda: (d := hub.registry.get("relay-x")) is not None and d.state.online, 10, "relay adopted")
    dev = hub.registry.get("relay-x")
    assert [e.name for e in dev.info.exposes] == ["relay1_on", "relay2_on", "power"]  # two controls, not one `on`
    assert dev.state.values == {"relay1_on": True, "relay2_on": False, "power": 41.5}

    async with aiohttp.ClientSession(headers=running.headers) as s:
        async with s.ws_connect(f"{running.url}/api/ws") as ws:
            async with s.post(f"{running.url}/api/devices/relay-x/set", json={"relay2_on": True}) as r:
                body = await r.json()
                assert r.status == 200, body
            assert body["state"]["relay2_on"] is True and body["state"]["relay1_on"] is True
            async with asyncio.timeout(10):
                async for msg in ws:
                    event = json.loads(msg.data)
                    if event.get("type") == "state" and event.get("id") == "relay-x" \
                            and event.get("state", {}).get("relay2_on") is True:
                        break
        # the device changes by itself (a button): the hub follows
        await asyncio.to_thread(pub, port, "homie/5/relay-x/relay1/on", "false")
        await until(hub, lambda: hub.registry.get("relay-x").state.values["relay1_on"] is False, 10, "state follows")
        # garbage from the device is dropped, the value stays, the hub keeps going
        await asyncio.to_thread(pub, port, "homie/5/relay-x/meter/power", "lots")
        await until(hub, lambda: "meter/power" in hub.registry.get("relay-x").info.error, 10, "the bad value is shown")
        assert hub.registry.get("relay-x").state.values["power"] == 41.5

        # Homie 5 removal: the retained $state cleared first, then the rest
        await asyncio.to_thread(pub, port, "homie/5/relay-x/$state", None)
        await asyncio.to_thread(pub, port, "homie/5/relay-x/$description", None)
        await until(hub, lambda: hub.registry.get("relay-x") is None, 10, "relay removed")
        async with s.get(f"{running.url}/api/devices/relay-x") as r:
            assert r.status == 404


async def test_a_specific_driver_takes_a_homie_device_over_and_the_generic_one_lets_go(running: RunningHub) -> None:
    """The projector's player is a Homie device; on the broker alone it is a plain Homie device. Once
    its mDNS record says whose player it is, the PJLink driver (higher priority) takes it over."""
    hub, port = running.hub, running.broker.port
    player = {"homie": "5.0", "version": 1, "name": "Projector player", "type": "media-player",
              "nodes": {"player": {"properties": {
                  "state": {"datatype": "enum", "format": "idle,playing,paused"},
                  "volume": {"datatype": "integer", "format": "0:100", "settable": True}}}}}
    base = "homie/5/beamer-player"
    for topic, payload in ((f"{base}/$description", json.dumps(player)), (f"{base}/player/state", "idle"),
                           (f"{base}/player/volume", "20"), (f"{base}/$state", "ready")):
        await asyncio.to_thread(pub, port, topic, payload)
    await until(hub, lambda: (d := hub.registry.get("beamer-player")) is not None and d.info.driver == "homie",
                10, "the player as a plain Homie device")
    aiozc = loopback_zeroconf()
    try:
        await advertise(aiozc, "beamer-player", txt={
            "txtvers": "1", "id": "beamer-player", "topic": base, "type": "media-player",
            "mac": "00:26:ab:00:00:42", "room": "Den"})
        projector = "projector-0026ab000042"
        await until(hub, lambda: hub.registry.get("beamer-player") is None
                    and (d := hub.registry.get(projector)) is not None and d.info.expose("media_volume"),
                    15, "the PJLink driver owns the player")
        assert hub.registry.get(projector).info.driver == "pjlink"
        # a later message on the broker does not bring the Homie device back
        await asyncio.to_thread(pub, port, f"{base}/$state", "ready")
        await until(hub, lambda: hub.registry.get(projector).state.values.get("media_volume") == 20, 10,
                    "the player's values on the projector")
        assert hub.registry.get("beamer-player") is None
    finally:
        await aiozc.async_close()


@pytest.mark.filterwarnings("ignore:Callback API version 1:DeprecationWarning")  # inside ebus-sdk
async def test_a_device_published_by_an_independent_homie_library_is_adopted_and_driven(running: RunningHub) -> None:
    """ebus-sdk's own Homie 5 Device (its paho thread, its description and set handling), no mDNS."""
    from ebus_sdk import homie as ebus

    hub, broker = running.hub, running.broker
    channels: dict[int, ebus.Property] = {}

    def apply(channel: int):  # the device's firmware: take the command, publish the new value
        return lambda payload: channels[channel].set_value(payload in ("true", True))

    dev = ebus.Device("ebus-relay", name="Ebus relay", type="relay",
                      mqtt_cfg={"host": broker.host, "port": broker.port}, homie_domain="homie")
    for i in (1, 2):
        node = ebus.Node(f"relay{i}", name=f"Channel {i}", device=dev)
        dev.add_node(node)
        channels[i] = ebus.Property("on", value=False, datatype=ebus.PropertyDatatype.BOOLEAN, settable=True,
                                    set_callback=apply(i), node=node, device=dev)
        node.add_property(channels[i])
    dev.start_mqtt_client()
    try:
        for _ in range(100):  # its client connects on its own thread
            if dev.is_connected():
                break
            await asyncio.sleep(0.05)
        dev.set_state(ebus.DeviceState.READY)
        dev.publish_nodes()
        await until(hub, lambda: (d := hub.registry.get("ebus-relay")) is not None and d.state.online
                    and d.state.values == {"relay1_on": False, "relay2_on": False}, 10, "the ebus device adopted")
        assert hub.registry.get("ebus-relay").info.name == "Ebus relay"
        async with aiohttp.ClientSession(headers=running.headers) as s:
            async with s.post(f"{running.url}/api/devices/ebus-relay/set", json={"relay1_on": True}) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["state"] == {"relay1_on": True, "relay2_on": False}
        assert channels[1].value() is True and channels[2].value() is False
    finally:
        await asyncio.to_thread(dev.stop)
    await until(hub, lambda: not hub.registry.get("ebus-relay").state.online, 10, "offline when it stops")
