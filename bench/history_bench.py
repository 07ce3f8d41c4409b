"""Benchmark the history recorder: cost on the event loop per reading, batch writes, chart queries, pruning.

    .venv/bin/python bench/history_bench.py [--devices 50] [--props 4] [--days 7]

Fills a retention's worth of points (one per property per interval, as the sampler allows) with
an injected clock, then times what the hub does with it. SQLite on disk in a temporary folder.
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.bus import Bus  # noqa: E402
from hub.config import HistoryConfig  # noqa: E402
from hub.history import History  # noqa: E402
from hub.model import DeviceInfo, Numeric  # noqa: E402
from hub.registry import Registry  # noqa: E402
from hub.store import Store  # noqa: E402


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def plain_write(path: Path, rows: int, batches: int) -> float:
    """Seconds per batch: `rows` rows in one transaction, WAL, synchronous=NORMAL, no index."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS w (device TEXT, prop TEXT, t REAL, v REAL)")
    data = [(f"dev{i % 50}", "p0", float(i), float(i % 100)) for i in range(rows)]
    t0 = time.perf_counter()
    for _ in range(batches):
        with db:
            db.executemany("INSERT INTO w VALUES (?, ?, ?, ?)", data)
    took = (time.perf_counter() - t0) / batches
    db.close()
    return took


def plain_query(path: Path, points: list) -> float:
    """Seconds to read the same points back from a table holding only them."""
    db = sqlite3.connect(path)
    db.execute("DROP TABLE IF EXISTS q")
    db.execute("CREATE TABLE q (t REAL, v REAL)")
    with db:
        db.executemany("INSERT INTO q VALUES (?, ?)", [(p[0], p[1]) for p in points])
    t0 = time.perf_counter()
    db.execute("SELECT t, v FROM q ORDER BY t").fetchall()
    took = time.perf_counter() - t0
    db.close()
    return max(took, 1e-6)


async def main(devices: int, props: int, days: float) -> None:
    config = HistoryConfig(interval=10, retention_days=days, flush_interval=60)  # the bench flushes itself
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "hub.db")
        await store.start()
        registry = Registry(store)
        await registry.start()
        names = [f"p{i}" for i in range(props)]
        for d in range(devices):
            registry.upsert(DeviceInfo(id=f"dev{d}", name=f"Device {d}", driver="bench",
                                       exposes=tuple(Numeric(name=n) for n in names)), now=0)
        clock = Clock(1_000_000_000.0)
        history = History(store, registry, Bus(), config, clock=clock)
        await history.start()

        start = clock.t
        steps = int(days * 86400 / config.interval)
        readings = 0
        record_s = flush_s = floor_s = 0.0
        latest: dict[str, dict[str, float]] = {}
        flushes = 0
        for step in range(steps):
            clock.t = start + step * config.interval
            t0 = time.perf_counter()
            for d in range(devices):
                history.record(f"dev{d}", {n: float(step % 100) for n in names}, clock.t)
            record_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            for d in range(devices):  # the floor: building the same readings and keeping the last
                latest[f"dev{d}"] = {n: float(step % 100) for n in names}
            floor_s += time.perf_counter() - t0
            readings += devices * props
            if step % 6 == 5 or step == steps - 1:  # a batch per minute of simulated time
                t0 = time.perf_counter()
                await history.flush()
                flush_s += time.perf_counter() - t0
                flushes += 1
        print(f"{devices} devices x {props} numeric properties, {days:g} days at one point per "
              f"{config.interval:g} s: {readings:,} points")
        per, floor = record_s / readings * 1e6, floor_s / readings * 1e6
        print(f"  record() on the loop: {per:.2f} us per reading; floor, same run: building the reading "
              f"and keeping it in a dict {floor:.2f} us ({per / floor:.1f}x)")
        batch = readings // flushes
        write_floor = plain_write(Path(tmp) / "floor.db", batch, 20)
        print(f"  batch write (off the loop): {flush_s / flushes * 1e3:.2f} ms per batch of {batch:,} points; "
              f"floor, same run: plain executemany into an unindexed WAL table {write_floor * 1e3:.2f} ms "
              f"({flush_s / flushes / write_floor:.1f}x)")

        for label, window in (("24 h", 86400.0), (f"{days:g} days", days * 86400)):
            t0 = time.perf_counter()
            points = await history.points("dev0", "p0", clock.t - window)
            took = time.perf_counter() - t0
            q_floor = plain_query(Path(tmp) / "floor.db", points)
            print(f"  chart query, {label}: {took * 1e3:.1f} ms for {len(points):,} points; floor, same run: "
                  f"reading those points from a table of just them {q_floor * 1e3:.1f} ms ({took / q_floor:.1f}x)")

        clock.t += 86400  # a day later: a day's worth expires
        t0 = time.perf_counter()
        removed = await history.prune()
        print(f"  prune one day: {(time.perf_counter() - t0) * 1e3:.0f} ms for {removed:,} points")
        await history.stop()
        await registry.stop()
        await store.stop()
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
        print(f"  database on disk: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--props", type=int, default=4)
    ap.add_argument("--days", type=float, default=7)
    a = ap.parse_args()
    asyncio.run(main(a.devices, a.props, a.days))
