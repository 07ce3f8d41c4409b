"""The sync engine: pull the change feed into SQLite, then make `<data>/media/` match it.

One pass (`sync_once`): follow the cursor to the end (a full listing first, or again after a
410), saving the cursor with each page it applied; plan against the library; carry out
capped, trash-backed deletions (only after a complete listing); rename moved files; download
the rest with bounded concurrency, each verified, fsynced and renamed into place before its
SQLite row is committed. `run()` repeats passes, long-polling the feed between them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import library
from .auth import CloudAuthError
from .client import CloudClient, CloudError, CursorReset, RetryLater, TRANSPORT_ERRORS
from .clock import Clock, SystemClock
from .contenthash import Digests, hash_file
from .download import Counters, DownloadFailed, Downloader, FileChanged, FileGone, Job, RateLimiter, partial_name
from .paths import NameTable, UnsafePath, assign
from .progress import Progress
from .trash import DeletePolicy, Trash, decide, fsync_dir

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"


@dataclass(frozen=True)
class SyncPolicy:
    concurrency: int = 3
    page_limit: int = 500
    bandwidth: float | None = None  # bytes per second for all downloads together; None = unlimited
    deletes: DeletePolicy = DeletePolicy()
    verify_attempts: int = 3
    transport_attempts: int = 8
    max_resets: int = 3  # 410s tolerated in one pass before giving up
    max_rounds: int = 3  # re-read the feed this often in one pass when files changed mid-download
    longpoll_timeout: int = 30
    progress_interval: float = 0.25


@dataclass
class SyncReport:
    downloaded: int = 0
    changed: int = 0  # files that changed in the cloud mid-download (refetched in a later round)
    rounds: int = 0
    adopted: int = 0  # already on disk with the right bytes (e.g. after a crash before commit)
    moved: int = 0
    deleted: int = 0
    metadata_only: int = 0
    failed: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # unsafe or colliding cloud paths
    deletions_blocked: str | None = None
    resets: int = 0
    pages: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Work:
    job: Job
    remote: dict[str, Any]
    rel: PurePosixPath
    adopted: Digests | None


class SyncEngine:
    """Owns one library directory and its tables; one pass at a time."""

    def __init__(
        self,
        store,
        data_dir: Path,
        client: CloudClient,
        *,
        policy: SyncPolicy = SyncPolicy(),
        clock: Clock | None = None,
        on_progress: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        self.media_dir = self.data_dir / "media"
        self.client = client
        self.policy = policy
        self.clock = clock or SystemClock()
        self.on_progress = on_progress
        self.counters = Counters()
        self.trash = Trash(self.data_dir)
        self.progress = Progress()
        self.phase = "idle"
        self.last_report: SyncReport | None = None
        self.last_error: str | None = None
        self._lock = asyncio.Lock()
        self._last_emit = 0.0
        self._listeners: set[asyncio.Future] = set()

    # -- status and progress --

    def status(self) -> dict[str, Any]:
        return {
            "running": self._lock.locked(),
            "phase": self.phase,
            "progress": self.progress.snapshot(self.clock.now(), self.phase),
            "last_report": self.last_report.as_dict() if self.last_report else None,
            "last_error": self.last_error,
            "counters": self.counters.as_dict(),
            "retries": self.client.retries,
        }

    def _emit(self, force: bool = False) -> None:
        now = self.clock.now()
        if not self.on_progress or (not force and now - self._last_emit < self.policy.progress_interval):
            return
        self._last_emit = now
        try:
            result = self.on_progress(self.progress.snapshot(now, self.phase))
            if inspect.isawaitable(result):  # an async listener (e.g. a WebSocket broadcast)
                task = asyncio.ensure_future(result)
                self._listeners.add(task)
                task.add_done_callback(self._listeners.discard)
        except Exception:  # a broken listener must not stop the sync
            log.exception("progress listener failed")

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self._emit(force=True)

    # -- one pass --

    async def sync_once(self) -> SyncReport:
        async with self._lock:
            report = SyncReport()
            self.progress = Progress()
            try:
                while True:
                    report.rounds += 1
                    changed_before = report.changed
                    self._set_phase("listing")
                    await self._pull(report)
                    self._set_phase("planning")
                    plan = await self._plan(report)
                    self._set_phase("deleting")
                    await self._delete(plan, report)
                    self._set_phase("downloading")
                    await self._transfer(plan, report)
                    if report.changed == changed_before or report.rounds >= self.policy.max_rounds:
                        break
                await asyncio.to_thread(self.trash.purge, self.clock.now(), self.policy.deletes.retention_days)
                self.last_error = None
                return report
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                self.last_report = report
                self._set_phase("idle")

    async def _pull(self, report: SyncReport) -> None:
        """Follow the feed to its end; each page and its cursor commit together."""
        st = await self.store.call(library.load_state)
        if st.cursor is None:
            st = await self.store.call(library.begin_listing)
        while True:
            try:
                page = await self.client.changes(st.cursor, self.policy.page_limit)
            except CursorReset:
                report.resets += 1
                if report.resets > self.policy.max_resets:
                    raise CloudError("the cloud keeps resetting the cursor") from None
                log.warning("cursor expired (410); listing everything again")
                st = await self.store.call(library.begin_listing)
                continue
            report.pages += 1
            st = await self.store.call(lambda db: library.apply_page(db, page.entries, page.cursor, page.has_more))
            if not page.has_more:
                return

    async def _plan(self, report: SyncReport) -> library.Plan:
        files = await self.store.call(library.local_files)
        missing = await asyncio.to_thread(self._missing, files)
        if missing:
            log.warning("%d library files are missing or changed on disk; fetching them again", len(missing))
            await self.store.call(lambda db: library.remove(db, missing))
        plan = await self.store.call(library.plan)
        report.metadata_only += plan.updated
        return plan

    def _missing(self, files: list[tuple[int, str, int]]) -> list[int]:
        root = str(self.media_dir) + os.sep
        out = []
        for media_id, local_path, size in files:
            try:
                if os.stat(root + local_path).st_size != size:
                    out.append(media_id)
            except OSError:
                out.append(media_id)
        return out

    async def _delete(self, plan: library.Plan, report: SyncReport) -> None:
        d = decide(len(plan.deletions), plan.library_size, plan.listing_complete, self.policy.deletes)
        if not d.allowed:
            report.deletions_blocked = d.reason
            log.error("deletions held back: %s", d.reason)
            return
        now = self.clock.now()
        for row in plan.deletions:
            await asyncio.to_thread(self.trash.move, self.media_dir, row["local_path"], now)
            await self.store.call(lambda db, i=row["id"]: library.remove(db, [i]))
            report.deleted += 1
            log.info("moved %s to the trash (deleted in the cloud)", row["local_path"])

    # -- placement --

    def _place_all(self, plan: library.Plan, owned: set[str], report: SyncReport) -> tuple[list[tuple[dict, dict, PurePosixPath]], list[_Work]]:
        """Choose local names for moves and downloads (blocking: stats and maybe hashes)."""
        names = NameTable(owned)

        def exists(rel: PurePosixPath) -> bool:
            """Something on disk the library doesn't own (never overwritten)."""
            return str(rel) not in owned and os.path.lexists(self.media_dir / rel)

        moves = []
        for mrow, rrow in plan.moves:
            names.release(mrow["local_path"])
            try:
                rel = assign(rrow["path"], rrow["cloud_id"], names, exists)
            except UnsafePath as exc:
                names.claim(PurePosixPath(mrow["local_path"]))
                report.rejected.append(f"{rrow['path']!r}: {exc}")
                log.error("not moving %r: %s", rrow["path"], exc)
                continue
            moves.append((mrow, rrow, rel))
        work = []
        for r in plan.downloads:
            if r["old_local_path"]:
                names.release(r["old_local_path"])
            adopted: Digests | None = None
            try:
                rel = assign(r["path"], r["cloud_id"], names, lambda rel: exists(rel) and not self._same(rel, r))
            except UnsafePath as exc:
                report.rejected.append(f"{r['path']!r}: {exc}")
                log.error("not syncing %r: %s", r["path"], exc)
                continue
            if r["old_local_path"] and r["old_local_path"] != str(rel):
                # moved and changed: keep the old name reserved this pass; it goes to the trash
                names.claim(PurePosixPath(r["old_local_path"]))
            full = self.media_dir / rel
            if str(rel) not in owned and os.path.lexists(full):
                adopted = hash_file(full)  # _same() said it has exactly the listed bytes
            job = Job(r["cloud_id"], r["path"], r["size"], r["content_hash"])
            work.append(_Work(job, r, rel, adopted))
        return moves, work

    def _same(self, rel: PurePosixPath, remote: dict[str, Any]) -> bool:
        """Is the unowned file at `rel` already exactly this remote file (left by a crash)?"""
        full = self.media_dir / rel
        try:
            if not full.is_file() or full.stat().st_size != remote["size"]:
                return False
        except OSError:
            return False
        return hash_file(full).content_hash == remote["content_hash"]

    def _clean_partials(self, keep: set[str]) -> None:
        d = self.media_dir / PARTIAL_DIR
        if not d.is_dir():
            return
        for f in d.iterdir():
            base = f.name[: -len(".json")] if f.name.endswith(".json") else f.name
            if base not in keep:
                f.unlink(missing_ok=True)

    def _rename_into_place(self, src: Path, rel: PurePosixPath) -> None:
        """The atomic step that makes a verified file visible; then make it durable."""
        dst = self.media_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        fsync_dir(dst.parent)
        if src.parent != dst.parent:
            fsync_dir(src.parent)

    async def _transfer(self, plan: library.Plan, report: SyncReport) -> None:
        if not plan.downloads and not plan.moves:
            self.progress.files_total = self.progress.bytes_total = 0
            return
        # rows whose deletion was held back keep their names: newcomers get disambiguated ones
        owned = {r[1] for r in await self.store.call(library.local_files)}
        moves, work = await asyncio.to_thread(self._place_all, plan, owned, report)
        await asyncio.to_thread(self._clean_partials, {partial_name(w.job.cloud_id) for w in work})
        for mrow, rrow, rel in moves:
            src = self.media_dir / mrow["local_path"]
            try:
                await asyncio.to_thread(self._rename_into_place, src, rel)
            except OSError as exc:
                log.warning("could not move %s: %s; will fetch again", mrow["local_path"], exc)
                await self.store.call(lambda db, i=mrow["id"]: library.remove(db, [i]))
                continue
            await self.store.call(lambda db, m=mrow, r=rrow, p=str(rel): library.relocate(db, m["id"], r["path"], p))
            report.moved += 1

        self.progress.files_total = len(work)
        self.progress.bytes_total = sum(w.job.size for w in work)
        self.progress.bytes_done = self.progress.files_done = self.progress.files_failed = 0
        if not work:
            return
        self.media_dir.mkdir(parents=True, exist_ok=True)
        downloader = Downloader(
            self.client,
            self.media_dir / PARTIAL_DIR,
            self.clock,
            self.counters,
            RateLimiter(self.policy.bandwidth, self.clock) if self.policy.bandwidth else None,
            on_bytes=self._on_bytes,
            verify_attempts=self.policy.verify_attempts,
            transport_attempts=self.policy.transport_attempts,
        )
        queue: asyncio.Queue[_Work] = asyncio.Queue()  # holds exactly this pass's plan
        for w in work:
            queue.put_nowait(w)

        async def worker() -> None:
            while True:
                try:
                    w = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self._one(w, downloader, report)

        n = max(1, min(self.policy.concurrency, len(work)))
        await asyncio.gather(*(worker() for _ in range(n)))

    def _on_bytes(self, job: Job, n: int) -> None:
        self.progress.bytes_done += n
        self.progress.current[job.cloud_path] = self.progress.current.get(job.cloud_path, 0) + n
        self._emit()

    async def _one(self, w: _Work, downloader: Downloader, report: SyncReport) -> None:
        job = w.job
        self.progress.current.setdefault(job.cloud_path, 0)
        try:
            if w.adopted is not None:
                digests = w.adopted
                self.progress.bytes_done += job.size
                report.adopted += 1
            else:
                src, digests = await downloader.fetch(job)
                await asyncio.to_thread(self._rename_into_place, src, w.rel)
            # the bytes are durable under their final name: now the library may list them
            await self.store.call(lambda db: library.install(db, w.remote, str(w.rel), digests.sha256, self.clock.now()))
            await asyncio.to_thread(downloader.remove, job)
            old = w.remote.get("old_local_path")
            if old and old != str(w.rel):
                await asyncio.to_thread(self.trash.move, self.media_dir, old, self.clock.now())
            if w.adopted is None:
                report.downloaded += 1
            self.progress.files_done += 1
        except FileGone as exc:
            log.info("%s", exc)
        except FileChanged as exc:
            report.changed += 1
            log.info("%s; reading the feed again", exc)
        except (DownloadFailed, CloudError, RetryLater, OSError, *TRANSPORT_ERRORS) as exc:
            self.progress.files_failed += 1
            report.failed.append(job.cloud_path)
            log.error("could not sync %s: %s", job.cloud_path, exc)
        finally:
            self.progress.current.pop(job.cloud_path, None)
            self._emit(force=True)

    # -- continuous --

    async def run(self, wake: asyncio.Event | None = None) -> None:
        """Sync, then long-poll the feed and sync again on changes, until cancelled."""
        failures = 0
        need_pass = True
        while True:
            if need_pass:
                try:
                    await self.sync_once()
                    failures = 0
                except CloudAuthError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure: back off and try again
                    failures += 1
                    delay = min(300.0, 5.0 * 2 ** min(failures, 6))
                    log.warning("sync pass failed (%s); next try in %.0fs", exc, delay)
                    await self._sleep_or_wake(delay, wake)
                    continue
            need_pass = await self._wait_for_changes(wake)

    async def _sleep_or_wake(self, delay: float, wake: asyncio.Event | None) -> None:
        if wake is None:
            await self.clock.sleep(delay)
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(delay))
        waiter = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, waiter):
                t.cancel()
            wake.clear()

    async def _wait_for_changes(self, wake: asyncio.Event | None) -> bool:
        """One long-poll (Dropbox longpoll semantics: honour `backoff`); True if a pass is due."""
        st = await self.store.call(library.load_state)
        if not st.cursor:
            return True
        self.phase = "watching"
        poll = asyncio.ensure_future(self.client.wait(st.cursor, self.policy.longpoll_timeout))
        waiter = asyncio.ensure_future(wake.wait()) if wake else None
        try:
            done, _ = await asyncio.wait({poll, *([waiter] if waiter else [])}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (poll, waiter):
                if t is not None and not t.done():
                    t.cancel()
        if waiter is not None and waiter in done:
            wake.clear()  # type: ignore[union-attr]
            return True
        try:
            result = poll.result()
        except CursorReset:
            return True
        except Exception as exc:  # noqa: BLE001
            log.warning("long-poll failed (%s); syncing", exc)
            await self._sleep_or_wake(5.0, wake)
            return True
        if result.backoff:
            await self._sleep_or_wake(result.backoff, wake)
        return result.changes
