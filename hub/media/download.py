"""One file from the cloud into `<media>/.partial/`, resumable across runs and verified.

Resume uses Range + If-Range with the strong ETag of the partial's first response, saved in a
sidecar beside the .partial (RFC 9110 §13.1.5, §14.2). The sidecar also keeps the digests of
the complete 4 MiB blocks, each written only after its bytes were fsynced, so a resumed file
re-hashes at most the one block a crash cut, never the whole partial. Small files (one write)
get no sidecar: they are cheaper to fetch again than to checkpoint. A 200 to a ranged request (Range
ignored, or the file changed so If-Range failed) restarts from byte 0; a 206 must start at our
offset and name the expected complete length (§14.4). The result is accepted only if its size
and content hash match the listing, then fsynced; the caller renames it into place.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from .client import TRANSPORT_ERRORS, CloudClient, CloudError, RetryLater
from ..clock import Clock
from .contenthash import BLOCK, Digests, StreamHasher, hash_into
from .durable import fsync_file, rename_into, replace_file

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
FLUSH = 1 << 20  # write and hash in batches of this many bytes, off the event loop
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass(frozen=True)
class Job:
    """A verified file the library wants: where it comes from and what it must hash to."""

    cloud_id: str
    cloud_path: str
    size: int
    content_hash: str


@dataclass
class Counters:
    """What the downloads cost, for the status page, tests and the benchmark."""

    bytes_received: int = 0  # body bytes read from the network
    bytes_reused: int = 0  # bytes of an existing .partial kept by resuming
    bytes_discarded: int = 0  # bytes of .partial files thrown away
    bytes_redownloaded: int = 0  # bytes received again that had already been received once
    resumes: int = 0  # ranged requests answered 206
    restarts: int = 0  # ranged requests answered 200 (Range ignored or If-Range failed)
    bytes_rehashed: int = 0  # bytes of a resumed .partial read back to hash (the block a crash cut)
    verify_failures: int = 0
    files_downloaded: int = 0
    transport_retries: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class DownloadFailed(Exception):
    """The file could not be fetched and verified within the retry budget."""


class FileGone(DownloadFailed):
    """The cloud no longer has this file (404/410); the next listing will say so."""


class FileChanged(DownloadFailed):
    """The cloud's ETag (its content hash) differs from the listing: re-read the feed first."""


