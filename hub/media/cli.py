"""`hub cloud link|unlink`, `hub sync` and `hub media verify|manifest`: what hub/cli.py runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from ..store import Store
from .auth import CloudAuthError, DeviceCode, TokenFile, TokenSource, link
from .client import CloudClient, CloudError, RetryLater
from ..clock import Clock, SystemClock
from .library import manifest
from .lock import SyncBusy, SyncLock
from .sync import SyncEngine, SyncPolicy
from .trash import DeletePolicy
from .verify import verify_library

BUSY = 3  # exit status when another process is syncing the same data directory


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
        if not once:
            console.print(f"syncing {data_dir / 'media'} (Ctrl-C stops)")
        async with aiohttp.ClientSession() as session:
            client = CloudClient(session, TokenSource(session, tokens, clock), t.cloud_url, clock)
            engine = SyncEngine(store, data_dir, client, policy=policy, clock=clock, on_progress=on_progress,
                                owner="hub sync")
            with bar:
                if not once:
                    await engine.run()
                    return 0
                report = await engine.sync_once()
        c = engine.counters
        console.print(
            f"synced: {report.downloaded} downloaded, {report.moved} moved, {report.deleted} deleted, "
            f"{len(report.failed)} failed; {c.bytes_received} bytes received, {c.bytes_reused} resumed, "
            f"{c.bytes_rehashed} re-hashed"
        )
        if report.deferred:
            console.print(f"{report.deferred} files are being played: they are replaced or trashed once playback stops")
        for r in report.rejected:
            console.print(f"[yellow]skipped unsafe path[/] {escape(r)}", soft_wrap=True)
        if report.deletions_blocked:
            console.print(f"[yellow]deletions held back:[/] {report.deletions_blocked}")
        return 1 if report.failed else 0
    except SyncBusy as exc:
        console.print(f"[yellow]Not syncing:[/] {escape(str(exc))}. A running hub syncs on its own "
                      "(POST /api/media/sync or the UI starts a pass now); or try again when it is done.",
                      soft_wrap=True)
        return BUSY
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


async def verify(data_dir: Path, refetch: bool = True, console: Console | None = None, quiet: bool = False) -> int:
    """Re-hash the library; report damaged and missing files and fetch them again; 0 when all is well."""
    console = console or Console(stderr=True)
    store = Store(Path(data_dir) / "hub.db")
    lock = SyncLock(data_dir, "hub media verify")
    try:
        await asyncio.to_thread(lock.acquire)
    except SyncBusy as exc:
        console.print(f"[yellow]Not verifying:[/] {escape(str(exc))}; try again when it is done.", soft_wrap=True)
        return BUSY
    await store.start()
    try:
        bar = Progress(TextColumn("verifying"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                       TimeRemainingColumn(), console=console, disable=quiet)
        with bar:
            task = bar.add_task("verify", total=None)
            loop = asyncio.get_running_loop()

            def on_file(size: int) -> None:  # called from the hashing thread
                loop.call_soon_threadsafe(lambda: bar.advance(task, size))

            report = await verify_library(store, data_dir, SystemClock().now(), on_file)
    finally:
        await store.stop()
        await asyncio.to_thread(lock.release)
    console.print(f"verified {report.checked} files ({report.bytes} bytes): "
                  f"{len(report.damaged)} damaged, {len(report.missing)} missing")
    for path in report.damaged:
        console.print(f"[red]damaged[/] {escape(path)} (moved to {escape(str(Path(data_dir) / 'media-trash'))})",
                      soft_wrap=True)
    for path in report.missing:
        console.print(f"[red]missing[/] {escape(path)}", soft_wrap=True)
    if report.ok:
        return 0
    if not refetch:
        console.print("Run `hub sync --once` to fetch them again.")
        return 1
    if TokenFile(data_dir).load() is None:
        console.print("Not linked to a cloud: link it (`hub cloud link`) and sync to fetch them again.")
        return 1
    console.print("fetching them again…")
    return await sync(data_dir, once=True, console=console, quiet=quiet)
