"""House rules for the simulated cloud: no hub imports, and no disk work on the event loop."""

from __future__ import annotations

import ast
import asyncio
import builtins
from pathlib import Path

from aiohttp import ClientSession

import firmware_sim.cloud
from firmware_sim.cloud import content, store
from firmware_sim.cloud.content_hash import HashCache
from firmware_sim.cloud.testing import running_cloud

PACKAGE = Path(firmware_sim.cloud.__file__).parent


def test_cloud_modules_import_neither_hub_nor_devices():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("hub", "devices"), f"{path.name} imports {name}"


def _off_loop(what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise AssertionError(f"{what} ran on the event loop thread")


async def test_hashing_probing_and_file_reads_run_in_threads(tmp_path: Path, monkeypatch):
    real_hash, real_probe, real_walk = HashCache.hash, store.probe_file, store._walk
    calls: list[str] = []

    def hash_(self, *args):
        _off_loop("hashing")
        calls.append("hash")
        return real_hash(self, *args)

    def probe(path):
        _off_loop("probing")
        calls.append("probe")
        return real_probe(path)

    def walk(root, *rest):
        _off_loop("directory walk")
        calls.append("walk")
        return real_walk(root, *rest)

    def open_(*args, **kwargs):
        _off_loop("open")
        calls.append("open")
        return builtins.open(*args, **kwargs)

    monkeypatch.setattr(HashCache, "hash", hash_)
    monkeypatch.setattr(store, "probe_file", probe)
    monkeypatch.setattr(store, "_walk", walk)
    monkeypatch.setattr(content, "open", open_, raising=False)  # module-level name
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.bin").write_bytes(b"a" * 5_000_000)
    async with running_cloud(lib) as cloud, ClientSession() as s:
        token = await cloud.token(s)
        s.headers["Authorization"] = f"Bearer {token['access_token']}"
        async with s.get(f"{cloud.url}/v1/changes") as r:
            [entry] = (await r.json())["entries"]
        async with s.get(f"{cloud.url}/v1/files/{entry['id']}/content") as r:
            assert len(await r.read()) == 5_000_000
        async with s.get(f"{cloud.url}/v1/files/{entry['id']}/content",
                         params={"rev": "stale"}) as r:
            assert r.status == 410
    assert {"hash", "probe", "walk", "open"} <= set(calls)
