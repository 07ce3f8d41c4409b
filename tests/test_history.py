"""History: numeric readings sampled, batched into SQLite, kept for the retention, served for charts."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from hypothesis import given, strategies as st

from hub.bus import Bus
from hub.config import HistoryConfig
from hub.history import History, Point, Sampler
from hub.model import Binary, DeviceInfo, Numeric
from hub.registry import Registry
from hub.store import Store
from tests.conftest import RunningHub
from tests.homie_peer import HomiePeer
from tests.test_homie_e2e import wait_online

# -- the sampler (pure) -----------------------------------------------------------------------


def test_first_reading_is_recorded_and_a_burst_keeps_its_last_value() -> None:
    s = Sampler(interval=10)
    assert s.offer("lamp", "brightness", 50, now=100) == Point("lamp", "brightness", 100, 50)
    assert s.offer("lamp", "brightness", 40, now=101) is None
    assert s.offer("lamp", "brightness", 30, now=104) is None
    assert s.due(now=109) == []
    # the value the property had when it became recordable again
    assert s.due(now=111) == [Point("lamp", "brightness", 110, 30)]
    assert s.due(now=200) == []
    assert s.offer("lamp", "brightness", 20, now=125) == Point("lamp", "brightness", 125, 20)


def test_properties_are_sampled_separately() -> None:
    s = Sampler(interval=10)
    assert s.offer("lamp", "brightness", 1, now=0) is not None
    assert s.offer("lamp", "power", 2, now=1) is not None
    assert s.offer("plug", "power", 3, now=1) is not None


@given(st.lists(st.tuples(st.floats(0, 5, allow_nan=False), st.integers(0, 100)), min_size=1, max_size=60))
def test_at_most_one_point_per_interval_and_the_last_value_always_lands(steps: list[tuple[float, int]]) -> None:
    s = Sampler(interval=10)
    now = 0.0
    points: list[Point] = []
    for gap, value in steps:
        now += gap
        points += s.due(now)
        if (p := s.offer("d", "p", value, now)) is not None:
            points.append(p)
    points += s.due(now + 10)
    times = [p.t for p in points]
    assert times == sorted(times)
    assert all(b - a >= 10 - 1e-9 for a, b in zip(times, times[1:]))
    assert points[-1].value == steps[-1][1]


# -- the recorder, with SQLite on disk and an injected clock -----------------------------------


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def recorder(tmp_path: Path):
    store = Store(tmp_path / "hub.db")
    await store.start()
    registry = Registry(store)
    await registry.start()
    registry.upsert(DeviceInfo(id="plug", name="Plug", driver="homie", exposes=(
        Binary(name="on"), Numeric(name="power", unit="W"))), now=0)
    bus = Bus()
    clock = Clock(1_000_000.0)
    history = History(store, registry, bus, HistoryConfig(interval=10, retention_days=1, flush_interval=60),
                      clock=clock)
    await history.start()
    yield history, bus, clock
    await history.stop()
    await registry.stop()
    await store.stop()


async def test_numeric_state_events_are_written_and_pruned(recorder) -> None:
    history, bus, clock = recorder
    t0 = clock.t
    bus.publish("state", id="plug", state={"on": True, "power": 85})  # as the hub announces a change
    await history.flush()
    clock.t += 3
    history.record("plug", {"power": 90.5}, clock.t)
    history.record("plug", {"power": "lots"}, clock.t)  # not a number: not charted
    history.record("ghost", {"power": 1}, clock.t)  # unknown device: ignored
    await history.flush()
    assert await history.points("plug", "power", since=0) == [[t0, 85.0]]
    assert await history.points("plug", "on", since=0) == []
    clock.t += 20
    await history.flush()
    assert await history.points("plug", "power", since=0) == [[t0, 85.0], [t0 + 10, 90.5]]
    assert await history.points("plug", "power", since=t0 + 1) == [[t0 + 10, 90.5]]

    clock.t = t0 + 86400 + 5  # a day later: the first point is past the retention
    assert await history.prune() == 1
    assert await history.points("plug", "power", since=0) == [[t0 + 10, 90.5]]


async def test_points_survive_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.db")
    await store.start()
    registry = Registry(store)
    await registry.start()
    registry.upsert(DeviceInfo(id="plug", name="Plug", driver="homie", exposes=(Numeric(name="power"),)), now=0)
    bus = Bus()
    history = History(store, registry, bus, HistoryConfig(flush_interval=60), clock=lambda: 500.0)
    await history.start()
    bus.publish("state", id="plug", state={"power": 7})
    await history.stop()  # stop writes what is buffered
    again = History(store, registry, bus, HistoryConfig(), clock=lambda: 500.0)
    await again.start()
    try:
        assert await again.points("plug", "power", since=0) == [[500.0, 7.0]]
    finally:
        await again.stop()
        await registry.stop()
        await store.stop()


# -- the API, with a Homie device on Mosquitto -------------------------------------------------


async def test_history_api(running: RunningHub, lamp: HomiePeer) -> None:  # noqa: F811
    async with aiohttp.ClientSession(headers=running.headers) as s:
        await wait_online(s, running, "test-lamp")
        async with s.post(f"{running.url}/api/devices/test-lamp/set", json={"brightness": 40}) as r:
            assert r.status == 200, await r.text()
        base = f"{running.url}/api/devices/test-lamp/history"
        async with s.get(base, params={"property": "brightness"}) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        assert (body["device"], body["property"], body["unit"]) == ("test-lamp", "brightness", "%")
        values = [v for _, v in body["points"]]
        assert values[0] == 50 and values[-1] in (50, 40)  # 40 is held until the interval has passed
        times = [t for t, _ in body["points"]]
        assert times == sorted(times)
        async with s.get(base, params={"property": "brightness", "since": str(times[-1] + 1)}) as r:
            assert (await r.json())["points"] == []

        for params, field in (({"property": "on"}, "property"), ({"property": "warp"}, "property"),
                              ({}, "property"), ({"property": "brightness", "since": "yesterday"}, "since")):
            async with s.get(base, params=params) as r:
                assert r.status == 422, params
                assert (await r.json())["field"] == field
        async with s.get(f"{running.url}/api/devices/nope/history", params={"property": "brightness"}) as r:
            assert r.status == 404
    async with aiohttp.ClientSession() as anon:
        async with anon.get(base, params={"property": "brightness"}) as r:
            assert r.status == 401


def test_the_example_config_and_the_environment_set_history() -> None:
    from hub.config import load_config

    example = Path(__file__).resolve().parent.parent / "systemd" / "hub.toml.example"
    config = load_config(example, environ={"HUB_HISTORY_RETENTION_DAYS": "30"})
    assert (config.history.interval, config.history.retention_days, config.inbox) == (10.0, 30.0, True)
