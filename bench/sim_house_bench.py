"""Benchmark `firmware-sim house` (default house) and `firmware-sim fleet`: start-to-ready time and RSS.

Run inside the network namespace (mDNS stays on loopback):
    scripts/in-netns .venv/bin/python bench/sim_house_bench.py [--fleet 200] [--runs 3]
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware_sim.homie.fleet import fleet_specs  # noqa: E402
from firmware_sim.homie.house import load_house  # noqa: E402
from hub.broker import Broker  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(broker: Broker, args: list[str], ids: list[str], state: Path) -> tuple[float, float, float]:
    """Seconds from spawn to every `$state` = ready; RSS at ready and 5 s later."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe("homie/5/+/$state", qos=1)
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "firmware_sim.cli", *args, "--broker", broker.url, "--state-dir", str(state),
            env=env, stderr=asyncio.subprocess.DEVNULL)
        waiting = set(ids)
        try:
            async def wait_ready() -> None:
                async for m in client.messages:
                    if m.payload == b"ready":
                        waiting.discard(m.topic.value.split("/")[2])
                        if not waiting:
                            return
            await asyncio.wait_for(wait_ready(), 120)
            ready_s = time.monotonic() - t0
            rss_ready = rss_mib(proc.pid)
            await asyncio.sleep(5)  # a benchmark may sleep: let advertising and ticks settle
            rss_later = rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
    return ready_s, rss_ready, rss_later


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fleet", type=int, default=200, help="fleet size to measure too (0: skip)")
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "broker", embedded=False).start()
        try:
            ids = [s.id for s in load_house(None)]
            for run in range(opts.runs):
                ready, rss1, rss2 = await measure(broker, ["house"], ids, Path(tmp) / f"state{run}")
                print(f"house ({len(ids)} devices, mDNS on): ready in {ready:.2f} s, "
                      f"RSS {rss1:.1f} MiB at ready, {rss2:.1f} MiB 5 s later")
            if opts.fleet:
                ids = [s.id for s in fleet_specs(opts.fleet)]
                ready, rss1, rss2 = await measure(broker, ["fleet", "--count", str(opts.fleet), "--no-mdns"],
                                                  ids, Path(tmp) / "fleet")
                print(f"fleet ({opts.fleet} devices, no mDNS): ready in {ready:.2f} s, "
                      f"RSS {rss1:.1f} MiB at ready, {rss2:.1f} MiB 5 s later")
        finally:
            broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
