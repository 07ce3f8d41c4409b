"""Benchmarks of the foundation; prints numbers, asserts nothing. Run inside scripts/in-netns:

    scripts/in-netns .venv/bin/python bench/roundtrip.py [--commands 1000]

1. command round trip: REST set -> device confirmed -> WebSocket event, p50/p99, next to the raw
   MQTT round trip through the same broker to the same simulated device (the floor);
2. time from a device's mDNS announcement to its appearance in /api/devices;
3. hub start to /api/health 200; hub RSS with the default house;
4. the hub's MQTT ingest rate (device value messages applied per second).
Everything runs on loopback in the namespace; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import aiomqtt
import paho.mqtt.client as paho

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.broker import Broker, free_port  # noqa: E402
from hub.accounts import create_token, create_user  # noqa: E402
from tests.homie_peer import HomiePeer, advertise, loopback_zeroconf  # noqa: E402

ONE_LIGHT = '[[device]]\nid = "bench-light"\nname = "Bench light"\ntype = "light"\nroom = "Lab"\n'
DEADLINE = 240.0  # seconds for the whole run, whatever happens


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def show(name: str, xs: list[float]) -> None:
    print(f"  {name:<44} n={len(xs):5d}  p50 {statistics.median(xs):7.2f} ms  p99 {pct(xs, 99):7.2f} ms"
          f"  max {max(xs):7.2f} ms")


class HubProcess:
    def __init__(self, tmp: Path, broker: Broker, name: str = "hub") -> None:
        self.port = free_port()
        self.data = tmp / name
        create_user(self.data / "hub.db", "bench", "bench-password", "owner")
        self.token = create_token(self.data / "hub.db", "bench")
        self.env = {**os.environ, "HUB_MQTT_URL": broker.url, "HUB_HTTP_HOST": "127.0.0.1",
                    "HUB_HTTP_PORT": str(self.port), "HUB_DISCOVERY_INTERFACES": "127.0.0.1",
                    "HUB_LOG_LEVEL": "warning"}
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    async def start(self, config: Path | None = None) -> float:
        """Start `hub run`; returns seconds until /api/health answered 200."""
        t0 = time.perf_counter()
        extra = ["--config", str(config)] if config else []
        self.proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "--data", str(self.data), *extra],
                                     env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.data / "log", "wb"))
        async with aiohttp.ClientSession() as s:
            for _ in range(2000):  # bounded: at most ~20 s
                try:
                    async with s.get(f"{self.url}/api/health") as r:
                        if r.status == 200:
                            return time.perf_counter() - t0
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.01)
        raise RuntimeError("hub did not answer /api/health")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(15)


async def wait_devices(url: str, token: str, ids: set[str], timeout: float) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            async with s.get(f"{url}/api/devices") as r:
                devs = await r.json()
            if ids <= {d["id"] for d in devs if d["online"]}:
                return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"devices {ids} not online")


async def raw_floor(broker: Broker, device: str, n: int) -> list[float]:
    """Raw MQTT to the device through the same broker: /set, then wait for its echo."""
    raw: list[float] = []
    async with aiomqtt.Client("127.0.0.1", broker.port, socket_options=[(6, 1, 1)]) as c:
        await c.subscribe(f"homie/5/{device}/light/brightness", qos=1)
        msgs = aiter(c.messages)
        await asyncio.wait_for(anext(msgs), 5)  # the retained value
        for i in range(n):
            want = str(10 + i % 80)
            t0 = time.perf_counter()
            await c.publish(f"homie/5/{device}/light/brightness/set", want, qos=1)
            while (await asyncio.wait_for(anext(msgs), 5)).payload.decode() != want:
                pass
            raw.append((time.perf_counter() - t0) * 1000)
    return raw


async def bench_roundtrip(hub: HubProcess, broker: Broker, n: int) -> None:
    print(f"\n1. command round trip ({n} commands each, brightness alternating)")
    print("  a) to the simulated light (its own process; it saves its state to disk before it echoes)")
    show("raw MQTT: /set -> device echo (floor)", await raw_floor(broker, "bench-light", n))
    await rest_and_ws(hub, "bench-light", n)
    print("  b) to an echo-only Homie device in the benchmark process (no disk): the hub's own cost")
    aiozc = loopback_zeroconf()
    peer = HomiePeer(broker.port, "bench-echo")
    await peer.start()
    await advertise(aiozc, "bench-echo")
    try:
        await wait_devices(hub.url, hub.token, {"bench-echo"}, 20)
        show("raw MQTT: /set -> device echo (floor)", await raw_floor(broker, "bench-echo", n))
        await rest_and_ws(hub, "bench-echo", n)
    finally:
        await peer.stop()
        await aiozc.async_close()


async def rest_and_ws(hub: HubProcess, device: str, n: int) -> None:
    rest: list[float] = []
    ws_lat: list[float] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {hub.token}"}) as s:
        async with s.ws_connect(f"{hub.url}/api/ws") as ws:
            await ws.receive_json()
            for i in range(n):
                want = 10 + (i + 1) % 80
                t0 = time.perf_counter()
                async with s.post(f"{hub.url}/api/devices/{device}/set", json={"brightness": want}) as r:
                    assert r.status == 200, await r.text()
                    await r.read()
                t1 = time.perf_counter()
                while True:
                    m = await asyncio.wait_for(ws.receive_json(), 5)
                    if m.get("type") == "state" and m["id"] == device and m["state"].get("brightness") == want:
                        break
                t2 = time.perf_counter()
                rest.append((t1 - t0) * 1000)
                ws_lat.append((t2 - t0) * 1000)
    show("REST set -> 200 (device confirmed)", rest)
    show("REST set -> WebSocket state event", ws_lat)


async def bench_discovery(hub: HubProcess, broker: Broker, rounds: int = 5) -> None:
    print(f"\n2. mDNS announcement -> in /api/devices ({rounds} new devices)")
    aiozc = loopback_zeroconf()
    probe: list[float] = []
    seen: list[float] = []
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {hub.token}"}) as s:
            async with s.ws_connect(f"{hub.url}/api/ws") as ws:
                await ws.receive_json()
                for i in range(rounds):
                    dev_id = f"disc-{i}"
                    peer = HomiePeer(broker.port, dev_id)
                    await peer.start()
                    t0 = time.perf_counter()
                    await advertise(aiozc, dev_id)  # returns after probing, when announcing
                    t1 = time.perf_counter()
                    while True:
                        m = await asyncio.wait_for(ws.receive_json(), 15)
                        if m.get("type") == "device_added" and m["device"]["id"] == dev_id:
                            break
                    t2 = time.perf_counter()
                    probe.append((t1 - t0) * 1000)
                    seen.append((t2 - t1) * 1000)
                    await peer.stop()
    finally:
        await aiozc.async_close()
    show("RFC 6762 probing before the announcement", probe)
    show("announcement -> device_added on the WebSocket", seen)


def flood(port: int, device: str, count: int) -> float:
    """Publish `count` QoS 0 value messages as fast as paho can; returns seconds spent."""
    c = paho.Client(paho.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", port)
    c.loop_start()
    t0 = time.perf_counter()
    for i in range(count):
        c.publish(f"homie/5/{device}/light/brightness", str(i % 100), qos=0)
    info = c.publish(f"homie/5/{device}/light/power", "42.0", qos=1)
    info.wait_for_publish(30)
    dt = time.perf_counter() - t0
    c.loop_stop()
    c.disconnect()
    return dt


RAW_RECEIVER = """
import asyncio, socket, sys, time, aiomqtt
async def main(port, count):
    async with aiomqtt.Client("127.0.0.1", port, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]) as c:
        await c.subscribe("homie/5/raw/#", qos=1)
        print("ready", flush=True)
        n, t0 = 0, None
        async for m in c.messages:
            t0 = t0 or time.perf_counter()
            n += 1
            if m.topic.value.endswith("/power"):
                break
        print(n, time.perf_counter() - t0, flush=True)
