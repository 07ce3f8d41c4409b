"""Media sync benchmark: prints numbers, asserts nothing.

    .venv/bin/python bench/sync_bench.py [--size-mb 1024] [--files 8] [--items 10000] [--kill-mb 256]
                                         [--only throughput|first|noop|kill ...]

Runs inside scripts/in-netns (loopback only). Measures, against the cloud simulator
(`firmware-sim cloud`, its own process):
1. throughput of `hub sync` for --size-mb spread over --files files, vs curl fetching the
   same files from the same server (3 parallel), vs `rclone copy` (3 transfers) from
   `rclone serve webdav` over the same directory;
2. (`make bench`) the first sync of --items small files (durable: every file fsynced), next to
   its peer, `rclone copy` of the same files from `rclone serve webdav` (which fsyncs nothing),
   and to its floor, GETting every file from the same simulator into memory;
3. the time of a no-op re-sync of that library;
4. (`make bench`) a sync SIGKILLed at ~50% of a --kill-mb file and run again: bytes received
   again and bytes hashed by the second run, next to the floor (the bytes it never had).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.media.auth import TokenFile, link  # noqa: E402
from hub.media.client import CloudClient  # noqa: E402
from hub.media.auth import TokenSource  # noqa: E402
from hub.clock import SystemClock  # noqa: E402
from hub.media.sync import SyncEngine, SyncPolicy  # noqa: E402
from hub.store import Store  # noqa: E402

MiB = 1 << 20
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(MiB)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, MiB)
            f.write(chunk[:n])
            left -= n
    # identical chunks would make the test trivially compressible: nothing compresses here anyway


class Cloud:
    """`firmware-sim cloud` as a subprocess."""

    def __init__(self, library: Path, *faults: str) -> None:
        self.library = library
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.faults = faults
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Cloud":
        args = [PY, "-m", "firmware_sim.cli", "cloud", "--library", str(self.library), "--port", str(self.port),
                "--auto-approve", "--scan-interval", "0"]
        for f in self.faults:
            args += ["--fault", f]
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        seen = []
        for _ in range(20):  # log lines may come first; "operator cloud on ..." once it listens
            line = self.proc.stdout.readline()
            seen.append(line)
            if "operator cloud on" in line:
                return self
            if not line:
                break
        self.proc.kill()
        raise RuntimeError("simulator did not start: " + "".join(seen))

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def do_link(data: Path, url: str) -> str:
    async with aiohttp.ClientSession() as s:
        tokens = await link(s, url, TokenFile(data), lambda code: None)
    return tokens.access_token


async def do_sync(data: Path, url: str, concurrency: int = 3) -> tuple[float, dict]:
    store = Store(data / "hub.db")
    await store.start()
    clock = SystemClock()
    try:
        async with aiohttp.ClientSession() as s:
            client = CloudClient(s, TokenSource(s, TokenFile(data), clock), url, clock)
            engine = SyncEngine(store, data, client, policy=SyncPolicy(concurrency=concurrency, page_limit=2000), clock=clock)
            t0 = time.perf_counter()
            report = await engine.sync_once()
            dt = time.perf_counter() - t0
            return dt, {"report": report.as_dict(), "counters": engine.counters.as_dict()}
    finally:
        await store.stop()


async def file_ids(url: str, token: str) -> list[tuple[str, str]]:
    out, cursor = [], None
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        while True:
            params = {"limit": "2000", **({"cursor": cursor} if cursor else {})}
            async with s.get(f"{url}/v1/changes", params=params) as r:
                page = await r.json()
            out += [(e["id"], e["path"]) for e in page["entries"] if e["tag"] == "file"]
            cursor = page["cursor"]
            if not page["has_more"]:
                return out


def bench_throughput(tmp: Path, size_mb: int, nfiles: int) -> None:
    lib = tmp / "lib"
    per = size_mb * MiB // nfiles
    for i in range(nfiles):
        write_random(lib / f"films/{i:03d}.bin", per)
    total = per * nfiles
    print(f"\n== throughput: {nfiles} files, {total / MiB:.0f} MiB, loopback ==")
    with Cloud(lib) as cloud:
        data = tmp / "hub"
        token = asyncio.run(do_link(data, cloud.url))
        # warm the simulator's hash cache so all three clients see the same server state
        ids = asyncio.run(file_ids(cloud.url, token))
        dt, info = asyncio.run(do_sync(data, cloud.url))
        print(f"hub sync (3 transfers, verify+fsync): {dt:6.2f} s  {total / dt / 1e6:7.1f} MB/s  "
              f"received={info['counters']['bytes_received']}")
        out = tmp / "curl"
        out.mkdir()
        cfg = "".join(
            f'url = "{cloud.url}/v1/files/{fid}/content"\noutput = "{out}/{i}.bin"\n' for i, (fid, _p) in enumerate(ids)
        )
        (tmp / "curl.cfg").write_text(cfg)
        t0 = time.perf_counter()
        subprocess.run(["curl", "-sS", "--no-progress-meter", "--fail", "--parallel", "--parallel-max", "3", "-H", f"Authorization: Bearer {token}",
                        "-K", str(tmp / "curl.cfg")], check=True)
        dt = time.perf_counter() - t0
        print(f"curl (3 parallel, same server):      {dt:6.2f} s  {total / dt / 1e6:7.1f} MB/s")
        os.sync()
        t0 = time.perf_counter()
        subprocess.run(["curl", "-sS", "--no-progress-meter", "--fail", "--parallel", "--parallel-max", "3",
                        "-H", f"Authorization: Bearer {token}", "-K", str(tmp / "curl.cfg")], check=True)
        os.sync()  # what the hub pays for durability (fsync before rename), curl doesn't
        dt = time.perf_counter() - t0
        print(f"curl then sync(1) (durable):         {dt:6.2f} s  {total / dt / 1e6:7.1f} MB/s")
        shutil.rmtree(out)
    port = free_port()
    serve = subprocess.Popen(["rclone", "serve", "webdav", str(lib), "--addr", f"127.0.0.1:{port}", "--read-only",
                              "--etag-hash", "dropbox"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        dst = tmp / "rclone"
        t0 = time.perf_counter()
        subprocess.run(["rclone", "copy", ":webdav:", str(dst), "--webdav-url", f"http://127.0.0.1:{port}/",
                        "--transfers", "3", "--multi-thread-streams", "0"], check=True)
        dt = time.perf_counter() - t0
        print(f"rclone copy from serve webdav (3):    {dt:6.2f} s  {total / dt / 1e6:7.1f} MB/s")
        shutil.rmtree(dst)
    finally:
        serve.terminate()
        serve.wait()
    shutil.rmtree(tmp / "hub")


def small_library(root: Path, items: int) -> None:
    for i in range(items):
        p = root / f"d{i // 500:03d}/f{i:05d}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(i.to_bytes(4, "big") * 16)


def write_durably(path: Path, body: bytes) -> None:
    with open(path, "wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())


async def get_all(url: str, token: str, ids: list[tuple[str, str]], concurrency: int, out: Path | None = None) -> float:
    """The floor: every file GET from the same server, `concurrency` at a time, into memory or
    (with `out`) each written and fsynced in a thread, as durability needs at the least."""
    todo = list(ids)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        async def worker() -> None:
            while todo:
                fid, _path = todo.pop()
                async with s.get(f"{url}/v1/files/{fid}/content") as r:
                    body = await r.read()
                if out is not None:
                    await asyncio.to_thread(write_durably, out / fid, body)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0


def rclone_copy_webdav(lib: Path, dst: Path, transfers: int) -> float:
    """`rclone copy` of `lib` as served by `rclone serve webdav`; seconds."""
    port = free_port()
    serve = subprocess.Popen(["rclone", "serve", "webdav", str(lib), "--addr", f"127.0.0.1:{port}", "--read-only"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # bounded: 10 s for it to listen
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        t0 = time.perf_counter()
        subprocess.run(["rclone", "copy", ":webdav:", str(dst), "--webdav-url", f"http://127.0.0.1:{port}/",
                        "--transfers", str(transfers), "--checkers", str(transfers), "-q"], check=True, timeout=1800)
        return time.perf_counter() - t0
    finally:
        serve.terminate()
        serve.wait()


def bench_first(tmp: Path, items: int) -> None:
    lib = tmp / "first"
    small_library(lib, items)
    print(f"\n== first sync of {items} small files (64 B each, 20 folders) ==")
    with Cloud(lib) as cloud:
        data = tmp / "hub-first"
        token = asyncio.run(do_link(data, cloud.url))
        ids = asyncio.run(file_ids(cloud.url, token))  # warms the simulator's hash cache for everyone
        policy = SyncPolicy()
        floor = asyncio.run(get_all(cloud.url, token, ids, policy.small_concurrency))
        (tmp / "floor-first").mkdir()
        floor_durable = asyncio.run(get_all(cloud.url, token, ids, policy.small_concurrency, tmp / "floor-first"))
        shutil.rmtree(tmp / "floor-first")
        dt, info = asyncio.run(do_sync(data, cloud.url))
        assert info["report"]["downloaded"] == items, info
    peer = rclone_copy_webdav(lib, tmp / "rclone-first", policy.small_concurrency)
    shutil.rmtree(tmp / "rclone-first")
    print(f"hub sync (verify, fsync each file, batches):        {dt:7.2f} s  {items / dt:6.0f} files/s")
    print(f"peer: rclone copy from rclone serve webdav ({policy.small_concurrency}):   {peer:7.2f} s  "
          f"{items / peer:6.0f} files/s   hub is {peer / dt:.2f}x rclone (target >= 1.0x, <= 10 s)")
    print(f"floor: GET every file into memory ({policy.small_concurrency} at once):  {floor:7.2f} s  "
          f"{items / floor:6.0f} files/s   hub takes {dt / floor:.2f}x the floor")
    print(f"floor: GET, write and fsync each file in a thread:  {floor_durable:7.2f} s  "
          f"{items / floor_durable:6.0f} files/s   hub takes {dt / floor_durable:.2f}x this floor")
    shutil.rmtree(tmp / "hub-first")


def bench_noop(tmp: Path, items: int) -> None:
    lib = tmp / "many"
    small_library(lib, items)
    print(f"\n== library of {items} small files ==")
    with Cloud(lib) as cloud:
        data = tmp / "hub-many"
        asyncio.run(do_link(data, cloud.url))
        dt, info = asyncio.run(do_sync(data, cloud.url, concurrency=3))
        print(f"initial sync: {dt:6.2f} s ({info['report']['downloaded']} files, {items / dt:.0f} files/s)")
        times = []
        for _ in range(3):
            dt, info = asyncio.run(do_sync(data, cloud.url))
            assert info["report"]["downloaded"] == 0
            times.append(dt)
        print(f"no-op re-sync: best {min(times) * 1000:.0f} ms, runs {[round(t * 1000) for t in times]} ms")


def bench_kill(tmp: Path, kill_mb: int) -> None:
    lib = tmp / "kill"
    size = kill_mb * MiB
    write_random(lib / "film.bin", size)
    print(f"\n== SIGKILL at ~50% of a {kill_mb} MiB file, then re-run ==")
    rate = max(1, size // 4)  # ~4 s for the whole file
    with Cloud(lib, f"trickle={rate}") as cloud:
        data = tmp / "hub-kill"
        asyncio.run(do_link(data, cloud.url))
        proc = subprocess.Popen([PY, "-m", "hub.cli", "sync", "--once", "--quiet", "--data", str(data)], cwd=ROOT)
        partial_dir = data / "media" / ".partial"
        deadline = time.monotonic() + 60
        have = 0
        while time.monotonic() < deadline:  # a benchmark may poll; tests don't
            parts = list(partial_dir.glob("*.partial")) if partial_dir.is_dir() else []
            have = parts[0].stat().st_size if parts else 0
            if have >= size // 2:
                break
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        have = next(partial_dir.glob("*.partial")).stat().st_size
        subprocess.run(["curl", "-sS", "-X", "DELETE", f"{cloud.url}/_admin/faults"], check=True, capture_output=True)
        out = subprocess.run([PY, "-m", "hub.cli", "sync", "--once", "--quiet", "--data", str(data)], cwd=ROOT,
                             capture_output=True, text=True, timeout=600).stderr
    text = " ".join(out.split())
    m = re.search(r"(\d+) bytes received, (\d+) resumed, (\d+) re-hashed", text)
    if not m:
        print("re-run output:", out)
        return
    received, resumed, rehashed = (int(x) for x in m.groups())
    never = size - have  # the floor: bytes the first run never had, so never hashed
    print(f"kept in .partial at kill: {have / MiB:.1f} MiB; second run received {received / MiB:.1f} MiB, "
          f"resumed {resumed / MiB:.1f} MiB; re-downloaded {(received + resumed - size) / MiB:.2f} MiB")
    print(f"resumed download hashed {(received + rehashed) / MiB:.1f} MiB: {received / MiB:.1f} MiB received + "
          f"{rehashed / MiB:.1f} MiB re-read (the block the kill cut, < 4 MiB)")
    print(f"floor: the {never / MiB:.1f} MiB it never had: {(received + rehashed) / never:.3f}x the floor "
          f"(re-hashing the whole partial would be {size / never:.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--kill-mb", type=int, default=256)
    ap.add_argument("--only", choices=["throughput", "first", "noop", "kill"], action="append")
    a = ap.parse_args()
    only = set(a.only or ["throughput", "first", "noop", "kill"])
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as d:
        tmp = Path(d)
        if "throughput" in only:
            bench_throughput(tmp, a.size_mb, a.files)
        if "first" in only:
            bench_first(tmp, a.items)
        if "noop" in only:
            bench_noop(tmp, a.items)
        if "kill" in only:
            bench_kill(tmp, a.kill_mb)
    print(json.dumps({"python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
