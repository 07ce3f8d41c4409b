"""Where the hub's memory goes; prints numbers, asserts nothing. Run inside scripts/in-netns:

    scripts/in-netns .venv/bin/python bench/memory.py [--fleet 1000]

1. what `hub run` imports, library by library in the order it loads them: resident memory
   (RSS) and Python objects (tracemalloc) each one adds, and `-X importtime` per package;
2. per device: a hub in this process, a `firmware-sim fleet` of N devices in another; the
   tracemalloc difference between before and all-online (and every mDNS record cached: the
   records arrive apart from MQTT, and a snapshot taken before they all did under-counts
   zeroconf by up to 6 KiB per device), by the package that allocated it, then by the line of
   our own code that made the allocation happen (the innermost hub/ or devices/ frame).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# `hub run`'s imports, in the order it loads them (cli -> config -> service -> core -> web -> drivers)
IMPORTS = ["asyncio", "pydantic", "hub.config", "paho.mqtt.client", "sqlite_utils", "zeroconf.asyncio",
           "aiohttp", "aiohttp.web", "hub.core", "hub.media", "hub.web.app", "hub.service",
           "devices.homie", "devices.pjlink"]
NEVER_IN_RUN = ["rich", "argon2", "amqtt", "aiomqtt"]  # the CLI's progress bars, login, demo broker

STEP = """
import json, sys, tracemalloc
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
tracemalloc.start()
out = [["interpreter", rss(), 0.0]]
for name in sys.argv[1:]:
    before = tracemalloc.get_traced_memory()[0]
    __import__(name)
    out.append([name, rss(), (tracemalloc.get_traced_memory()[0] - before) / 2**20])
