"""Thumbnails for the library: made lazily from the files on the hub, cached on disk by content hash.

Films and pictures go through ffmpeg, the first page of a PDF through pdftoppm (poppler-utils) when
it is installed. The tools run in a thread with a timeout; the event loop never waits on them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

WIDTH = 320
TIMEOUT = 30.0
# ffmpeg follows URLs inside playlists (HLS, concat): a synced file must never make the hub fetch.
FFMPEG = ("ffmpeg", "-nostdin", "-v", "error", "-protocol_whitelist", "file")


def renderer(kind: str | None, media_type: str | None) -> str | None:
    """The tool that can draw this kind of file here, or None."""
    if kind in ("video", "image"):
        return "ffmpeg" if shutil.which("ffmpeg") else None
    if media_type == "application/pdf":
        return "pdftoppm" if shutil.which("pdftoppm") else None
    return None


def _commands(tool: str, kind: str | None, src: Path, out: Path, duration_ms: int | None) -> list[list[str]]:
    """Commands to try in turn; each writes a JPEG at `out`."""
    scale = ["-vf", f"scale='min({WIDTH},iw)':-2", "-frames:v", "1", "-y", "-f", "image2", str(out)]
    if tool == "pdftoppm":
        # pdftoppm appends ".jpg" to the prefix it is given with -singlefile
        return [["pdftoppm", "-jpeg", "-f", "1", "-l", "1", "-singlefile", "-scale-to", str(WIDTH),
                 str(src), str(out.with_suffix(""))]]
    if kind == "video":
        # a frame a little way in says more than a black first frame; fall back to the start
        at = min(1.0, (duration_ms or 0) / 3000)
        return [[*FFMPEG, "-ss", f"{at:.2f}", "-i", str(src), *scale], [*FFMPEG, "-i", str(src), *scale]]
    return [[*FFMPEG, "-i", str(src), *scale]]


def make(tool: str, kind: str | None, src: Path, dest: Path, duration_ms: int | None = None) -> bool:
    """Draw `src` into `dest` (blocking; run it in a thread); False when the tool can't."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.{os.getpid()}.tmp.jpg")
    try:
        for cmd in _commands(tool, kind, src, tmp, duration_ms):
            try:
                done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT)
            except (subprocess.TimeoutExpired, OSError) as e:
                log.warning("thumbnail of %s: %s", src.name, e)
                continue
            if done.returncode == 0 and tmp.exists() and tmp.stat().st_size > 0:
                os.replace(tmp, dest)  # readers see a whole thumbnail or none
                return True
            log.debug("thumbnail of %s: %s", src.name, done.stderr[-300:])
        return False
    finally:
        tmp.unlink(missing_ok=True)


class Thumbnails:
    """Thumbnails under `folder`, named by content hash so a changed file gets a new one."""

    def __init__(self, folder: Path, concurrency: int = 2) -> None:
        self.folder = folder
        self._slots = asyncio.Semaphore(concurrency)  # a library page must not start 50 ffmpegs
        self._making: dict[str, asyncio.Task[Path | None]] = {}

    async def get(self, src: Path, content_hash: str, kind: str | None, media_type: str | None,
                  duration_ms: int | None = None) -> Path | None:
        """The thumbnail's path, made on first request; None when none can be made."""
        tool = renderer(kind, media_type)
        if tool is None or not content_hash.isalnum():
            return None
        dest = self.folder / f"{content_hash}.jpg"
        if await asyncio.to_thread(dest.exists):
            return dest
        task = self._making.get(content_hash)
        if task is None:
            # its own task: a browser that stops waiting does not stop the drawing others wait for
            task = asyncio.get_running_loop().create_task(self._make(tool, kind, src, dest, duration_ms),
                                                          name=f"thumbnail-{content_hash[:12]}")
            self._making[content_hash] = task
            task.add_done_callback(lambda _: self._making.pop(content_hash, None))
        return await asyncio.shield(task)

    async def _make(self, tool: str, kind: str | None, src: Path, dest: Path, duration_ms: int | None) -> Path | None:
        failed = dest.with_suffix(".none")  # don't retry a file the tool can't read
        if await asyncio.to_thread(failed.exists):
            return None
        async with self._slots:
            ok = await asyncio.to_thread(make, tool, kind, src, dest, duration_ms)
        if not ok:
            await asyncio.to_thread(_touch, failed)
        return dest if ok else None

    async def stop(self) -> None:
        """Cancel the drawings under way (a tool already running ends within its timeout)."""
        tasks = list(self._making.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
