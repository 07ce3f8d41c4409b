"""Numbers for the simulated operator cloud: hashing, scanning, listing and download speed.

Run: scripts/in-netns .venv/bin/python bench/sim_cloud_bench.py [--files 2000] [--mib 256]
Everything is on 127.0.0.1 in a temporary directory; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout

from firmware_sim.cloud.content_hash import hash_file
from firmware_sim.cloud.testing import running_cloud


def make_big(path: Path, mib: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(block)


async def bench(files: int, mib: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        for i in range(files):
            d = lib / f"Folder {i % 50:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"photo {i:05d}.jpg").write_bytes(os.urandom(2048))
        big = lib / "Films" / "big.mp4"
        big.parent.mkdir(parents=True)
        make_big(big, mib)

        t = time.perf_counter()
        hash_file(big)
        dt = time.perf_counter() - t
        print(f"content_hash of {mib} MiB: {dt:.2f} s = {mib / dt:.0f} MiB/s")

        t = time.perf_counter()
        async with running_cloud(lib) as cloud, ClientSession(
                timeout=ClientTimeout(total=None, sock_read=60)) as s:
            dt = time.perf_counter() - t
            print(f"first scan of {files + 1} files (hashing all): {dt:.2f} s")
            t = time.perf_counter()
            rounds = 10
            for _ in range(rounds):
                await cloud.library.refresh()
            per_scan = (time.perf_counter() - t) / rounds
            print(f"rescan with nothing changed: {per_scan * 1000:.1f} ms")

            token = await cloud.token(s)
            s.headers["Authorization"] = f"Bearer {token['access_token']}"
            t = time.perf_counter()
            cursor, pages, entries = None, 0, 0
            for _ in range(1000):  # bounded
                params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
                async with s.get(f"{cloud.url}/v1/changes", params=params) as r:
                    page = await r.json()
                pages += 1
                entries += len(page["entries"])
                cursor = page["cursor"]
                if not page["has_more"]:
                    break
            dt = time.perf_counter() - t
            print(f"full listing: {entries} entries in {pages} pages, {dt:.2f} s "
                  f"({dt / pages * 1000:.0f} ms/page incl. rescan)")

            big_id = cloud.library.journal.get("/Films/big.mp4").id
            url = f"{cloud.url}/v1/files/{big_id}/content"
            for label, headers in (("full GET", {}), ("Range from middle", {
                    "Range": f"bytes={(mib << 20) // 2}-"})):
                t = time.perf_counter()
                got = 0
                async with s.get(url, headers=headers) as r:
                    async for chunk in r.content.iter_chunked(1 << 20):
                        got += len(chunk)
                dt = time.perf_counter() - t
                print(f"download {label}: {got / (1 << 20):.0f} MiB in {dt:.2f} s = "
                      f"{got / (1 << 20) / dt:.0f} MiB/s")

            t = time.perf_counter()
            n = 200
            for _ in range(n):
                async with s.get(url, headers={"Range": "bytes=0-0"}) as r:
                    await r.read()
            print(f"small Range request: {(time.perf_counter() - t) / n * 1000:.2f} ms each")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--mib", type=int, default=256)
    a = p.parse_args()
    asyncio.run(bench(a.files, a.mib))


if __name__ == "__main__":
    main()
