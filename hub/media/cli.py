"""`hub cloud link`, `hub cloud unlink` and `hub sync` as functions the main CLI calls.

Also runnable alone: `python -m hub.media --data DIR {link --cloud URL | unlink | sync [--once]}`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from ..config import default_data_dir
from ..store import Store
from .auth import CloudAuthError, DeviceCode, TokenFile, TokenSource, link
from .client import CloudClient, CloudError, RetryLater
from .clock import Clock, SystemClock
from .library import manifest
from .sync import SyncEngine, SyncPolicy
from .trash import DeletePolicy


async def cloud_link(data_dir: Path, cloud_url: str, console: Console | None = None, clock: Clock | None = None) -> int:
    """Link this hub to a cloud account with the device code flow; 0 on success."""
    console = console or Console()

    def show(code: DeviceCode) -> None:
        console.print(f"To link this hub, open [bold]{code.verification_uri}[/] and enter the code [bold]{code.user_code}[/]")
        if code.verification_uri_complete:
            console.print(f"(or open {code.verification_uri_complete})")
        console.print(f"Waiting for approval (the code expires in {int(code.expires_in) // 60} min)…")

    async with aiohttp.ClientSession() as session:
        try:
            await link(session, cloud_url, TokenFile(data_dir), show, clock=clock)
        except CloudAuthError as exc:
            console.print(f"[red]Not linked:[/] {exc}")
            return 1
        except aiohttp.ClientError as exc:
            console.print(f"[red]Cannot reach {cloud_url}:[/] {exc}")
            return 1
    console.print("Linked. Run `hub sync` to fetch your media.")
    return 0


def cloud_unlink(data_dir: Path, console: Console | None = None) -> int:
    """Forget the cloud tokens; synced files stay where they are."""
    console = console or Console()
    if TokenFile(data_dir).delete():
        console.print(f"Unlinked. Files under {Path(data_dir) / 'media'} were kept.")
    else:
        console.print("This hub was not linked.")
    return 0


async def sync(
    data_dir: Path,
    once: bool = False,
    *,
    bandwidth: float | None = None,
    concurrency: int = 3,
    max_deletes: int | None = None,
    console: Console | None = None,
    quiet: bool = False,
) -> int:
    """Sync `<data>/media/` from the linked cloud, with a progress bar; 0 when all files verified."""
    console = console or Console(stderr=True)
    tokens = TokenFile(data_dir)
    t = tokens.load()
    if t is None:
        console.print("[red]Not linked:[/] run `hub cloud link --cloud URL` first")
        return 2
    deletes = DeletePolicy(max_deletes=max_deletes) if max_deletes is not None else DeletePolicy()
    policy = SyncPolicy(concurrency=concurrency, bandwidth=bandwidth, deletes=deletes)
    store = Store(Path(data_dir) / "hub.db")
    await store.start()
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[files]}"), console=console, disable=quiet, transient=False,
    )
    task = bar.add_task("listing", total=None, files="")

    def on_progress(p: dict[str, Any]) -> None:
        current = p["current"][0].rsplit("/", 1)[-1] if p["current"] else {"idle": "done"}.get(p["phase"], p["phase"])
        bar.update(
            task, total=p["bytes_total"] or None, completed=p["bytes_done"], description=current[:30],
            files=f"{p['files_done']}/{p['files_total']} files",
        )

    clock = SystemClock()
    try:
        async with aiohttp.ClientSession() as session:
            client = CloudClient(session, TokenSource(session, tokens, clock), t.cloud_url, clock)
            engine = SyncEngine(store, data_dir, client, policy=policy, clock=clock, on_progress=on_progress)
            with bar:
                if not once:
                    await engine.run()
                    return 0
                report = await engine.sync_once()
        c = engine.counters
        console.print(
            f"synced: {report.downloaded} downloaded, {report.moved} moved, {report.deleted} deleted, "
            f"{len(report.failed)} failed; {c.bytes_received} bytes received, {c.bytes_reused} resumed"
        )
        for r in report.rejected:
            console.print(f"[yellow]skipped unsafe path[/] {r}")
        if report.deletions_blocked:
            console.print(f"[yellow]deletions held back:[/] {report.deletions_blocked}")
        return 1 if report.failed else 0
    except CloudAuthError as exc:
        console.print(f"[red]Cloud refused the hub:[/] {exc}")
        return 2
    except (aiohttp.ClientError, asyncio.TimeoutError, CloudError, RetryLater) as exc:
        console.print(f"[red]Sync failed:[/] {exc or type(exc).__name__} (run again to resume)")
        return 1
    finally:
        await store.stop()


async def write_manifest(data_dir: Path, out: Path) -> int:
    """Write `<content_hash>  <path>` lines for `rclone check --checkfile dropbox`."""
    store = Store(Path(data_dir) / "hub.db")
    await store.start()
    try:
        lines = await store.call(manifest)
    finally:
        await store.stop()
    out.write_text("".join(f"{line}\n" for line in lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hub.media", description="cloud media sync")
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("link", help="link to a cloud account (device code)")
    p.add_argument("--cloud", required=True)
    sub.add_parser("unlink", help="forget the cloud tokens (keeps files)")
    p = sub.add_parser("sync", help="sync media from the cloud")
    p.add_argument("--once", action="store_true")
    p.add_argument("--bwlimit", type=float, default=None, help="bytes per second")
    p.add_argument("--transfers", type=int, default=3)
    p.add_argument("--max-deletes", type=int, default=None)
    p.add_argument("--quiet", action="store_true")
    p = sub.add_parser("manifest", help="print the library's content-hash manifest to a file")
    p.add_argument("out", type=Path)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if a.cmd == "link":
        return asyncio.run(cloud_link(a.data, a.cloud))
    if a.cmd == "unlink":
        return cloud_unlink(a.data)
    if a.cmd == "manifest":
        return asyncio.run(write_manifest(a.data, a.out))
    try:
        return asyncio.run(
            sync(a.data, a.once, bandwidth=a.bwlimit, concurrency=a.transfers, max_deletes=a.max_deletes, quiet=a.quiet)
        )
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
