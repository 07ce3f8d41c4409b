"""The simulated house against a real Mosquitto, observed by an independent aiomqtt client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware_sim.homie.house import House, load_house, parse_house
from hub.broker import Broker
from tests.sim_support import observe

SMALL = """
[[device]]
id = "lamp"
name = "Test lamp"
type = "light"
room = "Lab"

[[device]]
id = "plug"
name = "Test plug"
type = "plug"
room = "Lab"
params = { load_w = 100.0 }

[[device]]
id = "heater"
name = "Test thermostat"
type = "thermostat"
room = "Lab"

[[device]]
id = "blind"
name = "Test blind"
type = "cover"
room = "Lab"
params = { speed = 10.0 }

[[device]]
id = "door"
name = "Test lock"
type = "lock"
room = "Lab"

[[device]]
id = "pir"
name = "Test motion"
type = "motion-sensor"
room = "Lab"

[[device]]
id = "contact"
name = "Test contact"
type = "contact-sensor"
room = "Lab"

[[device]]
id = "climate"
name = "Test climate"
type = "climate-sensor"
room = "Lab"
"""

EXPECTED = {
    "lamp": ("light", "light", {"on": ("boolean", None, True), "brightness": ("integer", "0:100", True),
                                "color-temperature": ("integer", "153:500", True), "color": ("color", "rgb", True)}),
    "plug": ("plug", "switch", {"on": ("boolean", None, True), "power": ("float", "0:", False),
                                "energy": ("float", "0:", False)}),
    "heater": ("thermostat", "thermostat", {
        "target-temperature": ("float", "5:30:0.5", True), "mode": ("enum", "off,heat,auto", True),
        "current-temperature": ("float", None, False), "heating": ("boolean", None, False)}),
    "blind": ("cover", "cover", {"position": ("integer", "0:100", True),
                                 "state": ("enum", "opening,closing,stopped,open,closed", False),
                                 "action": ("enum", "open,close,stop", True)}),
    "door": ("lock", "lock", {"locked": ("boolean", None, True),
                              "state": ("enum", "locked,unlocked,locking,unlocking,jammed", False),
                              "jammed": ("boolean", None, False)}),
    "pir": ("motion-sensor", "sensor", {"motion": ("boolean", None, False)}),
    "contact": ("contact-sensor", "sensor", {"open": ("boolean", None, False)}),
    "climate": ("climate-sensor", "sensor", {"temperature": ("float", None, False),
                                             "humidity": ("float", "0:100", False),
                                             "battery": ("integer", "0:100", False)}),
}


@pytest.fixture
async def house(broker: Broker, tmp_path: Path) -> AsyncIterator[House]:
    h = House(parse_house(SMALL), broker_url=broker.url, state_dir=tmp_path / "state", speed=5, mdns=False)
    await h.start()
    try:
        await h.wait_ready(15)
        yield h
    finally:
        await h.stop()


def test_default_house_has_the_promised_devices() -> None:
    specs = load_house(None)
    kinds = [s.type for s in specs]
    assert 11 <= len(specs) <= 14
    assert 3 <= kinds.count("light") <= 4 and kinds.count("plug") == 2 and kinds.count("climate-sensor") == 2
    for kind in ("thermostat", "motion-sensor", "contact-sensor", "cover", "lock"):
        assert kinds.count(kind) == 1
    assert {"Living room", "Kitchen", "Bedroom", "Hallway", "Office"} <= {s.room for s in specs}


def test_bad_house_files_give_clear_errors() -> None:
    with pytest.raises(ValueError, match="not valid TOML"):
        parse_house("[[device]\n")
    with pytest.raises(ValueError, match="unknown type"):
        parse_house('[[device]]\nid="a"\nname="A"\ntype="toaster"\n')
    with pytest.raises(ValueError, match="duplicate"):
        parse_house('[[device]]\nid="a"\nname="A"\ntype="light"\n[[device]]\nid="a"\nname="B"\ntype="light"\n')
    with pytest.raises(ValueError, match="Homie ids"):
        parse_house('[[device]]\nid="Bad_Id"\nname="A"\ntype="light"\n')


async def test_devices_are_ready_with_retained_descriptions_and_values(broker: Broker, house: House) -> None:
    async with observe(broker.host, broker.port, "homie/5/#") as obs:  # subscribes after: retained only
        for device_id, (kind, node_id, props) in EXPECTED.items():
            await obs.wait_for(f"homie/5/{device_id}/$state", "ready")
            doc = await obs.json(f"homie/5/{device_id}/$description")
            assert doc["homie"] == "5.0" and doc["type"] == kind and isinstance(doc["version"], int)
            declared = doc["nodes"][node_id]["properties"]
            assert set(declared) == set(props)
            for prop_id, (datatype, fmt, settable) in props.items():
                assert declared[prop_id]["datatype"] == datatype
                assert declared[prop_id].get("format") == fmt
                assert declared[prop_id]["settable"] is settable
                if declared[prop_id]["retained"]:
                    await obs.wait_for(f"homie/5/{device_id}/{node_id}/{prop_id}")
        assert (await obs.json("homie/5/blind/$description"))["nodes"]["cover"]["properties"]["action"][
            "retained"] is False
        assert (await obs.json("homie/5/lamp/$description"))["nodes"]["light"]["properties"][
            "color-temperature"]["unit"] == "mired"
        assert await obs.wait_for("homie/5/lamp/light/color") == b"rgb,255,255,255"


async def test_set_changes_the_value_and_junk_is_ignored(broker: Broker, house: House) -> None:
    async with observe(broker.host, broker.port, "homie/5/lamp/#", "homie/5/heater/#") as obs:
        await obs.wait_for("homie/5/lamp/light/brightness", "100")
        await obs.publish("homie/5/lamp/light/brightness/set", "40")
        await obs.wait_for("homie/5/lamp/light/brightness", "40")
        for junk in (b"4000", b"-3", b"forty", b"\xff\x00\xfe", b"", b"1e9999"):
            await obs.publish("homie/5/lamp/light/brightness/set", junk)
        await obs.publish("homie/5/lamp/light/on/set", "yes")
        await obs.publish("homie/5/lamp/light/color/set", "300,0,0")
        await obs.publish("homie/5/lamp/light/missing/set", "1")
        await obs.publish("homie/5/lamp/nope/brightness/set", "1")
        await obs.publish("homie/5/lamp/$state/set", "lost")
        # still alive and still answering: a valid command after the junk goes through
        await obs.publish("homie/5/lamp/light/color/set", "10,20,30")
        await obs.wait_for("homie/5/lamp/light/color", "rgb,10,20,30")
        assert obs.latest["homie/5/lamp/light/brightness"] == b"40"
        assert obs.latest["homie/5/lamp/$state"] == b"ready"
        await obs.publish("homie/5/heater/thermostat/target-temperature/set", "23.2")
        # $target repeats the command byte for byte; the value is the setpoint rounded to the 0.5 step
        await obs.wait_for("homie/5/heater/thermostat/target-temperature/$target", "23.2")
        await obs.wait_for("homie/5/heater/thermostat/target-temperature", "23.0")
        await obs.wait_for("homie/5/heater/thermostat/heating", "true")


async def test_cover_publishes_target_then_moves_to_it(broker: Broker, house: House) -> None:
    async with observe(broker.host, broker.port, "homie/5/blind/cover/#") as obs:
        await obs.wait_for("homie/5/blind/cover/state", "closed")
        start = len(obs.history)
        await obs.publish("homie/5/blind/cover/action/set", "open")
        await obs.wait_for("homie/5/blind/cover/state", "open", timeout=20)
        seen = obs.history[start:]
        topics = [t for t, _, _ in seen]
        assert topics.index("homie/5/blind/cover/position/$target") < topics.index("homie/5/blind/cover/position")
        positions = [int(p) for t, p, _ in seen if t == "homie/5/blind/cover/position"]
        assert positions == sorted(positions) and positions[-1] == 100 and len(positions) >= 5
        assert (b"opening" in [p for t, p, _ in seen if t == "homie/5/blind/cover/state"])
        action_echo = [r for t, _, r in seen if t == "homie/5/blind/cover/action"]
        assert action_echo == [False]  # the action property is not retained


async def test_target_properties_publish_target_from_the_start(broker: Broker, house: House) -> None:
    """Homie 5 "Target attribute": used for every update of the property, the initial one too."""
    async with observe(broker.host, broker.port, "homie/5/blind/cover/position/$target",
                       "homie/5/heater/thermostat/target-temperature/$target", "homie/5/door/#") as obs:
        assert await obs.wait_for("homie/5/blind/cover/position/$target") == b"0"
        assert await obs.wait_for("homie/5/door/lock/locked/$target") == b"true"
        assert await obs.wait_for("homie/5/heater/thermostat/target-temperature/$target") == b"21.0"
        await obs.publish("homie/5/door/lock/locked/set", "true")  # already locked: still confirmed
        assert await obs.wait_count("homie/5/door/lock/locked/$target", 2) == b"true"
        assert await obs.wait_count("homie/5/door/lock/locked", 2) == b"true"


async def test_lock_jam_fault_refuses_commands(broker: Broker, house: House) -> None:
    async with observe(broker.host, broker.port, "homie/5/door/#") as obs:
        await obs.wait_for("homie/5/door/lock/state", "locked")
        await obs.publish("firmware-sim/door/fault", json.dumps({"jam": True}))
        await obs.wait_for("homie/5/door/lock/jammed", "true")
        await obs.wait_for("homie/5/door/lock/state", "jammed")
        start = len(obs.history)
        await obs.publish("homie/5/door/lock/locked/set", "false")
        await obs.wait_for("homie/5/door/lock/locked", "true")
        await obs.publish("firmware-sim/door/fault", json.dumps({"jam": False}))
        await obs.wait_for("homie/5/door/lock/jammed", "false")
        assert all(p != b"false" for t, p, _ in obs.history[start:] if t == "homie/5/door/lock/locked")
        await obs.publish("homie/5/door/lock/locked/set", "false")
        await obs.wait_for("homie/5/door/lock/state", "unlocked")
        assert obs.latest["homie/5/door/lock/locked"] == b"false"


async def test_garbage_fault_makes_a_device_send_junk(broker: Broker, house: House) -> None:
    async with observe(broker.host, broker.port, "homie/5/plug/#") as obs:
        await obs.wait_for("homie/5/plug/$state", "ready")
        await obs.publish("firmware-sim/plug/fault", b"{not json")  # ignored
        await obs.publish("firmware-sim/plug/fault", json.dumps({"garbage": "switch/power", "payload": "lots"}))
        await obs.wait_for("homie/5/plug/switch/power", "lots")
        await obs.publish("homie/5/plug/switch/on/set", "true")
        await obs.wait_for("homie/5/plug/switch/power", lambda p: p != b"lots" and 80 < float(p) < 120)


async def test_clean_stop_and_state_survive_restart(broker: Broker, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = House(parse_house(SMALL), broker_url=broker.url, state_dir=state, mdns=False)
    await first.start()
    try:
        await first.wait_ready(15)
        async with observe(broker.host, broker.port, "homie/5/#") as obs:
            await obs.publish("homie/5/lamp/light/brightness/set", "33")
            await obs.publish("homie/5/blind/cover/position/set", "0")
            await obs.publish("homie/5/heater/thermostat/mode/set", "off")
            await obs.wait_for("homie/5/lamp/light/brightness", "33")
            await obs.wait_for("homie/5/heater/thermostat/mode", "off")
    finally:
        await first.stop()
    async with observe(broker.host, broker.port, "homie/5/+/$state") as obs:
        for device_id in EXPECTED:
            await obs.wait_for(f"homie/5/{device_id}/$state", "disconnected")
    assert json.loads((state / "lamp.json").read_text())["light/brightness"] == 33

    await asyncio.to_thread(broker.stop)  # a fresh broker has no retained messages: what comes back comes from disk
    await asyncio.to_thread(broker.start)
    second = House(parse_house(SMALL), broker_url=broker.url, state_dir=state, mdns=False)
    await second.start()
    try:
        async with observe(broker.host, broker.port, "homie/5/#") as obs:
            await obs.wait_for("homie/5/lamp/$state", "ready")
            assert await obs.wait_for("homie/5/lamp/light/brightness") == b"33"
            assert await obs.wait_for("homie/5/heater/thermostat/mode") == b"off"
    finally:
        await second.stop()


async def test_reconnects_and_republishes_after_broker_restart(broker: Broker, house: House) -> None:
    await asyncio.to_thread(broker.kill)
    await asyncio.to_thread(broker.start)  # same port, no retained state left
    async with observe(broker.host, broker.port, "homie/5/#") as obs:
        for device_id in EXPECTED:
            await obs.wait_for(f"homie/5/{device_id}/$state", "ready", timeout=30)
        await obs.json("homie/5/door/$description")
        await obs.wait_for("homie/5/lamp/light/on", "false")


async def _wait_process_ready(proc: asyncio.subprocess.Process, obs, ids) -> None:
    for device_id in ids:
        await obs.wait_for(f"homie/5/{device_id}/$state", "ready", timeout=30)


async def test_sigkill_leaves_lost_and_sigterm_leaves_disconnected(broker: Broker, tmp_path: Path) -> None:
    house_file = tmp_path / "small.toml"
    house_file.write_text(SMALL)
    cmd = [sys.executable, "-m", "firmware_sim.cli", "house", "--file", str(house_file), "--broker", broker.url,
           "--state-dir", str(tmp_path / "state"), "--no-mdns"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    async with observe(broker.host, broker.port, "homie/5/+/$state") as obs:
        proc = await asyncio.create_subprocess_exec(*cmd, env=env, stderr=asyncio.subprocess.DEVNULL)
        try:
            await _wait_process_ready(proc, obs, EXPECTED)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            for device_id in EXPECTED:  # the broker sends each connection's last will
                await obs.wait_for(f"homie/5/{device_id}/$state", "lost", timeout=30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

        proc = await asyncio.create_subprocess_exec(*cmd, env=env, stderr=asyncio.subprocess.DEVNULL)
        try:
            await _wait_process_ready(proc, obs, EXPECTED)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
            for device_id in EXPECTED:
                await obs.wait_for(f"homie/5/{device_id}/$state", "disconnected")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_devices_started_before_the_broker_connect_when_it_comes(broker: Broker, tmp_path: Path) -> None:
    await asyncio.to_thread(broker.stop)
    house = House(parse_house(SMALL), broker_url=broker.url, state_dir=tmp_path, mdns=False)
    await house.start()
    try:
        assert not any(d.ready.is_set() for d in house.devices)
        await asyncio.to_thread(broker.start)  # same port
        await house.wait_ready(30)
        async with observe(broker.host, broker.port, "homie/5/+/$state") as obs:
            for device_id in EXPECTED:
                await obs.wait_for(f"homie/5/{device_id}/$state", "ready")
    finally:
        await house.stop()
