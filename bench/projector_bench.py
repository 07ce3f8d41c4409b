"""The projector through the hub; prints numbers, asserts nothing. Run inside scripts/in-netns:

    scripts/in-netns .venv/bin/python bench/projector_bench.py [--commands 200]

- REST input change -> 200 (projector answered OK) and the state event, p50/p99;
- REST power on -> 200 (target accepted), and the projector reaching "on" -> WebSocket event
  (Class 2 UDP notification, no fast polling);
- TCP connections the projector accepted per 100 commands through the hub.
The simulated projector runs in this process; the hub is a separate `hub run` process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.roundtrip import HubProcess, show  # noqa: E402
from firmware_sim.projector import ProjectorSim  # noqa: E402
from firmware_sim.projector.model import ProjectorConfig  # noqa: E402
from hub.broker import Broker, free_port  # noqa: E402

PASSWORD = "bench-pw"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commands", type=int, default=200)
    args = ap.parse_args()
    if os.environ.get("HUB_IN_NETNS") != "1":
        sys.exit("run inside scripts/in-netns")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Broker(tmp / "broker").start()
        notify = free_port()
        hub = HubProcess(tmp, broker)
        hub.data.mkdir(parents=True, exist_ok=True)
        conf = hub.data / "hub.toml"
        conf.write_text(f'[drivers.pjlink]\nudp_host = "127.0.0.1"\nnotify_port = {notify}\n'
                        f'default_password = "{PASSWORD}"\n')
        sim = ProjectorSim(ProjectorConfig(name="Bench projector", warmup=2.0, cooldown=1.0),
                           port=free_port(), udp_port=free_port(), notify_port=notify, password=PASSWORD,
                           state_dir=tmp / "sim", mdns_interface="127.0.0.1", broker=broker.url)
        try:
            await sim.start()
            await hub.start(config=conf)
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {hub.token}"}) as s:
                device = None
                for _ in range(300):  # bounded: 30 s
                    async with s.get(f"{hub.url}/api/devices") as r:
                        devs = [x for x in await r.json() if x["driver"] == "pjlink" and x["online"]]
                    if devs:
                        device = devs[0]
                        break
                    await asyncio.sleep(0.1)
                assert device is not None, "projector not found"
                url = f"{hub.url}/api/devices/{device['id']}/set"
                on_at: list[float] = []
                sim.model.subscribe(lambda ch: on_at.append(time.perf_counter())
                                    if (ch.body, ch.value) == ("POWR", "1") else None)
                async with s.ws_connect(f"{hub.url}/api/ws", headers={"Authorization": f"Bearer {hub.token}"}) as ws:
                    await ws.receive_json()
                    t0 = time.perf_counter()
                    async with s.post(url, json={"power": True}) as r:
                        assert r.status == 200, await r.text()
                    t1 = time.perf_counter()
                    while True:
                        m = await asyncio.wait_for(ws.receive_json(), 30)
                        if m.get("type") == "state" and m["state"].get("power_state") == "on":
                            break
                    t2 = time.perf_counter()
                print(f"power on: REST 200 (target accepted) {1000 * (t1 - t0):.1f} ms; "
                      f"warm-up {2.0:.1f} s; 'on' on the WebSocket {1000 * (t2 - t0):.0f} ms after the command")
                if on_at:
                    print(f"  projector reached 'on' -> WebSocket event: {1000 * (t2 - on_at[-1]):.1f} ms")
                before = sim.connections_accepted
                rest: list[float] = []
                inputs = [v for v in next(e for e in device["exposes"] if e["name"] == "input")["values"]][:2]
                for i in range(args.commands):
                    t = time.perf_counter()
                    async with s.post(url, json={"input": inputs[i % 2]}) as r:
                        assert r.status == 200, await r.text()
                    rest.append((time.perf_counter() - t) * 1000)
                show(f"REST input change ({inputs[0]} <-> {inputs[1]})", rest)
                per100 = (sim.connections_accepted - before) * 100 / args.commands
                print(f"  TCP connections opened per 100 commands: {per100:.1f}")
        finally:
            hub.stop()
            await sim.stop()
            broker.stop()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), 180))
