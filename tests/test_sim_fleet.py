"""`firmware-sim fleet`: many generic devices, bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim.homie.fleet import MAX_COUNT, fleet_specs
from firmware_sim.homie.house import House
from hub.broker import Broker
from tests.sim_support import observe


def test_fleet_specs_are_bounded_and_valid() -> None:
    specs = fleet_specs(5, "load")
    assert [s.id for s in specs] == ["load-plug-0001", "load-sensor-0002", "load-plug-0003",
                                     "load-sensor-0004", "load-plug-0005"]
    assert {s.type for s in specs} == {"plug", "climate-sensor"}
    for bad in (0, MAX_COUNT + 1):
        with pytest.raises(ValueError):
            fleet_specs(bad)
    with pytest.raises(ValueError):
        fleet_specs(3, "Bad Prefix")


async def test_fleet_of_forty_comes_up_and_answers(broker: Broker, tmp_path: Path) -> None:
    specs = fleet_specs(40)
    fleet = House(specs, broker_url=broker.url, state_dir=tmp_path, mdns=False)
    await fleet.start()
    try:
        async with observe(broker.host, broker.port, "homie/5/+/$state", "homie/5/fleet-plug-0039/#") as obs:
            for spec in specs:
                await obs.wait_for(f"homie/5/{spec.id}/$state", "ready", timeout=30)
            await obs.publish("homie/5/fleet-plug-0039/switch/on/set", "true")
            await obs.wait_for("homie/5/fleet-plug-0039/switch/on", "true")
    finally:
        await fleet.stop()
