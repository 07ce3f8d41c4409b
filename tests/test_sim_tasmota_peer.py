"""The Tasmota simulator on a real Mosquitto, discovered and commanded by hatasmota (its own venv)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.common.net import make_zeroconf, mqtt_service_info
from hub.broker import Broker
from tests.sim_support import observe

ROOT = Path(__file__).resolve().parents[1]
PY313 = Path(os.environ.get("HUB_PY313_VENV", ROOT / ".venv313")) / "bin" / "python"
RUNNER = Path(__file__).with_name("tasmota_peer_runner.py")
PLUG, DIMMER = "5CCF7F0A1B01", "5CCF7F0A1B02"


class Peer:
    """hatasmota in a Python 3.13 process, one JSON command and reply per line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def call(self, op: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"op": op, **kw}) + "\n").encode())
        await self.proc.stdin.drain()
        reply = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 40))
        assert reply["ok"], reply
        return reply


@pytest.fixture
async def hatasmota(broker: Broker) -> AsyncIterator[Peer]:
    if not PY313.exists():
        pytest.fail(f"the peers' venv is missing ({PY313}); create it with: make peers313")
    proc = await asyncio.create_subprocess_exec(
        str(PY313), str(RUNNER), json.dumps({"host": broker.host, "port": broker.port}),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert json.loads(line) == {"ready": True}
    yield Peer(proc)
    proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def simulator(broker: Broker, model: str, *extra: str) -> asyncio.subprocess.Process:
    """`firmware-sim tasmota` as its own process (so a test can kill it like a pulled plug)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_sim.cli", "tasmota", "--model", model, "--broker", broker.url,
        "--discovery-delay", "0", "--teleperiod", "5", "--speed", "10", *extra,  # later options win
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.startswith(b"tasmota "), line
    return proc


@pytest.fixture
async def sims(broker: Broker) -> AsyncIterator[dict[str, asyncio.subprocess.Process]]:
    procs = {"plug2": await simulator(broker, "plug2"), "dimmer": await simulator(broker, "dimmer")}
    yield procs
    for proc in procs.values():
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 15)


async def test_hatasmota_discovers_and_commands_both_devices(broker: Broker, sims: dict, hatasmota: Peer) -> None:
    found = await hatasmota.call("devices", count=2, entities=3)
    assert found["devices"][PLUG]["md"] == "Generic" and found["devices"][PLUG]["name"] == "Tasmota Plug"
    assert found["devices"][DIMMER]["sw"] == "14.3.0"
    assert {f"{PLUG}/switch/0", f"{PLUG}/switch/1", f"{DIMMER}/light/0"} <= set(found["entities"])
    await hatasmota.call("wait_available", mac=PLUG, value=True)
    await hatasmota.call("wait_available", mac=DIMMER, value=True)

    async with observe(broker.host, broker.port, "stat/#") as seen:
        await hatasmota.call("set_relay", key=f"{PLUG}/switch/1", on=True)
        await hatasmota.call("wait_state", key=f"{PLUG}/switch/1", state={"on": True})
        assert await seen.wait_for("stat/tasmota_0A1B01/POWER2", "ON")
        await hatasmota.call("set_relay", key=f"{PLUG}/switch/1", on=False)
        await hatasmota.call("wait_state", key=f"{PLUG}/switch/1", state={"on": False})

        await hatasmota.call("set_light", key=f"{DIMMER}/light/0", on=True, attributes={"brightness": 40})
        got = await hatasmota.call("wait_state", key=f"{DIMMER}/light/0", state={"on": True, "brightness": 40})
        assert got["state"]["brightness"] == 40
        await hatasmota.call("set_light", key=f"{DIMMER}/light/0", on=False)
        await hatasmota.call("wait_state", key=f"{DIMMER}/light/0", state={"on": False})


async def test_hatasmota_reads_the_energy_sensor(sims: dict, hatasmota: Peer) -> None:
    await hatasmota.call("devices", count=2, entities=3)
    await hatasmota.call("set_relay", key=f"{PLUG}/switch/0", on=True)
    await hatasmota.call("wait_state", key=f"{PLUG}/switch/0", state={"on": True})
    power = await hatasmota.call("wait_sensor", key=f"{PLUG}/ENERGY/Power", value=60)
    assert power["value"] == 60
    voltage = await hatasmota.call("wait_sensor", key=f"{PLUG}/ENERGY/Voltage")
    assert voltage["value"] == 230
    # hatasmota's status sensors poll `Status 2`, `Status 5` and `Status 11` and read the answers
    version = await hatasmota.call("wait_sensor", key=f"{PLUG}/status/status_version")
    assert version["value"] == "14.3.0(tasmota)"
    assert (await hatasmota.call("wait_sensor", key=f"{PLUG}/status/status_ssid"))["value"] == "house"
    assert (await hatasmota.call("wait_sensor", key=f"{PLUG}/status/status_signal"))["value"] == -58


async def test_unclean_death_leaves_lwt_offline(broker: Broker, sims: dict, hatasmota: Peer) -> None:
    await hatasmota.call("devices", count=2)
    await hatasmota.call("wait_available", mac=DIMMER, value=True)
    sims["dimmer"].send_signal(signal.SIGKILL)  # no DISCONNECT: the broker sends the will
    await sims["dimmer"].wait()
    await hatasmota.call("wait_available", mac=DIMMER, value=False)
    async with observe(broker.host, broker.port, "tele/tasmota_0A1B02/LWT") as seen:
        assert await seen.wait_for("tele/tasmota_0A1B02/LWT", "Offline")  # retained


async def test_garbage_commands_get_device_answers_and_never_kill_it(broker: Broker, sims: dict) -> None:
    async with observe(broker.host, broker.port, "stat/tasmota_0A1B01/#", "tele/tasmota_0A1B01/LWT") as obs:
        await obs.wait_for("tele/tasmota_0A1B01/LWT", "Online")
        await obs.publish("cmnd/tasmota_0A1B01/FROBNICATE", "1")
        assert json.loads(await obs.wait_for("stat/tasmota_0A1B01/RESULT")) == {"Command": "Unknown"}
        await obs.publish("cmnd/tasmota_0A1B01/POWER2", b"\xff\xfe\x00garbage")
        assert json.loads(await obs.wait_for("stat/tasmota_0A1B01/RESULT",
                                             lambda p: b"POWER2" in p)) == {"POWER2": "OFF"}  # a query
        await obs.publish("cmnd/tasmota_0A1B01/Status", "banana")
        assert "Status" in json.loads(await obs.wait_for("stat/tasmota_0A1B01/STATUS"))
        await obs.publish("cmnd/tasmota_0A1B01/Status", "42")
        await obs.wait_for("stat/tasmota_0A1B01/RESULT", '{"Command":"Error"}')
        await obs.publish("cmnd/tasmota_0A1B01/POWER9", "ON")
        await obs.wait_for("stat/tasmota_0A1B01/RESULT", '{"Command":"Unknown"}')
        await obs.publish("cmnd/tasmota_0A1B01/Power1", "TOGGLE")
        await obs.wait_for("stat/tasmota_0A1B01/POWER1", "ON")
        await obs.publish("cmnd/tasmota_0A1B01/TelePeriod", "20")
        await obs.wait_for("stat/tasmota_0A1B01/RESULT", '{"TelePeriod":20}')
    assert sims["plug2"].returncode is None


async def test_full_topic_from_the_config_is_followed(broker: Broker) -> None:
    proc = await simulator(broker, "plug2", "--topic", "kitchen_plug")
    try:
        async with observe(broker.host, broker.port, "tasmota/discovery/+/config", "stat/kitchen_plug/#") as obs:
            config = json.loads(await obs.wait_for(f"tasmota/discovery/{PLUG}/config"))
            assert (config["t"], config["ft"], config["tp"]) == ("kitchen_plug", "%prefix%/%topic%/",
                                                                 ["cmnd", "stat", "tele"])
            await obs.publish("cmnd/kitchen_plug/POWER1", "")
            assert await obs.wait_for("stat/kitchen_plug/POWER1", "OFF")
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)


async def test_hatasmota_follows_a_custom_full_topic(broker: Broker, hatasmota: Peer) -> None:
    proc = await simulator(broker, "dimmer", "--full-topic", "%topic%/%prefix%/")
    try:
        await hatasmota.call("devices", count=1, entities=1)
        await hatasmota.call("wait_available", mac=DIMMER, value=True)
        async with observe(broker.host, broker.port, "tasmota_0A1B02/stat/#") as obs:
            await hatasmota.call("set_light", key=f"{DIMMER}/light/0", on=True, attributes={"brightness": 70})
            await hatasmota.call("wait_state", key=f"{DIMMER}/light/0", state={"on": True, "brightness": 70})
            assert json.loads(await obs.wait_for("tasmota_0A1B02/stat/RESULT"))["Dimmer"] == 70
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)


async def test_clean_stop_says_offline_too(broker: Broker) -> None:
    proc = await simulator(broker, "dimmer")
    async with observe(broker.host, broker.port, "tele/tasmota_0A1B02/LWT") as obs:
        await obs.wait_for("tele/tasmota_0A1B02/LWT", "Online")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        await obs.wait_for("tele/tasmota_0A1B02/LWT", "Offline")


async def test_finds_the_broker_by_mdns(broker: Broker) -> None:
    peer = make_zeroconf("127.0.0.1")
    info = mqtt_service_info("127.0.0.1", broker.port, name="Test hub broker")
    await peer.async_register_service(info)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_sim.cli", "tasmota", "--model", "dimmer", "--discovery-delay", "0",
        "--mdns-interface", "127.0.0.1", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.decode().split()[-1] == broker.url
        async with observe(broker.host, broker.port, "tele/tasmota_0A1B02/LWT") as obs:
            await obs.wait_for("tele/tasmota_0A1B02/LWT", "Online")
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        await peer.async_unregister_service(info)
        await peer.async_close()


async def test_teleperiod_command_starts_telemetry(broker: Broker) -> None:
    proc = await simulator(broker, "plug2", "--teleperiod", "0", "--speed", "100")  # no telemetry at all
    try:
        async with observe(broker.host, broker.port, "tele/tasmota_0A1B01/#", "stat/tasmota_0A1B01/RESULT") as obs:
            await obs.wait_for("tele/tasmota_0A1B01/LWT", "Online")
            assert obs.count("tele/tasmota_0A1B01/STATE") == 0
            await obs.publish("cmnd/tasmota_0A1B01/TelePeriod", "10")  # 0.1 s real at this speed
            await obs.wait_for("stat/tasmota_0A1B01/RESULT", '{"TelePeriod":10}')
            state = json.loads(await obs.wait_count("tele/tasmota_0A1B01/STATE", 2))
            assert state["POWER1"] == "OFF" and "Wifi" in state
            assert "ENERGY" in json.loads(await obs.wait_for("tele/tasmota_0A1B01/SENSOR"))
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
