"""The OpenAPI document describes every /api/ route the app serves, and the hub keeps to it under fuzzing.

The fuzzing is schemathesis (an independent client) run from its own CLI against a real hub on
the test Mosquitto, with real Homie devices, authenticated with the test's bearer token.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.config import HubConfig
from hub.core import Hub
from hub.web.app import make_app
from hub.web.openapi import openapi
from tests.conftest import RunningHub, until
from tests.homie_peer import HomiePeer, advertise, loopback_zeroconf

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 20  # per operation and phase: enough to find a 500 or a schema break, done well under a minute


def served_api_operations(hub: Hub) -> set[tuple[str, str]]:
    app = make_app(hub, watch_cloud=False)
    return {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
            if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"}


def test_every_api_route_is_described_and_nothing_else(tmp_path: Path) -> None:
    hub = Hub(HubConfig(data_dir=tmp_path))  # constructed only: nothing starts
    served = served_api_operations(hub)
    doc = openapi(hub)
    described = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert served - described == set(), "routes with no OpenAPI description (add an Op in hub/web/openapi.py)"
    assert described - served == set(), "described operations the app does not serve"
    assert len(served) >= 14


def test_public_operations_are_only_health_and_the_document(tmp_path: Path) -> None:
    doc = openapi(Hub(HubConfig(data_dir=tmp_path)))
    public = {(m, p) for p, ops in doc["paths"].items() for m, op in ops.items() if op.get("security") == []}
    assert public == {("get", "/api/health"), ("get", "/api/openapi.json")}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if (method, path) not in public:
                assert "401" in op["responses"], (method, path)


@pytest.fixture
async def house(running: RunningHub) -> AsyncIterator[list[HomiePeer]]:
    """Two Homie devices online: a lamp that confirms, and one that never answers."""
    peers = [HomiePeer(running.broker.port, "fuzz-lamp"), HomiePeer(running.broker.port, "fuzz-silent", echo=False)]
    aiozc = loopback_zeroconf()
    for peer in peers:
        await peer.start()
        await advertise(aiozc, peer.id)
    hub = running.hub
    await until(hub, lambda: all((d := hub.registry.get(p.id)) is not None and d.state.online for p in peers),
                what="devices online")
    try:
        yield peers
    finally:
        for peer in peers:
            await peer.stop()
        await aiozc.async_close()


async def test_schemathesis_finds_no_server_error_and_no_schema_break(
    running: RunningHub, house: list[HomiePeer], tmp_path: Path
) -> None:
    running.hub.config.command_timeout = 0.2  # the silent device's 504s stay quick
    report = tmp_path / "schemathesis.json"
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{running.url}/api/openapi.json",
        "--header", f"Authorization: Bearer {running.token}",
        "--max-examples", str(MAX_EXAMPLES), "--workers", "2",
        "--request-timeout", "10", "--report", "json", "--report-json-path", str(report),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
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
