"""A real Home Assistant for tests: its own venv (make .venvha/.installed), config dir and port.

It starts with a minimal configuration.yaml (no default_config), --skip-pip, HTTP on 127.0.0.1,
inside the test's network namespace; the test onboards an owner and adds the MQTT integration
through HA's own REST config flow, then reads HA through its WebSocket API.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.broker import wait_for_port

ROOT = Path(__file__).resolve().parent.parent
HA_VENV = Path(os.environ.get("HUB_HA_VENV", ROOT / ".venvha"))

CONFIGURATION = """\
homeassistant:
  name: hub test
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: DE
  language: en
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
websocket_api:
onboarding:
logger:
  default: warning
  logs:
    # no libturbojpeg here; HA only uses it for camera snapshots
    homeassistant.components.camera.img_util: critical
"""


class HaError(AssertionError):
    """Home Assistant answered something the test did not expect."""


class HomeAssistant:
    """One `hass` process; start() waits for its HTTP API, stop() ends it."""

    def __init__(self, config_dir: Path, port: int) -> None:
        self.config_dir = config_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.token = ""
        self.version = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.config_dir / "hass.out"

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def start(self, timeout: float = 120) -> None:
        hass = HA_VENV / "bin" / "hass"
        if not hass.exists():
            pytest.fail(f"Home Assistant is not installed in {HA_VENV}: run `make .venvha/.installed`")
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(hass), "-c", str(self.config_dir), "--skip-pip", "--log-no-color"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            # HA opens its HTTP port only once bootstrap has set up every integration
            await asyncio.to_thread(wait_for_port, "127.0.0.1", self.port, timeout, self.proc)
        except (RuntimeError, TimeoutError) as e:
            raise HaError(f"Home Assistant did not start: {e}\n{self.log_tail()}") from None

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)

    async def onboard(self, session: aiohttp.ClientSession) -> None:
        """Create the owner through HA's onboarding API and get an access token for it."""
        client_id = f"{self.url}/"
        async with session.post(f"{self.url}/api/onboarding/users", json={
                "client_id": client_id, "name": "Test", "username": "test", "password": "test-password-1",
                "language": "en"}) as r:
            if r.status != 200:
                raise HaError(f"onboarding failed: {r.status} {await r.text()}")
            code = (await r.json())["auth_code"]
        async with session.post(f"{self.url}/auth/token", data={
                "grant_type": "authorization_code", "code": code, "client_id": client_id}) as r:
            if r.status != 200:
                raise HaError(f"token exchange failed: {r.status} {await r.text()}")
            self.token = (await r.json())["access_token"]
        async with session.get(f"{self.url}/api/config", headers=self.headers) as r:
            self.version = (await r.json())["version"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def add_mqtt(self, session: aiohttp.ClientSession, host: str, port: int) -> None:
        """The MQTT integration, added the way the UI adds it: HA's config flow over REST."""
        base = f"{self.url}/api/config/config_entries/flow"
        async with session.post(base, headers=self.headers, json={"handler": "mqtt"}) as r:
            step = await r.json()
        if step.get("type") != "form" or step.get("step_id") != "broker":
            raise HaError(f"unexpected first MQTT config step: {step}")
        async with session.post(f"{base}/{step['flow_id']}", headers=self.headers,
                                json={"broker": host, "port": port}) as r:
            result = await r.json()
        if result.get("type") != "create_entry":
            raise HaError(f"MQTT config flow did not finish: {result}\n{self.log_tail()}")

    @contextlib.asynccontextmanager
    async def websocket(self, session: aiohttp.ClientSession) -> AsyncIterator["HaSocket"]:
        async with session.ws_connect(f"{self.url}/api/websocket", max_msg_size=0) as ws:
            hello = await ws.receive_json()
            assert hello["type"] == "auth_required", hello
            await ws.send_json({"type": "auth", "access_token": self.token})
            ok = await ws.receive_json()
            if ok["type"] != "auth_ok":
                raise HaError(f"WebSocket auth failed: {ok}")
            sock = HaSocket(ws)
            reader = asyncio.get_running_loop().create_task(sock._read())
            try:
                yield sock
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader


class HaSocket:
    """HA's WebSocket API: commands with ids, and one bounded queue of subscribed events."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(100_000)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = msg.json()
            for m in data if isinstance(data, list) else [data]:
                if m.get("type") == "event":
                    self.events.put_nowait(m["event"])
                elif (fut := self._waiting.pop(m.get("id"), None)) is not None and not fut.done():
                    fut.set_result(m)

    async def call(self, type: str, timeout: float = 30, **data: Any) -> Any:
        msg_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = fut
        await self.ws.send_json({"id": msg_id, "type": type, **data})
        reply = await asyncio.wait_for(fut, timeout)
        if not reply.get("success"):
            raise HaError(f"{type} failed: {reply.get('error')}")
        return reply.get("result")

    async def wait_until(self, check: Any, timeout: float, what: str) -> Any:
        """Re-evaluate `await check()` after each burst of subscribed events until it is truthy."""
        async def loop() -> Any:
            while not (result := await check()):
                await self.events.get()
                while not self.events.empty():  # one re-check per burst, not per event
                    self.events.get_nowait()
            return result
        try:
            return await asyncio.wait_for(loop(), timeout)
        except asyncio.TimeoutError:
            raise HaError(f"timed out waiting for {what}") from None
