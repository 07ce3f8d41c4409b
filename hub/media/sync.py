"""The sync engine: pull the change feed into SQLite, then make `<data>/media/` match it.

One pass (`sync_once`, under the data directory's SyncLock): follow the cursor to the end (a
full listing first, or again after a 410), saving the cursor with each page it applied; plan
against the library; carry out capped, trash-backed deletions (only after a complete listing);
rename moved files; download the rest with bounded concurrency, each verified, fsynced and
renamed into place, then listed in batches (one folder fsync and one SQLite transaction per
batch, see batch.py). Files being played (`in_use`) are neither trashed nor replaced until
playback stops. `run()` repeats passes, long-polling the feed between them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import library
from .auth import CloudAuthError
from .client import CloudClient, CloudError, CursorReset, RetryLater, TRANSPORT_ERRORS
from ..clock import Clock, SystemClock
from .batch import BatchPolicy, InstallBatch, Landed
from .contenthash import Digests, hash_file
from .download import Counters, DownloadFailed, Downloader, FileChanged, FileGone, Job, RateLimiter, partial_name
from .durable import fsync_dir, rename_into
from .lock import SyncBusy, SyncLock
from .paths import NameTable, UnsafePath, assign
from .progress import Progress
from .trash import DeletePolicy, Trash, decide

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"


@dataclass(frozen=True)
class SyncPolicy:
    concurrency: int = 3  # transfers at once; small files get more (they wait on round trips, not bytes)
    small_file: int = 256 * 1024
    small_concurrency: int = 12
    batch: BatchPolicy = BatchPolicy()
    page_limit: int = 500
    bandwidth: float | None = None  # bytes per second for all downloads together; None = unlimited
    deletes: DeletePolicy = DeletePolicy()
    verify_attempts: int = 3
    transport_attempts: int = 8
    max_resets: int = 3  # 410s tolerated in one pass before giving up
    max_rounds: int = 3  # re-read the feed this often in one pass when files changed mid-download
    longpoll_timeout: int = 30
    progress_interval: float = 0.25
    busy_retry: float = 15.0  # seconds between tries while another process syncs the folder


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
    deferred: int = 0  # deletions and replacements held back while the file is being played
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
        in_use: Callable[[], Collection[int]] | None = None,
        owner: str = "hub",
    ) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        self.media_dir = self.data_dir / "media"
        self.client = client
        self.policy = policy
        self.clock = clock or SystemClock()
        self.on_progress = on_progress
        self.in_use = in_use or (lambda: ())  # media ids being played right now
        self.lock = SyncLock(self.data_dir, owner)
        self.counters = Counters()
        self.trash = Trash(self.data_dir)
        self.progress = Progress()
        self.phase = "idle"
        self.last_report: SyncReport | None = None
        self.last_error: str | None = None
        self._lock = asyncio.Lock()
        self._last_emit = 0.0
        self._listeners: set[asyncio.Future] = set()
        self._unfinished: set[str] = set()

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
        """One pass; SyncBusy (at once) if another process is syncing this data directory."""
        async with self._lock:
            try:
                await asyncio.to_thread(self.lock.acquire)
            except SyncBusy as exc:
                self.last_error = str(exc)
                raise
            try:
                return await self._pass()
            finally:
                await asyncio.to_thread(self.lock.release)

    async def _pass(self) -> SyncReport:
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
        playing = set(self.in_use())
        rows = [r for r in plan.deletions if r["id"] not in playing]
        report.deferred += len(plan.deletions) - len(rows)
        if not rows:
            return
        moved = await asyncio.to_thread(self.trash.move_many, self.media_dir, [r["local_path"] for r in rows], self.clock.now())
        await self.store.call(lambda db: library.remove(db, [r["id"] for r in rows]))
        report.deleted += len(rows)
        log.info("moved %d files to the trash (deleted in the cloud)", len(moved))

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

    def _clean_partials(self, keep: set[str]) -> set[str]:
        """Remove partials no job of this pass wants; returns the names left. Blocking."""
        d = self.media_dir / PARTIAL_DIR
        if not d.is_dir():
            return set()
        left = set()
        files = list(d.iterdir())
        names = {f.name for f in files}
        for f in files:
            base = f.name[: -len(".json")] if f.name.endswith(".json") else f.name
            # a sidecar without its partial is left from a kill after the partial was placed
            if base not in keep or (base != f.name and base not in names):
                f.unlink(missing_ok=True)
            else:
                left.add(f.name)
        return left

    def _move_all(self, moves: list[tuple[dict, dict, PurePosixPath]]) -> tuple[list[tuple[int, str, str]], list[int]]:
        """Rename moved files, then fsync the folders touched, once each. Blocking."""
        done, failed, dirs = [], [], set()
        for mrow, rrow, rel in moves:
            src = self.media_dir / mrow["local_path"]
            try:
                rename_into(src, self.media_dir / rel)
            except OSError as exc:
                log.warning("could not move %s: %s; will fetch again", mrow["local_path"], exc)
                failed.append(mrow["id"])
                continue
            dirs |= {src.parent, (self.media_dir / rel).parent}
            done.append((mrow["id"], rrow["path"], str(rel)))
        for d in dirs:
            fsync_dir(d)
        return done, failed

    async def _transfer(self, plan: library.Plan, report: SyncReport) -> None:
        if not plan.downloads and not plan.moves:
            self.progress.files_total = self.progress.bytes_total = 0
            return
        # rows whose deletion was held back keep their names: newcomers get disambiguated ones
        owned = {r[1] for r in await self.store.call(library.local_files)}
        playing = set(self.in_use())
        downloads = [r for r in plan.downloads if r["old_id"] is None or r["old_id"] not in playing]
        report.deferred += len(plan.downloads) - len(downloads)  # a new version waits for playback to end
        plan = library.Plan(downloads, plan.moves, plan.deletions, plan.library_size, plan.listing_complete, plan.updated)
        moves, work = await asyncio.to_thread(self._place_all, plan, owned, report)
        existing = await asyncio.to_thread(self._clean_partials, {partial_name(w.job.cloud_id) for w in work})
        if moves:
            done, failed = await asyncio.to_thread(self._move_all, moves)
            if failed:
                await self.store.call(lambda db: library.remove(db, failed))
            if done:
                await self.store.call(lambda db: library.relocate(db, done))
            report.moved += len(done)

        self.progress.files_total = len(work)
        self.progress.bytes_total = sum(w.job.size for w in work)
        self.progress.bytes_done = self.progress.files_done = self.progress.files_failed = 0
        if not work:
            return
        self.media_dir.mkdir(parents=True, exist_ok=True)
        partial_dir = self.media_dir / PARTIAL_DIR
        partial_dir.mkdir(exist_ok=True)
        self._unfinished = set()  # partial names of jobs that failed: their sidecars stay for resuming
        downloader = Downloader(
            self.client,
            partial_dir,
            self.clock,
            self.counters,
            RateLimiter(self.policy.bandwidth, self.clock) if self.policy.bandwidth else None,
            on_bytes=self._on_bytes,
            verify_attempts=self.policy.verify_attempts,
            transport_attempts=self.policy.transport_attempts,
            existing=existing,
        )
        batch = InstallBatch(
            self.store, self.media_dir, (partial_dir,), self.clock, policy=self.policy.batch,
            on_listed=lambda items: self._listed(items, report),
            on_failed=lambda items, exc: self._unlisted(items, exc, report),
        )
        small_size = self.policy.small_file
        big = deque(w for w in work if w.job.size > small_size)  # exactly this pass's plan, newest first
        small = deque(w for w in work if w.job.size <= small_size)

        async def worker(queues: tuple[deque[_Work], ...]) -> None:
            for q in queues:
                while q:
                    await self._one(q.popleft(), downloader, batch, report)

        n = max(1, min(self.policy.concurrency, len(work)))
        extra = max(0, min(self.policy.small_concurrency - n, len(small) - n))
        try:
            await asyncio.gather(*(worker((big, small)) for _ in range(n)), *(worker((small,)) for _ in range(extra)))
        except BaseException:
            batch.abort()  # what landed stays visible and exact; the next pass adopts it
            raise
        await batch.close()
        await asyncio.to_thread(self._remove_sidecars, partial_dir, {partial_name(w.job.cloud_id) for w in work} - self._unfinished)

    @staticmethod
    def _remove_sidecars(partial_dir: Path, done: set[str]) -> None:
        """Drop the resume sidecars of the files that were listed (one folder scan). Blocking."""
        with os.scandir(partial_dir) as it:
            for entry in it:
                if entry.name.endswith(".json") and entry.name[: -len(".json")] in done:
                    os.unlink(entry.path)

    async def _listed(self, items: list[Landed], report: SyncReport) -> None:
        """After a batch commit: count, and trash the old names of moved-and-changed files."""
        self.progress.files_done += len(items)
        report.downloaded += sum(1 for i in items if not i.adopted)
        report.adopted += sum(1 for i in items if i.adopted)
        stale = [i.remote["old_local_path"] for i in items
                 if i.remote.get("old_local_path") and i.remote["old_local_path"] != str(i.rel)]
        if stale:
            await asyncio.to_thread(self.trash.move_many, self.media_dir, stale, self.clock.now())
        self._emit(force=True)

    def _unlisted(self, items: list[Landed], exc: Exception, report: SyncReport) -> None:
        self._unfinished |= {partial_name(i.remote["cloud_id"]) for i in items}
        self.progress.files_failed += len(items)
        report.failed += [i.remote["path"] for i in items]

    def _on_bytes(self, job: Job, n: int) -> None:
        self.progress.bytes_done += n
        self.progress.current[job.cloud_path] = self.progress.current.get(job.cloud_path, 0) + n
        self._emit()

    async def _one(self, w: _Work, downloader: Downloader, batch: InstallBatch, report: SyncReport) -> None:
        job = w.job
        self.progress.current.setdefault(job.cloud_path, 0)
        try:
            if w.adopted is not None:
                digests = w.adopted
                self.progress.bytes_done += job.size
            else:
                # verified, fsynced and renamed: the atomic step that makes it visible
                _, digests = await downloader.fetch(job, self.media_dir / w.rel)
            # visible now, with exactly the listed bytes; the batch makes it durable and listed
            await batch.add(Landed(w.remote, w.rel, digests.sha256, w.adopted is not None))
        except FileGone as exc:
            log.info("%s", exc)
        except FileChanged as exc:
            self._unfinished.add(partial_name(job.cloud_id))
            report.changed += 1
            log.info("%s; reading the feed again", exc)
        except (DownloadFailed, CloudError, RetryLater, OSError, *TRANSPORT_ERRORS) as exc:
            self._unfinished.add(partial_name(job.cloud_id))
            self.progress.files_failed += 1
            report.failed.append(job.cloud_path)
            log.error("could not sync %s: %s", job.cloud_path, exc)
        finally:
            self.progress.current.pop(job.cloud_path, None)
            self._emit()

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
                except SyncBusy as exc:  # `hub sync` or `hub media verify` has the folder: after it
                    log.info("%s; syncing after it", exc)
                    await self._sleep_or_wake(self.policy.busy_retry, wake)
                    continue
                except Exception as exc:  # noqa: BLE001 - any failure: back off and try again
                    failures += 1
                    delay = min(300.0, 5.0 * 2 ** min(failures, 6))
                    log.warning("sync pass failed (%s); next try in %.0fs", exc, delay)
                    await self._sleep_or_wake(delay, wake)
                    continue
            need_pass = await self._wait_for_changes(wake)
            # a deletion or replacement held back for playback is retried after each long-poll
            need_pass = need_pass or bool(self.last_report and self.last_report.deferred)

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
