"""Benchmarks of the foundation; prints numbers, asserts nothing. Run inside scripts/in-netns:

    scripts/in-netns .venv/bin/python bench/roundtrip.py [--commands 1000]

1. command round trip: REST set -> device confirmed -> WebSocket event, p50/p99, next to the raw
   MQTT round trip through the same broker to the same simulated device (the floor);
2. time from a device's mDNS announcement to its appearance in /api/devices;
3. hub start to /api/health 200; hub RSS with the default house;
4. the hub's MQTT ingest rate (device value messages applied per second), next to a bare paho
   and a bare aiomqtt subscriber process fed the same flood;
5. a fleet of 1,000 simulated devices: from the last mDNS announcement (seen by an independent
   browser in this process) to all of them online in the API, and the hub's RSS with them;
then the summary table of issue 10, each row next to its floor or peer from this same run.
Everything runs on loopback in the namespace; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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
ROUNDS = 5  # the echo device's floor and REST commands alternate in this many rounds
DEADLINE = 480.0  # seconds for the whole run, whatever happens


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


ROWS: dict[str, tuple[float, float]] = {}  # summary: measure -> (value, floor or peer)


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
                    "HUB_LOG_LEVEL": "warning",
                    "HUB_INBOX": "false"}  # the bench's devices are the household's own (as in the demo)
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
            want = str(10 + i % 40)  # 10-49; REST commands use 50-89: a round never starts on the value it finds
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
    rest, ws_lat = await rest_and_ws(hub, "bench-light", n)
    show("REST set -> 200 (device confirmed)", rest)
    show("REST set -> WebSocket state event", ws_lat)
    print("  b) to an echo-only Homie device in a process of its own (no disk): the hub's own cost")
    echo = await asyncio.create_subprocess_exec(sys.executable, "-c", ECHO_DEVICE, str(broker.port), "bench-echo",
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                cwd=ROOT)
    assert echo.stdout is not None and echo.stdin is not None
    try:
        await asyncio.wait_for(echo.stdout.readline(), 20)
        await wait_devices(hub.url, hub.token, {"bench-echo"}, 20)
        # the floor and the hub in alternating rounds: a slow spell of the machine falls on both
        floor: list[float] = []
        rest: list[float] = []
        ws_lat: list[float] = []
        for _ in range(ROUNDS):
            floor += await raw_floor(broker, "bench-echo", n // ROUNDS)
            r, w = await rest_and_ws(hub, "bench-echo", n // ROUNDS)
            rest += r
            ws_lat += w
        print(f"  ({ROUNDS} alternating rounds of {n // ROUNDS} each)")
        show("raw MQTT: /set -> device echo (floor)", floor)
        show("REST set -> 200 (device confirmed)", rest)
        show("REST set -> WebSocket state event", ws_lat)
        ROWS["rest"] = (statistics.median(rest), statistics.median(floor))
        http = await http_floor(hub, n)
        show("HTTP: GET /api/health (the web stack's floor)", http)
        ROWS["http"] = (statistics.median(http), 0.0)
    finally:
        echo.stdin.close()
        await asyncio.wait_for(echo.wait(), 20)


async def http_floor(hub: HubProcess, n: int) -> list[float]:
    """A request the hub answers from memory: what aiohttp costs on both ends, without the hub."""
    out: list[float] = []
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            t0 = time.perf_counter()
            async with s.get(f"{hub.url}/api/health") as r:
                await r.read()
            out.append((time.perf_counter() - t0) * 1000)
    return out


ECHO_DEVICE = """
import asyncio, sys
from tests.homie_peer import HomiePeer, advertise, loopback_zeroconf
async def main(port, device):
    aiozc = loopback_zeroconf()
    peer = HomiePeer(port, device)
    await peer.start()
    await advertise(aiozc, device)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the bench closes stdin
    await peer.stop()
    await aiozc.async_close()
asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


async def rest_and_ws(hub: HubProcess, device: str, n: int) -> tuple[list[float], list[float]]:
    rest: list[float] = []
    ws_lat: list[float] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {hub.token}"}) as s:
        async with s.ws_connect(f"{hub.url}/api/ws") as ws:
            await ws.receive_json()
            for i in range(n):
                want = 50 + (i + 1) % 40
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
    return rest, ws_lat


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


