"""History of numeric readings for the device page's charts: sampled, batched, kept for a while."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from .bus import Bus, Overflow, Subscription
from .config import HistoryConfig
from .model import Numeric
from .registry import Registry
from .store import Store

log = logging.getLogger(__name__)

MAX_BUFFER = 100_000  # points waiting for the next batch; beyond that new ones are dropped (and logged)


@dataclass(frozen=True)
class Point:
    device: str
    property: str
    t: float
    value: float


class Sampler:
    """At most one point per property per `interval` seconds; the last value of a burst is never lost.

    A value arriving too soon is held; once the interval has passed, `due()` records it at the
    moment it became recordable (or when it arrived, if later): the value the property had then.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[tuple[str, str], float] = {}  # when each property was last recorded
        self._held: dict[tuple[str, str], tuple[float, float]] = {}

    def offer(self, device: str, prop: str, value: float, now: float) -> Point | None:
        """A new reading; the point to record now, or None when it is held for later."""
        key = (device, prop)
        last = self._last.get(key)
        if last is None or now - last >= self.interval:
            self._last[key] = now
            self._held.pop(key, None)
            return Point(device, prop, now, value)
        self._held[key] = (now, value)
        return None

    def due(self, now: float) -> list[Point]:
        """Held readings whose interval has passed by `now`."""
        out: list[Point] = []
        for key, (t, value) in list(self._held.items()):
            at = max(t, self._last[key] + self.interval)
            if at <= now:
                del self._held[key]
                self._last[key] = at
                out.append(Point(*key, at, value))
        return out

    def forget(self, older_than: float) -> None:
        """Drop bookkeeping of properties not recorded since `older_than` (keeps memory bounded)."""
        for key in [k for k, t in self._last.items() if t < older_than and k not in self._held]:
            del self._last[key]


def numeric_reading(expose: Any, value: Any) -> float | None:
    """The value as a chart point, or None when the expose is not numeric or the value not a number."""
    if not isinstance(expose, Numeric) or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def ensure_schema(db: sqlite_utils.Database) -> None:
    # One series per (device, property), points clustered by (series, t): a chart is one range
    # read, and a point costs its three numbers, not two repeated strings (bench/history_bench.py).
    db.execute("CREATE TABLE IF NOT EXISTS history_series (id INTEGER PRIMARY KEY, device TEXT NOT NULL, "
               "property TEXT NOT NULL, UNIQUE (device, property))")
    db.execute("CREATE TABLE IF NOT EXISTS history_points (series INTEGER NOT NULL, t REAL NOT NULL, "
               "value REAL NOT NULL, PRIMARY KEY (series, t)) WITHOUT ROWID")


def _series_id(db: sqlite_utils.Database, cache: dict[tuple[str, str], int], device: str, prop: str) -> int:
    key = (device, prop)
    if key not in cache:
        db.execute("INSERT OR IGNORE INTO history_series (device, property) VALUES (?, ?)", key)
        cache[key] = db.execute("SELECT id FROM history_series WHERE device = ? AND property = ?", key).fetchone()[0]
    return cache[key]


class History:
    """Follows the hub's state events; writes points off the loop in batches; prunes expired ones."""

    def __init__(self, store: Store, registry: Registry, bus: Bus, config: HistoryConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.registry = registry
        self.bus = bus
        self.config = config
        self.clock = clock
        self.sampler = Sampler(config.interval)
        self._buffer: list[Point] = []
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()
        self._dropped = 0
        self._series: dict[tuple[str, str], int] = {}  # read and written on the store's thread only

    @property
    def retention(self) -> float:
        return self.config.retention_days * 86400

    async def start(self) -> None:
        await self.store.call(ensure_schema)
        self._sub = self.bus.subscribe(maxsize=50_000)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="history")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.flush()
        finally:
            if self._sub is not None:
                self._sub.close()
                self._sub = None

    async def _run(self) -> None:
        await asyncio.gather(self._listen(), self._tick())

    async def _listen(self) -> None:
        """Each state event as it comes, so a point carries the time of its reading."""
        while True:
            if self._sub is None:
                return
            try:
                event = await self._sub.get()
            except Overflow:
                self._resubscribe()
                continue
            if event.type == "state":
                self.record(event.data["id"], event.data["state"], self.clock())

    def _resubscribe(self) -> None:
        log.warning("history fell behind the hub's events; some points are missing")
        self._sub = self.bus.subscribe(maxsize=50_000)

    async def _tick(self) -> None:
        next_prune = self.clock()
        while True:
            await asyncio.sleep(self.config.flush_interval)
            try:
                await self.flush()
                if self.clock() >= next_prune:
                    next_prune = self.clock() + self.config.prune_interval
                    await self.prune()
            except Exception:
                log.exception("saving history failed; will retry")

    def record(self, device_id: str, values: Mapping[str, Any], now: float) -> None:
        """Numeric values of one state change (others are not charted)."""
        dev = self.registry.get(device_id)
        if dev is None:
            return
        for prop, raw in values.items():
            value = numeric_reading(dev.info.expose(prop), raw)
            if value is not None and (point := self.sampler.offer(device_id, prop, value, now)) is not None:
                self._keep(point)

    def _keep(self, point: Point) -> None:
        if len(self._buffer) >= MAX_BUFFER:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 10_000 == 0:
                log.warning("history buffer full: %d points dropped", self._dropped)
            return
        self._buffer.append(point)

    def _take_events(self) -> None:
        if self._sub is None:
            return
        try:
            events = self._sub.drain()  # those the listener has not reached yet (read-your-writes)
        except Overflow:
            self._resubscribe()
            return
        now = self.clock()
        for event in events:
            if event.type == "state":
                self.record(event.data["id"], event.data["state"], now)

    async def flush(self) -> None:
        """Everything recorded so far, written in one transaction."""
        async with self._flushing:
            self._take_events()
            for point in self.sampler.due(self.clock()):
                self._keep(point)
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, []

            def write(db: sqlite_utils.Database) -> None:
                with db.conn:
                    rows = [(_series_id(db, self._series, p.device, p.property), p.t, p.value) for p in batch]
                    db.conn.executemany("INSERT OR REPLACE INTO history_points (series, t, value) VALUES (?, ?, ?)",
                                        rows)

            try:
                await self.store.call(write)
            except Exception:
                self._buffer = batch + self._buffer  # kept for the next try (bounded by _keep)
                raise

    async def prune(self) -> int:
        """Delete points older than the retention, a series per transaction; returns how many went."""
        cutoff = self.clock() - self.retention
        self.sampler.forget(cutoff)
        series = await self.store.call(lambda db: [r[0] for r in db.execute("SELECT id FROM history_series")])
        removed = 0
        for sid in series:
            # one short transaction each: the store's other work (state, scenes) gets in between
            def delete(db: sqlite_utils.Database, sid: int = sid) -> int:
                with db.conn:
                    return db.execute("DELETE FROM history_points WHERE series = ? AND t < ?", [sid, cutoff]).rowcount

            removed += await self.store.call(delete)
        if removed:
            log.debug("history: pruned %d points", removed)
        return removed

    async def points(self, device_id: str, prop: str, since: float) -> list[list[float]]:
        """[[t, value], ...] of one property from `since`, oldest first (including unwritten ones)."""
        await self.flush()

        def query(db: sqlite_utils.Database) -> list[list[float]]:
            cur = db.execute("SELECT t, value FROM history_points WHERE series = (SELECT id FROM history_series "
                             "WHERE device = ? AND property = ?) AND t >= ? ORDER BY t", [device_id, prop, since])
            return [[t, v] for t, v in cur.fetchall()]

        return await self.store.call(query)
