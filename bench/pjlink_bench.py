"""PJLink client numbers against pjlink-advance's emulator: connections and latency per command.

Run inside the namespace: `scripts/in-netns .venv/bin/python bench/pjlink_bench.py` (needs .venv313).
Prints TCP connections opened per 100 commands (steady, and with the projector dropping the
session every 25 commands as an idle timeout would) and per-command latency percentiles.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.pjlink_client import PJLinkClient  # noqa: E402
from tests.pjlink_helpers import Emulator  # noqa: E402

COMMANDS = 1000
PASSWORD = "bench-password"


async def run(drop_every: int | None) -> tuple[float, list[float]]:
    emu = await Emulator(password=PASSWORD).start()
    client = PJLinkClient("127.0.0.1", emu.port, PASSWORD, timeout=5)
    latencies: list[float] = []
    try:
        for i in range(COMMANDS):
            if drop_every and i and i % drop_every == 0:
                await emu.call("disconnect_all")
            t = time.perf_counter()
            await client.request("POWR")
            latencies.append(time.perf_counter() - t)
    finally:
        await client.close()
        await emu.stop()
    return client.connections_opened * 100 / COMMANDS, latencies


async def main() -> None:
    for label, drop in (("steady session", None), ("session dropped every 25 commands", 25)):
        per100, lat = await run(drop)
        q = statistics.quantiles(lat, n=100)
        print(f"{label:36s} connections/100 commands: {per100:5.1f}   "
              f"latency p50 {q[49] * 1e3:.2f} ms  p95 {q[94] * 1e3:.2f} ms  max {max(lat) * 1e3:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
