"""The household page with 1,000 devices; prints numbers, asserts nothing. Run inside scripts/in-netns:

    scripts/in-netns .venv/bin/python bench/ui_bench.py [--count 1000] [--rate 500] [--seconds 10]

1. first paint of every card: page navigation -> all N cards in the document and a frame painted
   (the WebSocket's snapshot is in it), three loads;
2. MQTT -> screen: a sensor's value published on MQTT (as the device would) -> the new text in its
   card on the first screen, p50/p99, while `--rate` values a second stream in for the whole fleet;
   and the page's long tasks (> 50 ms main-thread blocks) meanwhile.
The hub runs as `hub run`, the fleet as `firmware-sim fleet --count N`, chromium headless, all on
loopback in the namespace; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt
from playwright.async_api import async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aiohttp  # noqa: E402
from roundtrip import HubProcess, pct  # noqa: E402

from hub.broker import Broker  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
DEADLINE = 420.0  # seconds for the whole run, whatever happens

# Records when a probe card's text changes, in epoch ms (the publisher's clock is the same machine's).
WATCH = """ids => {
  window.__seen = [];
  window.__probes = ids;
  for (const id of ids) {
    const card = document.querySelector(`article[data-id="${id}"]`);
    new MutationObserver(() => {
      const t = performance.timeOrigin + performance.now();
      window.__seen.push([id, card.querySelector('[data-expose="temperature"] .value').textContent, t]);
    }).observe(card, { subtree: true, childList: true, characterData: true });
  }
  window.__long = 0;
  new PerformanceObserver((l) => { window.__long += l.getEntries().length; }).observe({ type: "longtask" });
}"""


async def wait_online(url: str, token: str, count: int, timeout: float) -> tuple[int, int]:
    """Until `count` devices are online in the hub (or the timeout); (known, online)."""
    health = {"devices": 0, "online": 0}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            async with s.get(f"{url}/api/health") as r:
                health = await r.json()
            if health["online"] >= count:
                break
            await asyncio.sleep(0.5)
    return health["devices"], health["online"]


# Counts the page's socket closes and messages (a reconnect would mean a full snapshot again).
SOCKET_SPY = """(() => {
  const Native = window.WebSocket;
  window.__ws = { messages: 0, closes: [], arrived: [] };
  window.WebSocket = function (...a) {
    const ws = new Native(...a);
    ws.addEventListener("message", (m) => {
      window.__ws.messages++;
      if (!window.__probes) return;
      const ev = JSON.parse(m.data);  // when a probe's value reached the page, before any drawing
      if (ev.type === "state" && window.__probes.includes(ev.id) && ev.state.temperature !== undefined)
        window.__ws.arrived.push([ev.id, ev.state.temperature, performance.timeOrigin + performance.now()]);
    });
    ws.addEventListener("close", (e) => { window.__ws.closes.push([e.code, e.reason]); });
    return ws;
  };
})()"""


def js_number(v: float) -> str:
    """The value as the page prints it (one decimal, no trailing zero)."""
    return f"{round(v, 1):g}"


async def temperature_topic(broker: Broker, device: str) -> str:
    """The Homie topic of a fleet sensor's temperature, from its retained $description."""
    async with aiomqtt.Client("127.0.0.1", broker.port) as c:
        await c.subscribe(f"homie/5/{device}/$description", qos=1)
        async with asyncio.timeout(10):
            async for m in c.messages:
                desc = json.loads(m.payload)
                for node, spec in desc["nodes"].items():
                    if "temperature" in spec.get("properties", {}):
                        return f"homie/5/{device}/{node}/temperature"
    raise RuntimeError("no temperature property")


async def first_paint(page, url: str, count: int) -> float:
    r = await page.context.request.post(f"{url}/api/auth/login", headers={"Origin": url},
                                        data={"name": "bench", "password": "bench-password"})
    assert r.ok, await r.text()
    await page.goto(f"{url}/")
    await page.wait_for_function(f"document.querySelectorAll('article.card').length >= {count}", timeout=120_000)
    # the frame after the cards went in: painted
    return await page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now()))))")


async def login_paint(page, url: str) -> float:
    """The floor for first paint, same run: this browser loading and painting the hub's sign-in page."""
    await page.context.clear_cookies()
    await page.goto(f"{url}/login")
    await page.wait_for_selector("#login-form:not([hidden])")
    return await page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now()))))")


