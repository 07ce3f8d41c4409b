"""Test helpers for the PJLink driver: pjlink-advance's emulator as a subprocess, a recording context."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from hub.model import DeviceInfo

ROOT = Path(__file__).resolve().parents[1]
PY313 = Path(os.environ.get("HUB_PY313_VENV", ROOT / ".venv313")) / "bin" / "python"
RUNNER = Path(__file__).with_name("pjlink_emulator_runner.py")
MAKE_VENV = (
    "/root/.pyenv/versions/3.13.0/bin/python -m venv .venv313 && "
    ".venv313/bin/pip install pjlink-advance==0.2.0"
)


class Emulator:
    """pjlink-advance's PJLinkEmulator (an independent projector) in its own Python 3.13 process."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.udp_port = 0

    async def start(self) -> Emulator:
        if not PY313.exists():
            pytest.fail(f"pjlink-advance's venv is missing ({PY313}); create it with: {MAKE_VENV}")
        self.proc = await asyncio.create_subprocess_exec(
            str(PY313), str(RUNNER), json.dumps(self.options),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        if not line:
            pytest.fail("pjlink-advance emulator did not start (is pjlink-advance installed in .venv313?)")
        ports = json.loads(line)
        self.port, self.udp_port = ports["port"], ports["udp_port"]
        self.options["port"] = self.port  # a restart comes back on the same port
        return self

    async def call(self, op: str, **kw: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"op": op, **kw}) + "\n").encode())
        await self.proc.stdin.drain()
        return json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 10))

    async def kill(self) -> None:
        """SIGKILL: the projector vanishes mid-whatever, like a pulled plug."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(self.proc.wait(), 10)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            await self.kill()


class FakeMqtt:
    """The hub's MQTT link as a driver sees it, in memory: records publishes, delivers injections."""

    def __init__(self) -> None:
        self.handlers: list[tuple[str, Callable[[str, bytes, bool], None]]] = []
        self.published: list[tuple[str, str]] = []
        self.connected = True

    def subscribe(self, topic_filter: str, handler: Callable[[str, bytes, bool], None]) -> None:
        self.handlers.append((topic_filter, handler))

    def unsubscribe(self, topic_filter: str, handler: Callable[[str, bytes, bool], None]) -> None:
        self.handlers = [(f, h) for f, h in self.handlers if (f, h) != (topic_filter, handler)]

    async def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        self.published.append((topic, payload.decode() if isinstance(payload, bytes) else payload))

    def inject(self, topic: str, payload: bytes | str, retained: bool = True) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        for f, h in list(self.handlers):
            if _matches(f, topic):
                h(topic, data, retained)


def _matches(topic_filter: str, topic: str) -> bool:
    fp, tp = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(fp):
        if part == "#":
            return True
        if i >= len(tp) or (part != "+" and part != tp[i]):
            return False
    return len(fp) == len(tp)


class RecordingContext:
    """A DriverContext that records every report, and lets a test await a condition on them."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.mqtt = FakeMqtt()
        self.clock = time.monotonic
        self.options = options or {}
        self.devices: dict[str, DeviceInfo] = {}
        self.state: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[str, str, Any]] = []  # (kind, device id, payload) in order
        self.online: dict[str, bool] = {}
        self.errors: list[tuple[str, str]] = []
        self._changed = asyncio.Event()

    def _note(self, kind: str, device_id: str, payload: Any) -> None:
        self.log.append((kind, device_id, payload))
        self._changed.set()

    def device_found(self, info: DeviceInfo) -> None:
        self.devices[info.id] = info
        self._note("found", info.id, info)

    def state_changed(self, device_id: str, values: Mapping[str, Any]) -> None:
        self.state.setdefault(device_id, {}).update(values)
        self._note("state", device_id, dict(values))

    def target_accepted(self, device_id: str, values: Mapping[str, Any]) -> None:
        self._note("target", device_id, dict(values))

    def availability_changed(self, device_id: str, online: bool, reason: str = "") -> None:
        self.online[device_id] = online
        self._note("availability", device_id, online)

    def device_error(self, device_id: str, message: str) -> None:
        self.errors.append((device_id, message))
        self._note("error", device_id, message)

    def spawn(self, coro: Any, name: str) -> None:
        raise AssertionError("the PJLink driver owns its tasks")

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until predicate() is truthy, re-checking on every report (no polling sleep)."""
        async def _wait() -> Any:
            while not (result := predicate()):
                self._changed.clear()
                await self._changed.wait()
            return result
        return await asyncio.wait_for(_wait(), timeout)


__all__ = ["Emulator", "RecordingContext", "FakeMqtt"]