asyncio.run(asyncio.wait_for(main(int(sys.argv[1]), int(sys.argv[2])), 120))
"""


async def bench_raw_receiver(broker: Broker, count: int) -> None:
    """The same flood into a bare aiomqtt subscriber in its own process: the reference."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", RAW_RECEIVER, str(broker.port), str(count),
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 10)
    pub_s = await asyncio.to_thread(flood, broker.port, "raw", count)
    n, secs = (await asyncio.wait_for(proc.stdout.readline(), 120)).split()
    await proc.wait()
    print(f"  reference, bare aiomqtt subscriber process: {int(n)} messages, publisher {pub_s:.2f} s, "
          f"received in {float(secs):.2f} s -> {int(n) / float(secs):,.0f} msg/s")


async def bench_ingest(hub: HubProcess, broker: Broker, count: int) -> None:
    print(f"\n4. hub ingest: {count} device value messages (QoS 0) from a separate publisher")
    aiozc = loopback_zeroconf()
    peer = HomiePeer(broker.port, "ingest")
    await peer.start()
    await advertise(aiozc, "ingest")
    try:
        await wait_devices(hub.url, hub.token, {"ingest"}, 20)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {hub.token}"}) as s:
            async with s.get(f"{hub.url}/api/health") as r:
                before = (await r.json())["mqtt_received"]
            t0 = time.perf_counter()
            pub_s = await asyncio.to_thread(flood, broker.port, "ingest", count)
            end = time.monotonic() + 60
            while time.monotonic() < end:
                async with s.get(f"{hub.url}/api/devices/ingest") as r:
                    if (await r.json())["state"].get("power") == 42.0:
                        break
                await asyncio.sleep(0.01)
            dt = time.perf_counter() - t0
            async with s.get(f"{hub.url}/api/health") as r:
                got = (await r.json())["mqtt_received"] - before
        print(f"  publisher took {pub_s:.2f} s; hub received {got} of {count + 1} and applied the last after "
              f"{dt:.2f} s -> {got / dt:,.0f} msg/s")
    finally:
        await peer.stop()
        await aiozc.async_close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commands", type=int, default=1000)
    ap.add_argument("--ingest", type=int, default=50_000)
    args = ap.parse_args()
    if os.environ.get("HUB_IN_NETNS") != "1":
        sys.exit("run inside scripts/in-netns")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Broker(tmp / "broker").start()
        procs: list[subprocess.Popen] = []
        hub = HubProcess(tmp, broker)
        try:
            startup = await hub.start()
            (tmp / "one.toml").write_text(ONE_LIGHT)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "firmware_sim.cli", "house", "--file", str(tmp / "one.toml"),
                 "--broker", broker.url, "--state-dir", str(tmp / "sim")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            await wait_devices(hub.url, hub.token, {"bench-light"}, 20)
            print(f"broker: {broker.kind}; python {sys.version.split()[0]}; {os.cpu_count()} cores; "
                  f"first hub start -> health 200 in {startup * 1000:.0f} ms")
            await bench_roundtrip(hub, broker, args.commands)
            await bench_discovery(hub, broker)
            hub.stop()

            print("\n3. start-up and memory")
            hub2 = HubProcess(tmp, broker, "hub2")
            starts = []
            for _ in range(3):
                starts.append(await hub2.start())
                hub2.stop()
            print(f"  hub start -> /api/health 200: {', '.join(f'{s * 1000:.0f} ms' for s in starts)}")
            await hub2.start()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "firmware_sim.cli", "house", "--broker", broker.url, "--state-dir",
                 str(tmp / "sim2")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {hub2.token}"}) as s:
                for _ in range(200):
                    async with s.get(f"{hub2.url}/api/health") as r:
                        h = await r.json()
                    if h["online"] >= 13:
                        break
                    await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            print(f"  hub RSS with the default house ({h['online']} devices online): {hub2.rss_mb():.1f} MB")
            await bench_ingest(hub2, broker, args.ingest)
            hub2.stop()
            await bench_raw_receiver(broker, args.ingest)
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
            hub.stop()
            broker.stop()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), DEADLINE))