def partial_name(cloud_id: str) -> str:
    """A filesystem-safe, collision-free name for an id's partial file."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", cloud_id)[:80]
    if safe != cloud_id or safe.startswith("."):
        safe = f"{safe}-{hashlib.sha256(cloud_id.encode()).hexdigest()[:12]}"
    return safe + ".partial"


class RateLimiter:
    """A token bucket shared by all downloads: `take(n)` waits until n bytes may be read."""

    def __init__(self, rate: float | None, clock: Clock, burst: float | None = None) -> None:
        self.rate = rate
        self.clock = clock
        self.burst = burst or (rate or 0) / 4 or 1.0
        self._tokens = self.burst
        self._last = clock.now()
        self._lock = asyncio.Lock()

    async def take(self, n: int) -> None:
        if not self.rate:
            return
        async with self._lock:
            now = self.clock.now()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            if self._tokens < 0:
                await self.clock.sleep(-self._tokens / self.rate)


@dataclass
class _Partial:
    path: Path
    meta: Path
    etag: str | None = None
    offset: int = 0
    debt: int = 0  # bytes held before and discarded: receiving them again is re-downloading
    hasher: StreamHasher = field(default_factory=StreamHasher)
    saved_blocks: int = -1  # block digests in the sidecar; -1: no sidecar written
    synced: bool = False  # the bytes on disk are fsynced
    placed: bool = False  # verified, fsynced and renamed to its destination
    on_disk: bool = False  # a partial or sidecar may exist (else starting over needs no I/O)
    dest: Path | None = None


def _verified(digests: Digests, job: Job) -> bool:
    return digests.size == job.size and digests.content_hash == job.content_hash.lower()


class Downloader:
    """Fetches jobs into `<partial_dir>/<id>.partial`, resuming and verifying."""

    def __init__(
        self,
        client: CloudClient,
        partial_dir: Path,
        clock: Clock,
        counters: Counters,
        limiter: RateLimiter | None = None,
        on_bytes=None,
        verify_attempts: int = 3,
        transport_attempts: int = 8,
        existing: set[str] | None = None,
    ) -> None:
        self.client = client
        self.dir = partial_dir
        self.clock = clock
        self.counters = counters
        self.limiter = limiter
        self.on_bytes = on_bytes  # callable(job, n) for progress; n may be negative on discard
        self.verify_attempts = verify_attempts
        self.transport_attempts = transport_attempts
        self.existing = existing  # names in the partial folder when known (a fresh job then costs no I/O)

    # -- partial bookkeeping (blocking helpers run in threads) --

    def _new_partial(self, job: Job) -> _Partial:
        path = self.dir / partial_name(job.cloud_id)
        return _Partial(path, path.with_name(path.name + ".json"))

    def _open_partial(self, job: Job) -> _Partial:
        self.dir.mkdir(parents=True, exist_ok=True)
        p = self._new_partial(job)
        p.on_disk = True
        path = p.path
        try:
            meta = json.loads(p.meta.read_text())
            have = path.stat().st_size
            blocks = [bytes.fromhex(b) for b in meta.get("blocks", [])]
        except (OSError, ValueError, TypeError, AttributeError):
            meta, blocks = None, []
            have = path.stat().st_size if path.exists() else 0
        durable = len(blocks) * BLOCK
        if (isinstance(meta, dict) and meta.get("content_hash") == job.content_hash and meta.get("size") == job.size
                and durable <= have <= job.size and isinstance(meta.get("etag"), str)
                and all(len(b) == 32 for b in blocks)):
            p.etag = meta["etag"]
            p.hasher = StreamHasher(blocks)
            p.saved_blocks = len(blocks)
            hash_into(p.hasher, path, have - durable, start=durable)  # only the block the crash cut
            self.counters.bytes_rehashed += have - durable
            p.offset = have
            if p.hasher.size != have:  # the file changed under us; start over
                self._discard(p)
        elif have:
            self._discard(p)
        return p

    def _discard(self, p: _Partial) -> None:
        held = p.path.stat().st_size if p.path.exists() else 0
        self.counters.bytes_discarded += held
        p.debt = max(p.debt, held)
        for f in (p.path, p.meta):
            try:
                f.unlink()
            except FileNotFoundError:
                pass
        p.offset = 0
        p.etag = None
        p.hasher = StreamHasher()
        p.saved_blocks = -1
        p.synced = False
        p.on_disk = False

    def _start_fresh(self, p: _Partial, etag: str | None) -> None:
        self._discard(p)
        p.etag = etag

    def _append(self, p: _Partial, job: Job, data: bytes) -> None:
        """Write and hash `data` mid-transfer; save the sidecar when a block completed. Blocking."""
        p.on_disk = True
        with open(p.path, "ab") as f:
            f.write(data)
            p.hasher.update(data)
            p.offset += len(data)
            p.synced = False
            if p.etag is None or len(p.hasher.blocks) == p.saved_blocks:
                return
            if len(p.hasher.blocks) > max(p.saved_blocks, 0):
                f.flush()
                os.fsync(f.fileno())  # a block digest is saved only once its bytes are durable
        meta = {"etag": p.etag, "content_hash": job.content_hash, "size": job.size,
                "blocks": [b.hex() for b in p.hasher.blocks]}
        replace_file(p.meta, json.dumps(meta).encode(), 0o644, sync=False)  # losing it costs a re-fetch only
        p.saved_blocks = len(p.hasher.blocks)

    def _finish(self, p: _Partial, job: Job, data: bytes, dest: Path | None) -> None:
        """The last write: hash; if it verifies, fsync and rename to `dest` (one thread hop). Blocking."""
        p.on_disk = True
        with open(p.path, "ab") as f:
            f.write(data)
            p.hasher.update(data)
            p.offset += len(data)
            p.synced = False
            if not _verified(p.hasher.result(), job):
                return  # fetch() counts the failure and starts over
            f.flush()
            os.fsync(f.fileno())
            p.synced = True
        self._place(p, dest)

    @staticmethod
    def _place(p: _Partial, dest: Path | None) -> None:
        """fsync the verified partial if needed and rename it to `dest`. Blocking."""
        if not p.synced:
            fsync_file(p.path)
            p.synced = True
        if dest is not None:
            rename_into(p.path, dest)
            p.placed = True
            # its blocks are in the placed file now; a kill before this leaves an orphan that
            # the next pass removes (SyncEngine._clean_partials)
            p.meta.unlink(missing_ok=True)

    def remove(self, job: Job) -> None:
        """Forget a job's partial (after it was installed). Blocking."""
        path = self.dir / partial_name(job.cloud_id)
        for f in (path, path.with_name(path.name + ".json")):
            try:
                f.unlink()
            except FileNotFoundError:
                pass

    # -- the transfer --

    async def fetch(self, job: Job, dest: Path | None = None) -> tuple[Path, Digests]:
        """Download (or finish) the job: verified, fsynced and renamed to `dest` (if given).

        Returns where the file is now and its digests.
        """
        if self.existing is not None and partial_name(job.cloud_id) not in self.existing:
            p = self._new_partial(job)  # nothing to resume: no I/O before the request
        else:
            p = await asyncio.to_thread(self._open_partial, job)
        p.dest = dest
        if p.offset:
            self.counters.bytes_reused += p.offset
            self._progress(job, p.offset)
        transport_tries = 0
        verify_tries = 0
        while True:
            if p.offset < job.size or p.etag is None:
                try:
                    await self._transfer(job, p)
                except (FileGone, FileChanged):
                    self._progress(job, -p.offset)
                    await asyncio.to_thread(self._discard, p)
                    raise
                except (RetryLater, *TRANSPORT_ERRORS) as exc:
                    transport_tries += 1
                    self.counters.transport_retries += 1
                    if transport_tries >= self.transport_attempts:
                        raise DownloadFailed(f"{job.cloud_path}: gave up after {transport_tries} tries ({exc!r})") from exc
                    await self.client.backoff(transport_tries, exc)
                    continue
            digests = p.hasher.result()
            if _verified(digests, job):
                if not p.placed:
                    await asyncio.to_thread(self._complete, p)
                self.counters.files_downloaded += 1
                return (p.dest if p.placed and p.dest else p.path), digests
            verify_tries += 1
            self.counters.verify_failures += 1
            log.warning(
                "%s failed verification (size %d/%d, hash %s); discarding",
                job.cloud_path, digests.size, job.size, "ok" if digests.content_hash == job.content_hash else "mismatch",
            )
            self._progress(job, -p.offset)
            await asyncio.to_thread(self._discard, p)
            if verify_tries >= self.verify_attempts:
                raise DownloadFailed(f"{job.cloud_path}: content did not verify after {verify_tries} downloads")

    def _complete(self, p: _Partial) -> None:
        """A partial that verified without a final write (resumed whole, or 416). Blocking."""
        if not p.path.exists():
            p.path.touch()
        self._place(p, p.dest)

    def _progress(self, job: Job, n: int) -> None:
        if self.on_bytes and n:
            self.on_bytes(job, n)

    async def _transfer(self, job: Job, p: _Partial) -> None:
        headers: dict[str, str] = {}
        ranged = p.offset > 0 and p.etag is not None
        if ranged:
            headers["Range"] = f"bytes={p.offset}-"
            headers["If-Range"] = p.etag  # type: ignore[assignment]
        async with self.client.content(job.cloud_id, headers) as resp:
            if resp.status in (404, 410):
                raise FileGone(f"{job.cloud_path}: HTTP {resp.status}")
            if resp.status == 416:
                # RFC 9110 §15.5.17: our partial is at or past the end. Don't read the body.
                if p.offset == job.size and p.etag:
                    return  # complete already; verification decides
                self._progress(job, -p.offset)
                await asyncio.to_thread(self._discard, p)
                raise RetryLater("416 for a partial that isn't complete")
            if resp.status not in (200, 206):
                self.client.check(resp)
                raise CloudError(f"unexpected HTTP {resp.status}", resp.status)
            etag = resp.headers.get("ETag")
            if etag and etag.startswith("W/"):
                etag = None  # weak validators must not be used with If-Range (§13.1.5)
            served = (etag or "").strip('"').lower()
            if _HEX64.match(served) and served != job.content_hash.lower():
                # the cloud's ETag is the content hash: these bytes can't verify against the listing
                raise FileChanged(f"{job.cloud_path} changed in the cloud since it was listed")
            if resp.status == 206:
                start, total = self._content_range(resp)
                if not ranged or start != p.offset or (total is not None and total != job.size):
                    self._progress(job, -p.offset)
                    await asyncio.to_thread(self._discard, p)
                    raise RetryLater(f"206 with unexpected Content-Range {resp.headers.get('Content-Range')!r}")
                self.counters.resumes += 1
            else:
                if ranged:
                    self.counters.restarts += 1
                    log.info("%s: server sent the whole file (Range ignored or changed); restarting", job.cloud_path)
                self._progress(job, -p.offset)
                if p.on_disk:
                    await asyncio.to_thread(self._start_fresh, p, etag)
                else:  # nothing written yet: nothing to throw away
                    p.etag = etag
            expected = resp.content_length
            got = 0
            buf = bytearray()
            try:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    if self.limiter:
                        await self.limiter.take(len(chunk))
                    if p.offset + len(buf) + len(chunk) > job.size:
                        # more bytes than the listing said: it changed; the next listing will tell
                        raise RetryLater("body longer than the listed size")
                    buf += chunk
                    got += len(chunk)
                    self.counters.bytes_received += len(chunk)
                    again = min(len(chunk), max(0, p.debt - (p.offset + len(buf) - len(chunk))))
                    self.counters.bytes_redownloaded += again
                    self._progress(job, len(chunk))
                    if len(buf) >= FLUSH:
                        data, buf = bytes(buf), bytearray()
                        await asyncio.to_thread(self._append, p, job, data)
            except Exception:
                if buf:  # keep what arrived intact so the retry resumes after it
                    await asyncio.to_thread(self._append, p, job, bytes(buf))
                raise
            if expected is not None and got != expected:
                if buf:
                    await asyncio.to_thread(self._append, p, job, bytes(buf))
                raise RetryLater(f"short body: {got} of {expected} bytes")
            await asyncio.to_thread(self._finish, p, job, bytes(buf), p.dest)

    @staticmethod
    def _content_range(resp: aiohttp.ClientResponse) -> tuple[int | None, int | None]:
        m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if not m:
            return None, None
        return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))
