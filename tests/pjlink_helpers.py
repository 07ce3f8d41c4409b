"""Test helpers for the PJLink driver: pjlink-advance's emulator as a subprocess (and the hub's test kit)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from hub.testing import FakeMqtt, RecordingContext  # the driver test kit

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


__all__ = ["Emulator", "RecordingContext", "FakeMqtt"]
