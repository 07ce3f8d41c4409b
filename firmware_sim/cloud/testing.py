"""Running the simulated cloud inside a test: a fake clock and an in-process server.

Usable from any test (the hub's sync tests too): tests may import firmware_sim; the hub
package itself never does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from .app import AUTHORITY, FAULTS, LIBRARY, create_app
from .auth import DeviceAuthority
from .faults import FaultSet
from .store import Library


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class RunningCloud:
    """A cloud app served on 127.0.0.1 by aiohttp's TestServer."""

    app: web.Application
    server: TestServer

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def library(self) -> Library:
        return self.app[LIBRARY]

    @property
    def authority(self) -> DeviceAuthority:
        return self.app[AUTHORITY]

    @property
    def faults(self) -> FaultSet:
        return self.app[FAULTS]

    async def token(self, session: ClientSession, client_id: str = "test-hub") -> dict[str, Any]:
        """Run the whole device grant over HTTP, approving through the /device page."""
        async with session.post(f"{self.url}/oauth/device/code",
                                data={"client_id": client_id, "scope": "media.read"}) as r:
            r.raise_for_status()
            grant = await r.json()
        if not self.authority.auto_approve:
            async with session.post(f"{self.url}/device", data={
                    "user_code": grant["user_code"], "action": "approve"}) as r:
                r.raise_for_status()
        async with session.post(f"{self.url}/oauth/token", data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": grant["device_code"], "client_id": client_id}) as r:
            r.raise_for_status()
            return await r.json()


@contextlib.asynccontextmanager
async def running_cloud(library_dir: Path, **options: Any) -> AsyncIterator[RunningCloud]:
    """Serve a cloud over `library_dir` on a free loopback port for the `async with` body.

    `options` are create_app's keyword arguments; scan_interval defaults to 0 here (scans
    happen on requests and helper calls), so tests decide when the disk is looked at.
    """
    options.setdefault("scan_interval", 0)
    app = create_app(library_dir, **options)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield RunningCloud(app, server)
    finally:
        await server.close()