async def stream(broker: Broker, page, sensors: list[str], probes: list[str], rate: int, seconds: float) -> None:
    topics = {d: await temperature_topic(broker, d) for d in {*probes, sensors[0]}}
    node = topics[sensors[0]].split("/")[3]
    for d in sensors:
        topics.setdefault(d, f"homie/5/{d}/{node}/temperature")
    await page.evaluate(WATCH, probes)
    sent: list[tuple[str, str, float, str]] = []  # device, text on the card, sent at (ms), payload
    total = int(rate * seconds)
    probe_every = max(1, rate // 20)  # 20 probes a second among the stream
    rng = random.Random(7)
    k = 0
    # the floor, same run: a bare MQTT subscriber on the probes' topics (broker delivery alone)
    floor_seen: list[tuple[str, str, float]] = []
    probe_topics = {topics[d]: d for d in probes}

    async def bare_subscriber(ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port) as sub:
            for t in probe_topics:
                await sub.subscribe(t)
            ready.set()
            async for m in sub.messages:
                if not m.retain:
                    floor_seen.append((probe_topics[m.topic.value], m.payload.decode(), time.time() * 1000))

    ready = asyncio.Event()
    watcher = asyncio.create_task(bare_subscriber(ready))
    await asyncio.wait_for(ready.wait(), 10)
    async with aiomqtt.Client("127.0.0.1", broker.port) as c:
        t0 = time.perf_counter()
        for i in range(total):
            if i % probe_every == 0:
                d = probes[k % len(probes)]
                k += 1
                v = 30 + (k % 600) / 10  # a new value each time on that card
                sent.append((d, js_number(v) + " °C", time.time() * 1000, f"{v:.1f}"))
            else:
                d = rng.choice(sensors)
                v = rng.uniform(15, 25)
            await c.publish(topics[d], f"{v:.1f}", qos=0, retain=True)
            lag = t0 + (i + 1) / rate - time.perf_counter()
            if lag > 0:
                await asyncio.sleep(lag)
        took = time.perf_counter() - t0
    await asyncio.sleep(1.0)  # the last frames
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    seen = await page.evaluate("window.__seen")
    long_tasks = await page.evaluate("window.__long")
    ws = await page.evaluate("window.__ws")
    lat, to_page, to_screen, floor = [], [], [], []
    missed = 0
    for d, text, t, payload in sent:
        bare = next((f[2] for f in floor_seen if f[0] == d and f[1] == payload and f[2] >= t - 1), None)
        if bare is not None:
            floor.append(bare - t)
        hit = next((s[2] for s in seen if s[0] == d and s[1] == text and s[2] >= t - 1), None)
        came = next((a[2] for a in ws["arrived"] if a[0] == d and js_number(a[1]) + " °C" == text and a[2] >= t - 1), None)
        if came is not None:
            to_page.append(came - t)
        if hit is None:
            missed += 1
        else:
            lat.append(hit - t)
            if came is not None:
                to_screen.append(hit - came)
    print(f"  streamed {total} values in {took:.1f} s ({total / took:.0f}/s), {len(sent)} of them probes")
    if lat and floor:
        print(f"  floor, same run: MQTT publish -> a bare subscriber: p50 {statistics.median(floor):6.1f} ms"
              f"  p99 {pct(floor, 99):6.1f} ms  (card / floor at p50: {statistics.median(lat) / max(statistics.median(floor), 0.01):.1f}x)")
    if lat:
        print(f"  MQTT publish -> new value in the card: n={len(lat)}  p50 {statistics.median(lat):6.1f} ms"
              f"  p99 {pct(lat, 99):6.1f} ms  max {max(lat):6.1f} ms  (not seen: {missed})")
    if to_page:
        print(f"    of which MQTT -> hub -> WebSocket message in the page: p50 {statistics.median(to_page):6.1f} ms"
              f"  p99 {pct(to_page, 99):6.1f} ms (n={len(to_page)})")
    if to_screen:
        print(f"    and message -> text in the card: p50 {statistics.median(to_screen):6.1f} ms"
              f"  p99 {pct(to_screen, 99):6.1f} ms")
    print(f"  long tasks on the page's main thread meanwhile: {long_tasks}; socket messages {ws['messages']}, "
          f"closes {ws['closes']}")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    if os.environ.get("HUB_IN_NETNS") != "1":
        sys.exit("run inside scripts/in-netns")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Broker(tmp / "broker").start()
        hub = HubProcess(tmp, broker)
        fleet = None
        try:
            await hub.start()
            fleet = subprocess.Popen(
                [sys.executable, "-m", "firmware_sim.cli", "fleet", "--count", str(args.count), "--broker", broker.url,
                 "--state-dir", str(tmp / "sim")], stdout=subprocess.DEVNULL, stderr=open(tmp / "fleet.log", "wb"))
            ids = {f"fleet-{'plug' if i % 2 else 'sensor'}-{i:04d}" for i in range(1, args.count + 1)}
            t = time.perf_counter()
            known, online = await wait_online(hub.url, hub.token, args.count, 120)
            print(f"{online} of {args.count} fleet devices online in the hub ({known} known) after "
                  f"{time.perf_counter() - t:.1f} s; broker {broker.kind}; {os.cpu_count()} cores")
            if known < args.count * 0.9:
                sys.exit("too few devices discovered to measure:\n" + (hub.data / "log").read_text()[-2000:])
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.add_init_script(SOCKET_SPY)
                print(f"\n1. first paint of {known} cards (navigation -> every card in, next frame painted)")
                paints = [await first_paint(page, hub.url, known) for _ in range(3)]
                floors = [await login_paint(page, hub.url) for _ in range(3)]
                print("  " + ", ".join(f"{x:.0f} ms" for x in paints))
                print(f"  floor, same run: the sign-in page painted in {statistics.median(floors):.0f} ms; "
                      f"{known} cards take {statistics.median(paints) / statistics.median(floors):.1f}x that")
                print(f"\n2. MQTT -> screen while {args.rate} values a second stream in for {args.seconds:.0f} s")
                await first_paint(page, hub.url, known)  # signed in again after the floor's sign-out
                # probes: the first sensors on the screen, in page order
                on_page = await page.evaluate("[...document.querySelectorAll('article.card')].map(c => c.dataset.id)")
                sensors = [i for i in on_page if i in ids and "sensor" in i]
                await stream(broker, page, sensors, sensors[:3], args.rate, args.seconds)
                await browser.close()
        finally:
            if fleet is not None:
                fleet.terminate()
                fleet.wait(20)
            hub.stop()
            broker.stop()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), DEADLINE))