def _packet(first: int, body: bytes) -> bytes:
    """An MQTT 3.1.1 packet: fixed header with the remaining-length varint, then the body."""
    n, length = len(body), b""
    while True:
        n, digit = n >> 7, n & 0x7F
        length += bytes([digit | (0x80 if n else 0)])
        if not n:
            return bytes([first]) + length + body


def _utf8(s: str) -> bytes:
    return len(s.encode()).to_bytes(2, "big") + s.encode()


def flood(port: int, device: str, count: int) -> float:
    """Send `count` QoS 0 value messages as one prebuilt stream on a raw socket, so the publisher
    costs next to nothing and the receiver is what is measured; then a QoS 1 marker (`power` =
    42.0). Returns seconds until the broker acknowledged the marker."""
    topic = f"homie/5/{device}/light/brightness"
    stream = b"".join(_packet(0x30, _utf8(topic) + str(i % 100).encode()) for i in range(count))
    marker = _packet(0x32, _utf8(f"homie/5/{device}/light/power") + b"\x00\x01" + b"42.0")
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(_packet(0x10, _utf8("MQTT") + b"\x04\x02\x00\x3c" + _utf8(f"flood-{device}")))
        if sock.recv(4) != b"\x20\x02\x00\x00":
            raise RuntimeError("broker refused the flood publisher")
        t0 = time.perf_counter()
        sock.sendall(stream + marker)
        ack = b""
        while len(ack) < 4:
            chunk = sock.recv(4 - len(ack))
            if not chunk:
                raise RuntimeError("broker closed the flood publisher")
            ack += chunk
        dt = time.perf_counter() - t0
        sock.sendall(b"\xe0\x00")  # DISCONNECT
    return dt


RAW_RECEIVER = """
import asyncio, socket, sys, time, aiomqtt
async def main(port, count):
    async with aiomqtt.Client("127.0.0.1", port, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]) as c:
        await c.subscribe("homie/5/raw/#", qos=1)
        print("ready", flush=True)
        n = 0
        async for m in c.messages:
            n += 1
            if m.topic.value.endswith("/power"):
                break
        print(n, time.monotonic(), flush=True)
asyncio.run(asyncio.wait_for(main(int(sys.argv[1]), int(sys.argv[2])), 120))
"""


PAHO_RECEIVER = """
import socket, sys, time, paho.mqtt.client as paho
port, count = int(sys.argv[1]), int(sys.argv[2])
state = {"n": 0, "t1": float("nan"), "done": False}
def on_message(c, u, m):
    state["n"] += 1
    if m.topic.endswith("/power"):
        state["t1"] = time.monotonic()
        state["done"] = True
def on_subscribe(c, u, mid, rc, props):
    print("ready", flush=True)
c = paho.Client(paho.CallbackAPIVersion.VERSION2)
c.on_message, c.on_subscribe = on_message, on_subscribe
c.connect("127.0.0.1", port)
c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
c.subscribe("homie/5/raw/#", qos=1)
end = time.monotonic() + 120
while not state["done"] and time.monotonic() < end:
    c.loop(1.0)
c.disconnect()
print(state["n"], state["t1"], flush=True)
"""


async def bench_raw_receiver(broker: Broker, count: int, kind: str = "aiomqtt") -> float:
    """The same flood into a bare subscriber in its own process: the reference. Returns msg/s.

    Every receiver is timed the same way: from the first byte of the flood to the last message
    in the receiver's hands (CLOCK_MONOTONIC is one clock for every process)."""
    script = RAW_RECEIVER if kind == "aiomqtt" else PAHO_RECEIVER
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(broker.port), str(count),
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 10)
    t0 = time.monotonic()
    pub_s = await asyncio.to_thread(flood, broker.port, "raw", count)
    n, t1 = (await asyncio.wait_for(proc.stdout.readline(), 120)).split()
    await proc.wait()
    secs = float(t1) - t0
    rate = int(n) / secs
    print(f"  reference, bare {kind} subscriber process: {int(n)} messages, publisher {pub_s:.2f} s, "
          f"all received after {secs:.2f} s -> {rate:,.0f} msg/s")
    return rate


