"""The OpenAPI document describes every /api/ route the app serves, and the hub keeps to it under fuzzing.

The fuzzing is schemathesis (an independent client) run from its own CLI against a real hub on
the test Mosquitto, with real Homie devices, authenticated with the test's bearer token.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from rich.console import Console

from firmware_sim.cloud.testing import running_cloud
from firmware_sim.projector import ProjectorSim
from firmware_sim.projector.model import ProjectorConfig
from hub.broker import free_port
from hub.config import HubConfig
from hub.core import Hub
from hub.media.cli import cloud_link
from hub.service import media_service
from hub.web.app import make_app
from hub.web.openapi import openapi
from tests.conftest import RunningHub, until
from tests.homie_peer import HomiePeer, advertise, loopback_zeroconf

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 20  # per operation and phase: enough to find a 500 or a schema break, done well under a minute


def served_api_operations(hub: Hub) -> set[tuple[str, str]]:
    app = make_app(hub, media_service(hub))
    return {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
            if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"}


def test_every_api_route_is_described_and_nothing_else(tmp_path: Path) -> None:
    hub = Hub(HubConfig(data_dir=tmp_path))  # constructed only: nothing starts
    served = served_api_operations(hub)
    doc = openapi(hub)
    described = {(method, path) for path, ops in doc["paths"].items() for method in ops
                 if "x-instance-of" not in ops}  # one device's own path, under a described template
    assert served - described == set(), "routes with no OpenAPI description (add an Op in hub/web/openapi.py)"
    assert described - served == set(), "described operations the app does not serve"
    assert len(served) >= 14


def test_public_operations_are_health_and_signing_in(tmp_path: Path) -> None:
    doc = openapi(Hub(HubConfig(data_dir=tmp_path)))
    public = {(m, p) for p, ops in doc["paths"].items() for m, op in ops.items() if op.get("security") == []}
    assert public == {("get", "/api/health"), ("get", "/api/auth/state"), ("post", "/api/onboarding"),
                      ("post", "/api/auth/login")}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if (method, path) not in public:
                assert "401" in op["responses"], (method, path)


@pytest.fixture
async def house(running: RunningHub, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """Like the demo: a lamp that confirms, a device that never answers, the projector with its
    media player, and a film synced from the operator cloud into the library."""
    hub = running.hub
    library = tmp_path / "cloud"
    (library / "Films").mkdir(parents=True)
    (library / "Films" / "Short.mp4").write_bytes(b"\x00" * 4096)
    peers = [HomiePeer(running.broker.port, "fuzz-lamp"), HomiePeer(running.broker.port, "fuzz-silent", echo=False)]
    projector = ProjectorSim(ProjectorConfig(name="Fuzz projector", warmup=0.1, cooldown=0.1),
                             port=free_port(), udp_port=free_port(), notify_port=free_port(),
                             state_dir=tmp_path / "sim", mdns_interface="127.0.0.1", broker=running.broker.url)
    aiozc = loopback_zeroconf()
    async with running_cloud(library, auto_approve=True, interval=1) as cloud, \
            aiohttp.ClientSession(headers=running.headers) as s:
        assert await cloud_link(hub.config.data_dir, cloud.url, console=Console(quiet=True)) == 0
        with hub.bus.subscribe() as sub:
            async with s.post(f"{running.url}/api/media/sync") as r:
                assert r.status == 202, await r.text()
            while not (items := (await (await s.get(f"{running.url}/api/media")).json())["items"]):
                await asyncio.wait_for(sub.get(), 20)  # sync_progress events until the film is in
        for peer in peers:
            await peer.start()
            await advertise(aiozc, peer.id)
        await projector.start()

        def projector_id() -> str | None:
            return next((d.id for d in hub.registry.devices.values()
                         if d.info.driver == "pjlink" and d.info.expose("media_url") and d.state.online), None)

        def ready() -> bool:
            online = {d.id for d in hub.registry.devices.values() if d.state.online}
            return {p.id for p in peers} <= online and projector_id() is not None

        try:
            await until(hub, ready, 30, "lamp, silent device and projector with its player online")
            # accounts the fuzzer may change and delete, so that it never locks out the test's own owner
            async with s.post(f"{running.url}/api/users", json={"name": "fuzz-member", "password": "fuzz password"}) as r:
                assert r.status == 201
            async with s.post(f"{running.url}/api/tokens", json={"name": "fuzz"}) as r:
                spare = (await r.json())["id"]
            yield {"FUZZ_MEDIA_ID": str(items[0]["id"]), "FUZZ_PROJECTOR": str(projector_id()),
                   "FUZZ_TOKEN_ID": spare}
        finally:
            await projector.stop()
            for peer in peers:
                await peer.stop()
            await aiozc.async_close()


async def test_schemathesis_finds_no_server_error_and_no_schema_break(
    running: RunningHub, house: dict[str, str], tmp_path: Path
) -> None:
    running.hub.config.command_timeout = 0.2  # the silent device's 504s stay quick
    report = tmp_path / "schemathesis.json"
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{running.url}/api/openapi.json",
        "--header", f"Authorization: Bearer {running.token}",
        "--max-examples", str(MAX_EXAMPLES), "--workers", "2",
        # one seed in CI, so a red run can be replayed; HUB_FUZZ_SEED=<n> explores others
        "--seed", os.environ.get("HUB_FUZZ_SEED", "20261201"),
        "--request-timeout", "10", "--report", "json", "--report-json-path", str(report),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, **house},
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 150)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    print(text)
    assert proc.returncode == 0, text[-6000:]
    summary = json.loads(report.read_text())
    assert summary["operations"]["tested"] == summary["operations"]["total"] >= 13  # all but the document itself
    assert summary["test_cases"]["generated"] >= 300
    assert summary["failures"] == [] and summary["errors"] == []
    print(f"schemathesis: {summary['operations']['tested']} operations, "
          f"{summary['test_cases']['generated']} cases, {summary['running_time']:.1f} s")


def test_operation_ids_are_unique_and_links_name_real_operations(tmp_path: Path) -> None:
    doc = openapi(Hub(HubConfig(data_dir=tmp_path)))
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values() if isinstance(op, dict)]
    assert len(ids) == len(set(ids))
    for ops in doc["paths"].values():
        for op in (op for op in ops.values() if isinstance(op, dict)):
            for response in op["responses"].values():
                for link in response.get("links", {}).values():
                    assert link["operationId"] in ids