import hub.driver
hub.driver.load_drivers()
out.append(["(loaded)", rss(), 0.0])
out.append([sorted({m.split(".")[0] for m in sys.modules}), 0, 0])
print(json.dumps(out))
"""


def import_breakdown() -> None:
    print("1. what `hub run` imports (RSS includes tracemalloc's own bookkeeping, ~+30 %)")
    out = json.loads(subprocess.run([sys.executable, "-c", STEP, *IMPORTS], capture_output=True, text=True,
                                    check=True, cwd=ROOT).stdout)
    *steps, (modules, _, _) = out
    prev = steps[0][1]
    print(f"  {'interpreter':<22} {prev:6.1f} MB")
    for name, rss, objects in steps[1:-1]:
        print(f"  {name:<22} +{rss - prev:5.1f} MB RSS  (+{objects:4.1f} MB Python objects)")
        prev = rss
    print(f"  total after loading the drivers: {steps[-1][1]:.1f} MB")
    loaded = [m for m in NEVER_IN_RUN if m in modules]
    print(f"  not imported by `hub run`: {', '.join(m for m in NEVER_IN_RUN if m not in loaded)}"
          + (f"; imported after all: {', '.join(loaded)}" if loaded else ""))
    times = subprocess.run([sys.executable, "-X", "importtime", "-c", "import hub.service, devices.pjlink"],
                           capture_output=True, text=True, check=True, cwd=ROOT).stderr
    per_package: Counter[str] = Counter()
    for line in times.splitlines()[1:]:
        parts = line.split("|")
        if len(parts) == 3 and parts[0].strip().startswith("import time:"):
            per_package[parts[2].strip().split(".")[0]] += int(parts[0].split(":")[1])
    total = sum(per_package.values())
    top = ", ".join(f"{name} {us / 1000:.0f}" for name, us in per_package.most_common(8))
    print(f"  -X importtime, self time per package (ms of {total / 1000:.0f}): {top}")


def package_of(filename: str) -> str:
    if "/site-packages/" in filename:
        return filename.split("/site-packages/")[1].split("/")[0]
    if str(ROOT) in filename:
        return "/".join(Path(filename).relative_to(ROOT).parts[:2])
    if filename.endswith("selector_events.py"):
        return "zeroconf (records parsed in its datagram callback)"
    return "stdlib " + Path(filename).name


DEPTH = 8  # frames kept per allocation: enough to reach our code from inside a library (deeper slows the hub)


def is_ours(filename: str) -> bool:
    return filename.startswith(str(ROOT)) and "/site-packages/" not in filename and "/bench/" not in filename


async def mdns_settled(hub, count: int, deadline: float) -> int:
    """Wait (bounded) until zeroconf caches a service record per device and no resolve is running."""
    from zeroconf import DNSService

    srv = 0
    while time.monotonic() < deadline:
        cache = hub.discovery.aiozc.zeroconf.cache.cache
        srv = sum(isinstance(r, DNSService) for records in cache.values() for r in records)
        if srv >= count and not hub.discovery._tasks:
            break
        await asyncio.sleep(0.2)
    return srv


async def per_device(count: int) -> None:
    from hub.broker import Broker, free_port
    from hub.config import HubConfig
    from hub.service import running_hub

    print(f"\n2. per device: a hub in this process, `firmware-sim fleet --count {count}` in another")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Broker(tmp / "broker").start()
        config = HubConfig(data_dir=tmp / "data", mqtt={"url": broker.url},
                           http={"host": "127.0.0.1", "port": free_port()}, discovery={"interfaces": ["127.0.0.1"]})
        fleet = None
        try:
            async with running_hub(config) as (hub, _):
                await hub.mqtt.wait_connected(10)
                tracemalloc.start(DEPTH)
                gc.collect()
                before = tracemalloc.take_snapshot()
                fleet = subprocess.Popen(
                    [sys.executable, "-m", "firmware_sim.cli", "fleet", "--count", str(count), "--broker",
                     broker.url, "--state-dir", str(tmp / "fleet"), "--keepalive", "30"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
                t0 = time.monotonic()
                end = t0 + 120
                while time.monotonic() < end and sum(d.state.online for d in hub.registry.devices.values()) < count:
                    await asyncio.sleep(0.2)
                t_online = time.monotonic() - t0
                srv = await mdns_settled(hub, count, time.monotonic() + 60)
                await hub.outbox.flush()
                await asyncio.sleep(2)  # the last WebSocket/MQTT work settles
                gc.collect()
                after = tracemalloc.take_snapshot()
                tracemalloc.stop()
                online = sum(d.state.online for d in hub.registry.devices.values())
                by_package: Counter[str] = Counter()
                by_line: Counter[str] = Counter()
                for stat in after.compare_to(before, "traceback"):
                    frames = list(stat.traceback)  # oldest first: the allocation itself is the last
                    by_package[package_of(frames[-1].filename)] += stat.size_diff
                    ours = [f for f in frames if is_ours(f.filename)]
                    where = f"{Path(ours[-1].filename).relative_to(ROOT)}:{ours[-1].lineno}" if ours else "(no frame of ours)"
                    by_line[where] += stat.size_diff
                total = sum(by_package.values())
                n = max(online, 1)
                print(f"  {online} devices online after {t_online:.1f} s, {srv} mDNS services cached after "
                      f"{time.monotonic() - t0 - 2:.1f} s (tracemalloc slows the hub several times)")
                if srv < count:
                    print(f"  NOTE: only {srv} of {count} devices' mDNS records arrived (the slowed hub lost part of "
                          "the burst): zeroconf is under-counted in this run")
                print(f"  Python objects grew {total / 2**20:.1f} MB "
                      f"= {total / n / 1024:.1f} KiB per device, of which:")
                for name, size in by_package.most_common(8):
                    print(f"    {name:<52} {size / n / 1024:6.2f} KiB per device")
                print("  by the line of our code that made the allocation (zeroconf's cache fills from its own "
                      "socket callback: no frame of ours)")
                for name, size in by_line.most_common(12):
                    print(f"    {name:<52} {size / n / 1024:6.2f} KiB per device")
        finally:
            if fleet is not None:
                fleet.terminate()
                fleet.wait(30)
            broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fleet", type=int, default=1000)
    args = ap.parse_args()
    if os.environ.get("HUB_IN_NETNS") != "1":
        sys.exit("run inside scripts/in-netns")
    import_breakdown()
    if args.fleet:
        asyncio.run(asyncio.wait_for(per_device(args.fleet), 240))


if __name__ == "__main__":
    main()
