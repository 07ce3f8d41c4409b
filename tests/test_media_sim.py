"""The hub's sync against the independent cloud simulator (firmware_sim), checked by rclone."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from firmware_sim.cloud.testing import RunningCloud, running_cloud
from hub.media.auth import DeviceCode, TokenFile, TokenSource, link
from hub.media.client import CloudClient
from hub.clock import FakeClock
from hub.media.sync import SyncEngine, SyncPolicy
from hub.store import Store

MiB = 1 << 20


def make_library(root: Path) -> None:
    for rel, size in {"Films/trip.bin": 5 * MiB + 3, "Films/short.bin": 300_000, "Photos/a.jpg": 2000,
                      "Photos/b.jpg": 0, "Docs/x/y.pdf": 9000}.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size))


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Any]:
    lib = tmp_path / "cloud"
    make_library(lib)
    clock = FakeClock()
    async with running_cloud(lib, clock=clock.now, fault_seed=7) as cloud:
        store = Store(tmp_path / "data" / "hub.db")
        await store.start()
        async with aiohttp.ClientSession() as session:
            yield cloud, store, session, clock, tmp_path / "data"
        await store.stop()


async def check(cloud: RunningCloud, session: aiohttp.ClientSession, data: Path) -> subprocess.CompletedProcess[str]:
    token = TokenFile(data).load()
    assert token is not None
    async with session.get(f"{cloud.url}/v1/manifest", headers={"Authorization": f"Bearer {token.access_token}"}) as r:
        assert r.status == 200
        (data / "manifest").write_text(await r.text())
    return subprocess.run(["rclone", "check", "--checkfile", "dropbox", str(data / "manifest"), str(data / "media"),
                           "--combined", "-"], capture_output=True, text=True, timeout=60)


async def test_link_then_sync_with_faults(setup: Any) -> None:
    cloud, store, session, clock, data = setup
    tf = TokenFile(data)

    async def approve(code: DeviceCode) -> None:  # the household approves on a phone
        async with session.post(f"{cloud.url}/device", data={"user_code": code.user_code, "action": "approve"}) as r:
            assert r.status == 200

    cloud.faults.set("slow_down*1")
    await link(session, cloud.url, tf, approve, clock=clock)
    assert clock.slept[:2] == [5, 10]  # slow_down honoured (+5 s)

    client = CloudClient(session, TokenSource(session, tf, clock), cloud.url, clock)
    engine = SyncEngine(store, data, client, policy=SyncPolicy(page_limit=2, transport_attempts=20), clock=clock)
    report = await engine.sync_once()
    assert report.downloaded == 5 and not report.failed
    r = await check(cloud, session, data)
    assert r.returncode == 0, r.stdout + r.stderr

    # the cloud changes; its faults fire at random; a reset forces a relist
    (cloud.library.root / "Photos/a.jpg").unlink()
    (cloud.library.root / "Films/new.bin").write_bytes(os.urandom(2 * MiB))
    (cloud.library.root / "Films/short.bin").write_bytes(os.urandom(123_456))
    cloud.faults.set("random=0.4")
    cloud.faults.set("reset*1")
    outcomes = []
    for _ in range(8):  # bounded: what run() would do, pass after pass
        try:
            report = await engine.sync_once()
        except Exception as exc:  # noqa: BLE001 - e.g. too many resets in one pass
            outcomes.append(type(exc).__name__)
            continue
        outcomes.append(report.failed)
        if not report.failed:
            break
    assert outcomes[-1] == [], outcomes
    assert engine.counters.transport_retries or client.retries
    cloud.faults.clear()
    report = await engine.sync_once()
    assert not report.failed
    r = await check(cloud, session, data)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (data / "media/Photos/a.jpg").exists()
    assert list((data / "media-trash").rglob("a.jpg"))