async def bench_ingest(hub: HubProcess, broker: Broker, count: int) -> float:
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
            # The hub's own canonical state (`hub/ingest`, retained JSON) says when the last value
            # was applied: watched by an independent client, so nothing polls the hub meanwhile.
            retained, applied = threading.Event(), threading.Event()
            done_at: list[float] = []

            def on_state(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
                retained.set()
                if not applied.is_set() and json.loads(message.payload).get("power") == 42.0:
                    done_at.append(time.monotonic())
                    applied.set()

            watcher = paho.Client(paho.CallbackAPIVersion.VERSION2)
            watcher.on_message = on_state
            watcher.connect("127.0.0.1", broker.port or 0)
            watcher.subscribe("hub/ingest", qos=0)
            watcher.loop_start()
            try:
                await asyncio.to_thread(retained.wait, 10)  # the state before the flood, first
                t0 = time.monotonic()
                pub_s = await asyncio.to_thread(flood, broker.port, "ingest", count)
                await asyncio.to_thread(applied.wait, 60)
            finally:
                watcher.loop_stop()
                watcher.disconnect()
            dt = (done_at[0] if done_at else time.monotonic()) - t0
            async with s.get(f"{hub.url}/api/health") as r:
                got = (await r.json())["mqtt_received"] - before
        print(f"  publisher took {pub_s:.2f} s; hub received {got} of {count + 1} and applied the last after "
              f"{dt:.2f} s -> {got / dt:,.0f} msg/s")
        if got != count + 1:
            print(f"  LOST {count + 1 - got} messages")
        return got / dt
    finally:
        await peer.stop()
        await aiozc.async_close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def bare_python_rss() -> float:
    """RSS of an idle interpreter that imports asyncio: the floor any asyncio process pays."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import asyncio, sys; print('up', flush=True); sys.stdin.read()",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    await asyncio.wait_for(proc.stdout.readline(), 10)
    rss = rss_mb(proc.pid)
    proc.stdin.close()
    await asyncio.wait_for(proc.wait(), 10)
    return rss


async def health(hub: HubProcess) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{hub.url}/api/health") as r:
            return await r.json()


async def bench_fleet(tmp: Path, broker: Broker, count: int) -> None:
    """A fresh hub; `firmware-sim fleet --count N`; last announcement -> all N online in the API."""
    print(f"\n5. fleet of {count} devices (firmware-sim fleet, one MQTT connection and mDNS service each)")
    hub = HubProcess(tmp, broker, "hub-fleet")
    await hub.start()
    await asyncio.sleep(2)  # let start-up garbage settle before reading RSS
    ROWS["rss_idle"] = (hub.rss_mb(), await bare_python_rss())
    from zeroconf import ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser

    aiozc = loopback_zeroconf()
    announced: dict[str, float] = {}

    def on_change(zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Added and "fleet" in name.lower():
            announced.setdefault(name, time.perf_counter())

    browser = AsyncServiceBrowser(aiozc.zeroconf, ["_homie._tcp.local."], handlers=[on_change])
    # A device has announced itself when mDNS carries it and it said `$state` = ready (Homie 5):
    # an independent MQTT observer (paho, its own thread) notes when each one said so.
    ready: dict[str, float] = {}
    observer = paho.Client(paho.CallbackAPIVersion.VERSION2)
    observer.on_message = lambda c, u, m: (m.payload == b"ready" and ready.setdefault(m.topic, time.perf_counter()))
    observer.connect("127.0.0.1", broker.port or 0)
    observer.subscribe("homie/5/+/$state", qos=0)
    observer.loop_start()
    fleet = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim.cli", "fleet", "--count", str(count), "--broker", broker.url,
         "--state-dir", str(tmp / "fleet-state"), "--keepalive", "30"],
        stdout=subprocess.DEVNULL, stderr=open(tmp / "fleet.log", "wb"))
    t0 = time.perf_counter()
    try:
        online, t_all = 0, float("nan")
        end = time.monotonic() + 120
        while time.monotonic() < end:
            online = (await health(hub))["online"]
            if online >= count:
                t_all = time.perf_counter()
                break
            await asyncio.sleep(0.02)
        last_mdns = max(announced.values()) if announced else float("nan")
        last_ready = max(ready.values()) if ready else float("nan")
        last = max(last_mdns, last_ready)
        print(f"  independent observers: {len(announced)} mDNS announcements, the last {last_mdns - t0:.2f} s "
              f"after the fleet started; {len(ready)} `$state` ready, the last {last_ready - t0:.2f} s after")
        print(f"  hub had {online} online {t_all - t0:.2f} s after the fleet started")
        after = t_all - last
        print(f"  last announcement -> all {count} online in /api/health: {after:.2f} s")
        await asyncio.sleep(2)
        h = await health(hub)
        ROWS["rss_fleet"] = (hub.rss_mb(), ROWS["rss_idle"][1])
        ROWS["fleet"] = (t_all - t0, last - t0)
        print(f"  hub RSS: idle {ROWS['rss_idle'][0]:.1f} MB, with {h['online']} devices online "
              f"{ROWS['rss_fleet'][0]:.1f} MB (a bare asyncio interpreter: {ROWS['rss_idle'][1]:.1f} MB)")
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {hub.token}"}) as s:
            async with s.get(f"{hub.url}/api/devices") as r:
                ids = [d["id"] for d in await r.json()]
        print(f"  /api/devices: {len(ids)} devices, {len(set(ids))} distinct ids")
    finally:
        observer.loop_stop()
        observer.disconnect()
        await browser.async_cancel()
        await aiozc.async_close()
        fleet.terminate()
        fleet.wait(30)
        hub.stop()


def summary() -> None:
    print("\nsummary (issue 10), each measure next to its floor or peer from this run")
    print(f"  {'measure':<42} {'hub':>12} {'floor / peer':>14} {'ratio':>7}  floor / peer is")
    if "ingest" in ROWS:
        v, paho_rate = ROWS["ingest"]
        print(f"  {'state ingest, lossless (msg/s)':<42} {v:12,.0f} {paho_rate:14,.0f} {v / paho_rate:6.2f}x"
              f"  bare paho subscriber process (goal >= 50k and >= 0.8x)")
        _, aio = ROWS["ingest_aiomqtt"]
        print(f"  {'':<42} {'':>12} {aio:14,.0f} {v / aio:6.2f}x  bare aiomqtt subscriber process")
    if "rest" in ROWS:
        v, f = ROWS["rest"]
        print(f"  {'REST set -> confirmed, echo device p50 (ms)':<42} {v:12.2f} {f:14.2f} {v / f:6.2f}x"
              f"  raw MQTT round trip (+{v - f:.2f} ms; goal <= +0.3 ms)")
        if "http" in ROWS:
            h = ROWS["http"][0]
            print(f"  {'':<42} {'':>12} {f + h:14.2f} {v / (f + h):6.2f}x"
                  f"  raw MQTT round trip + HTTP GET /api/health ({h:.2f} ms)")
    if "rss_idle" in ROWS:
        v, f = ROWS["rss_idle"]
        print(f"  {'hub RSS idle (MB)':<42} {v:12.1f} {f:14.1f} {v / f:6.2f}x  bare asyncio interpreter"
              " (goal <= 40 MB)")
    if "rss_fleet" in ROWS:
        v, f = ROWS["rss_fleet"]
        print(f"  {'hub RSS with the fleet online (MB)':<42} {v:12.1f} {f:14.1f} {v / f:6.2f}x"
              "  bare asyncio interpreter (goal <= 60 MB; HA 359 MB, Z2M 150-200 MB quoted)")
    if "fleet" in ROWS:
        v, f = ROWS["fleet"]
        print(f"  {'fleet start -> all online in the API (s)':<42} {v:12.2f} {f:14.2f} {v / f:6.2f}x"
              f"  fleet start -> last device announced (+{v - f:.2f} s; goal <= +2 s)")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commands", type=int, default=1000)
    ap.add_argument("--ingest", type=int, default=50_000)
    ap.add_argument("--fleet", type=int, default=1000)
    ap.add_argument("--fleet-only", action="store_true", help="only section 5 (and the idle RSS)")
    args = ap.parse_args()
    if os.environ.get("HUB_IN_NETNS") != "1":
        sys.exit("run inside scripts/in-netns")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Broker(tmp / "broker").start()
        procs: list[subprocess.Popen] = []
        hub = HubProcess(tmp, broker)
        if args.fleet_only:
            try:
                await bench_fleet(tmp, broker, args.fleet)
                summary()
            finally:
                broker.stop()
            return
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
            rate = await bench_ingest(hub2, broker, args.ingest)
            hub2.stop()
            aio = await bench_raw_receiver(broker, args.ingest, "aiomqtt")
            bare = await bench_raw_receiver(broker, args.ingest, "paho")
            ROWS["ingest"] = (rate, bare)
            ROWS["ingest_aiomqtt"] = (rate, aio)
            if args.fleet:
                for p in procs:  # the fleet hub counts online devices: only the fleet's
                    p.terminate()
                    p.wait(10)
                procs.clear()
                await bench_fleet(tmp, broker, args.fleet)
            summary()
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
            hub.stop()
            broker.stop()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), DEADLINE))
