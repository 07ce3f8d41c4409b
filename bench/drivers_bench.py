"""Per driver family: the command round trip through the hub next to the raw protocol's own.

    scripts/in-netns .venv/bin/python bench/drivers_bench.py [--commands 200] [--only tasmota]

Each family is one function (`bench_<family>`) against its simulator in a process of its own and
the hub as `hub run` (another process): REST `POST /api/devices/<id>/set` → 200 confirmed, p50,
next to a bare client of the device's own protocol doing the same command → answer, and the
ratio. Everything on loopback inside the namespace; every loop bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import paho.mqtt.client as paho

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.roundtrip import ECHO_DEVICE, HubProcess, pct, raw_floor, wait_devices  # noqa: E402
from hub.broker import Broker, free_port  # noqa: E402

DEADLINE = 120.0  # seconds per family, whatever happens


def line(name: str, xs: list[float]) -> str:
    return (f"  {name:<48} n={len(xs):4d}  p50 {statistics.median(xs):7.2f} ms  p99 {pct(xs, 99):7.2f} ms"
            f"  max {max(xs):7.2f} ms")


async def rest_round_trip(hub: HubProcess, device_id: str, bodies: list[dict], deadline: float) -> list[float]:
    """POST each body; milliseconds until the hub answered 200 (the device confirmed)."""
    out: list[float] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {hub.token}"}) as s:
        url = f"{hub.url}/api/devices/{device_id}/set"
        for body in bodies:
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            async with s.post(url, json=body) as r:
                if r.status != 200:
                    raise RuntimeError(f"{device_id}: {r.status} {await r.text()}")
                await r.read()
            out.append((time.perf_counter() - t0) * 1000)
    return out


@asynccontextmanager
async def simulator_and_hub(tmp: Path, broker: Broker, name: str, argv: list[str], *, config: str = "",
                            ready_line: bool = True) -> AsyncIterator[HubProcess]:
    """The device's simulator in a process of its own (`argv` after the interpreter; with
    `ready_line`, started once it printed a line), then `hub run` with `config` as its TOML file.
    Stops both, whatever happens; on an error, shows the end of the hub's log."""
    sim = await asyncio.create_subprocess_exec(
        sys.executable, *argv, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE if ready_line else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, cwd=ROOT)
    hub = HubProcess(tmp, broker, f"hub-{name}")
    config_file = None
    if config:
        config_file = tmp / f"hub-{name}.toml"
        config_file.write_text(config)
    try:
        if ready_line:
            assert sim.stdout is not None
            await asyncio.wait_for(sim.stdout.readline(), 30)
        await hub.start(config_file)
        yield hub
    except Exception:
        print((hub.data / "log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        hub.stop()
        if sim.returncode is None:
            sim.terminate()
            await asyncio.wait_for(sim.wait(), 15)


async def through_the_hub(hub: HubProcess, device: str, bodies: list[dict], deadline: float) -> list[float]:
    """REST round trips after ten to warm up (connections, caches)."""
    await rest_round_trip(hub, device, bodies[:10], deadline)
    return await rest_round_trip(hub, device, bodies, deadline)


# -- Tasmota -----------------------------------------------------------------------------------

def tasmota_raw(port: int, topic: str, n: int, deadline: float) -> list[float]:
    """A bare paho client: publish `cmnd/<t>/POWER2 ON|OFF` (QoS 1, as the driver does), wait for
    the `stat/<t>/RESULT` that reports it."""
    got = threading.Condition()
    last: list[bytes] = []

    def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        with got:
            last.append(msg.payload)
            got.notify_all()

    subscribed = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    out: list[float] = []
    try:
        client.subscribe(f"stat/{topic}/RESULT", qos=1)
        if not subscribed.wait(5):
            raise RuntimeError("no SUBACK")
        for i in range(n):
            if time.monotonic() > deadline:
                break
            word = "ON" if i % 2 == 0 else "OFF"
            want = f'"POWER2":"{word}"'.encode()
            with got:
                last.clear()
            t0 = time.perf_counter()
            client.publish(f"cmnd/{topic}/POWER2", word, qos=1)
            with got:
                if not got.wait_for(lambda: any(want in p for p in last), timeout=5):
                    raise RuntimeError("the simulator did not answer")
            out.append((time.perf_counter() - t0) * 1000)
    finally:
        client.loop_stop()
        client.disconnect()
    return out


async def bench_tasmota(tmp: Path, broker: Broker, n: int) -> tuple[float, float]:
    """`firmware-sim tasmota --model plug2`: REST power_2 → confirmed vs paho cmnd → stat/RESULT."""
    print(f"\nTasmota ({n} commands each, power_2 alternating, simulated plug2 in its own process)")
    argv = ["-m", "firmware_sim.cli", "tasmota", "--model", "plug2", "--broker", broker.url,
            "--discovery-delay", "0", "--teleperiod", "0"]
    async with simulator_and_hub(tmp, broker, "tasmota", argv) as hub:
        device = "tasmota-5ccf7f0a1b01"
        await wait_devices(hub.url, hub.token, {device}, 30)
        deadline = time.monotonic() + DEADLINE
        rest = await through_the_hub(hub, device, [{"power_2": i % 2 == 0} for i in range(n)], deadline)
        raw = await asyncio.to_thread(tasmota_raw, broker.port, "tasmota_0A1B01", n, deadline)
    print(line("raw MQTT: cmnd POWER2 -> stat RESULT (paho)", raw))
    print(line("hub: REST set power_2 -> 200 confirmed", rest))
    return statistics.median(rest), statistics.median(raw)


# -- Shelly Gen2 ----------------------------------------------------------------------------------

SHELLY_PASSWORD = "bench shelly pw"


async def shelly_raw(url: str, n: int, deadline: float) -> tuple[list[float], list[float]]:
    """A bare aiohttp client with aiohttp's DigestAuthMiddleware: `POST /rpc` Switch.Set → its answer;
    and the same until the device's NotifyStatus for it arrives on a WebSocket (what the hub waits for)."""
    from devices.shelly_rpc import FrameAuth  # the frame digest only; the measured path is plain aiohttp

    answered: list[float] = []
    notified: list[float] = []
    digest = aiohttp.DigestAuthMiddleware("admin", SHELLY_PASSWORD)
    async with aiohttp.ClientSession() as s, s.ws_connect(url.replace("http", "ws", 1) + "/rpc") as ws:
        async with s.get(url + "/shelly") as r:
            realm = (await r.json())["id"]
        auth = FrameAuth(realm, SHELLY_PASSWORD)
        for _ in range(2):  # a request names us (src); the first is challenged
            await ws.send_json({"id": 1, "src": "bench", "method": "Shelly.GetStatus", "auth": auth.next()})
            reply = await ws.receive_json(timeout=5)
            if "error" not in reply:
                break
            auth.challenged(json.loads(reply["error"]["message"]))
        for i in range(n):
            if time.monotonic() > deadline:
                break
            on = i % 2 == 0
            frame = {"id": i + 2, "src": "bench", "method": "Switch.Set", "params": {"id": 0, "on": on}}
            t0 = time.perf_counter()
            async with s.post(url + "/rpc", json=frame, middlewares=(digest,)) as r:
                if r.status != 200 or "result" not in await r.json():
                    raise RuntimeError(f"Switch.Set: {r.status}")
            answered.append((time.perf_counter() - t0) * 1000)
            while True:
                note = await ws.receive_json(timeout=5)
                if note.get("params", {}).get("switch:0", {}).get("output") is on:
                    break
            notified.append((time.perf_counter() - t0) * 1000)
    return answered, notified


async def bench_shelly(tmp: Path, broker: Broker, n: int) -> tuple[float, float]:
    """`firmware-sim shelly --model plus1pm` (digest on): REST on → confirmed vs aiohttp Switch.Set."""
    print(f"\nShelly Gen2 ({n} commands each, on alternating, simulated Plus 1PM in its own process, digest auth)")
    port = free_port()
    argv = ["-m", "firmware_sim.cli", "shelly", "--model", "plus1pm", "--port", str(port),
            "--password", SHELLY_PASSWORD, "--mdns-interface", "127.0.0.1"]
    config = f'[drivers.shelly]\ndefault_password = "{SHELLY_PASSWORD}"\n'
    async with simulator_and_hub(tmp, broker, "shelly", argv, config=config) as hub:
        device = "shelly-a8032ab1f001"
        await wait_devices(hub.url, hub.token, {device}, 30)
        deadline = time.monotonic() + DEADLINE
        rest = await through_the_hub(hub, device, [{"on": i % 2 == 0} for i in range(n)], deadline)
        raw, notified = await shelly_raw(f"http://127.0.0.1:{port}", n, deadline)
    print(line("raw HTTP RPC: Switch.Set -> answer (aiohttp digest)", raw))
    print(line("raw: Switch.Set -> its NotifyStatus on a WebSocket", notified))
    print(line("hub: REST set on -> 200 confirmed", rest))
    print(f"  hub/raw notified: {statistics.median(rest) / statistics.median(notified):.2f}x")
    return statistics.median(rest), statistics.median(raw)


# -- Homie 5 ------------------------------------------------------------------------------------

async def bench_homie(tmp: Path, broker: Broker, n: int) -> tuple[float, float]:
    """An echo-only Homie device in its own process: REST brightness → confirmed vs MQTT /set → echo."""
    print(f"\nHomie 5 ({n} commands each, brightness, an echo-only device in its own process)")
    async with simulator_and_hub(tmp, broker, "homie", ["-c", ECHO_DEVICE, str(broker.port), "homie-echo"]) as hub:
        await wait_devices(hub.url, hub.token, {"homie-echo"}, 30)
        deadline = time.monotonic() + DEADLINE
        rest = await through_the_hub(hub, "homie-echo", [{"brightness": 10 + (i + 1) % 80} for i in range(n)],
                                     deadline)
        raw = await raw_floor(broker, "homie-echo", n)
    print(line("raw MQTT: /set -> the device's echo", raw))
    print(line("hub: REST set -> 200 confirmed", rest))
    return statistics.median(rest), statistics.median(raw)


# -- PJLink ---------------------------------------------------------------------------------------

PJLINK_PASSWORD = "bench-pjlink"


async def bench_pjlink(tmp: Path, broker: Broker, n: int) -> tuple[float, float]:
    """`firmware-sim projector` (password on): REST video_mute → confirmed vs one AVMT over a kept session."""
    from devices.pjlink_client import PJLinkClient

    print(f"\nPJLink ({n} commands each, video mute alternating, simulated Class 2 projector in its own process)")
    port, notify = free_port(), free_port()
    argv = ["-m", "firmware_sim.cli", "projector", "--host", "127.0.0.1", "--port", str(port),
            "--udp-port", str(port), "--notify-port", str(notify), "--password", PJLINK_PASSWORD,
            "--warmup", "0.2", "--cooldown", "0.2", "--state-dir", str(tmp / "projector"), "--interface", "127.0.0.1",
            "--broker", broker.url]
    config = (f'[drivers.pjlink]\ndefault_password = "{PJLINK_PASSWORD}"\nnotify_port = {notify}\n'
              'udp_host = "127.0.0.1"\n')
    async with simulator_and_hub(tmp, broker, "pjlink", argv, config=config, ready_line=False) as hub:
        device = await projector_id(hub, 30)
        deadline = time.monotonic() + DEADLINE
        await rest_round_trip(hub, device, [{"power": True}], deadline)
        await power_state_on(hub, device, 15)
        rest = await through_the_hub(hub, device, [{"video_mute": i % 2 == 0} for i in range(n)], deadline)
        hub.stop()  # a projector serves one PJLink session at a time: the hub lets go of it first
        client = PJLinkClient("127.0.0.1", port, PJLINK_PASSWORD, timeout=5)
        raw: list[float] = []
        try:
            for i in range(n):
                if time.monotonic() > deadline:
                    break
                t0 = time.perf_counter()
                await client.request("AVMT", "11" if i % 2 == 0 else "10")
                raw.append((time.perf_counter() - t0) * 1000)
        finally:
            await client.close()
    print(line("raw PJLink: AVMT -> answer (one authenticated session)", raw))
    print(line("hub: REST set video_mute -> 200 confirmed", rest))
    return statistics.median(rest), statistics.median(raw)


async def power_state_on(hub: HubProcess, device: str, timeout: float) -> None:
    """Until the lamp has warmed up (commands while warming answer 409)."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {hub.token}"}) as s:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            async with s.get(f"{hub.url}/api/devices/{device}") as r:
                if (await r.json())["state"].get("power_state") == "on":
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("the projector did not warm up")


async def projector_id(hub: HubProcess, timeout: float) -> str:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {hub.token}"}) as s:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            async with s.get(f"{hub.url}/api/devices") as r:
                for d in await r.json():
                    if d["driver"] == "pjlink" and d["online"] and any(e["name"] == "video_mute" for e in d["exposes"]):
                        return d["id"]
            await asyncio.sleep(0.1)
    raise RuntimeError("the projector did not come online")


FAMILIES = {"homie": bench_homie, "pjlink": bench_pjlink, "shelly": bench_shelly, "tasmota": bench_tasmota}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--only", choices=sorted(FAMILIES), action="append")
    args = parser.parse_args()
    rows: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "broker", embedded=False)
        broker.start()
        try:
            for name in args.only or sorted(FAMILIES):
                rows[name] = await FAMILIES[name](Path(tmp), broker, min(args.commands, 2000))
        finally:
            broker.stop()
    print("\nfamily      REST -> confirmed p50   raw protocol p50   ratio")
    for name, (rest, raw) in rows.items():
        print(f"{name:<11} {rest:17.2f} ms   {raw:13.2f} ms   {rest / raw:5.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
