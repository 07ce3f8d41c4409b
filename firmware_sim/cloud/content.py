"""Streaming a library file: Range/If-Range per RFC 9110 §14, plus the download faults.

The decision is `http_semantics.plan_download` (pure); this module only reads the file in a
thread and writes it out, cutting, withholding, trickling or mutating when a fault says so.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from .faults import FaultSet
from .http_semantics import http_date, plan_download
from .journal import Entry
from .store import Library

log = logging.getLogger(__name__)

CHUNK = 256 * 1024


def _open_matching(path: Path, entry: Entry) -> BinaryIO | None:
    """The file opened unbuffered if it is still the version `entry` describes. Blocking.

    Unbuffered, so bytes changed on disk mid-download (the mutate fault) are what is read.
    """
    try:
        f = open(path, "rb", buffering=0)
    except OSError:
        return None
    st = os.fstat(f.fileno())
    if st.st_size == entry.size and st.st_mtime_ns == entry.mtime_ns:
        return f  # type: ignore[return-value]
    f.close()
    return None


async def _open_current(library: Library, item_id: str) -> tuple[Entry | None, BinaryIO | None]:
    """The entry for an id and its open file, rescanning once if the disk moved on."""
    for attempt in range(2):
        entry = library.file(item_id)
        if entry is None:
            return None, None
        f = await asyncio.to_thread(_open_matching, library.disk_path(entry), entry)
        if f is not None:
            return entry, f
        if attempt == 0:
            await library.refresh()
    return entry, None


async def serve_content(request: web.Request, library: Library, faults: FaultSet,
                        throttled: Callable[[dict, FaultSet], web.Response | None]
                        ) -> web.StreamResponse:
    """Answer GET/HEAD /v1/files/{id}/content[?rev=R] (410 when R is no longer current)."""
    entry, f = await _open_current(library, request.match_info["id"])
    if entry is None:
        return web.json_response({"error": "not_found"}, status=404)
    if f is None:  # still being written: come back shortly
        return web.json_response({"error": "changing", "error_description": "file is changing"},
                                 status=503, headers={"Retry-After": "1"})
    try:
        return await _respond(request, library, faults, throttled, entry, f)
    finally:
        await asyncio.to_thread(f.close)


async def _respond(request: web.Request, library: Library, faults: FaultSet,
                   throttled: Callable[[dict, FaultSet], web.Response | None],
                   entry: Entry, f: BinaryIO) -> web.StreamResponse:
    wanted_rev = request.query.get("rev")
    if wanted_rev and wanted_rev != entry.rev:
        return web.json_response({"error": "rev_gone", "rev": entry.rev}, status=410)
    picked = faults.pick("content", entry.size)
    if (resp := throttled(picked, faults)) is not None:
        return resp
    etag = f'"{entry.content_hash}"'
    plan = plan_download(size=entry.size, etag=etag, last_modified=entry.server_modified,
                         range_header=request.headers.get("Range"),
                         if_range=request.headers.get("If-Range"),
                         if_none_match=request.headers.get("If-None-Match"),
                         honour_range="ignore_range" not in picked)
    headers = {"ETag": etag, "Accept-Ranges": "bytes",
               "Last-Modified": http_date(entry.server_modified),
               "Cache-Control": "private, no-cache"}
    if (content_range := plan.content_range()) is not None:
        headers["Content-Range"] = content_range
    if plan.status in (304, 416):
        return web.Response(status=plan.status, headers=headers)
    headers["Content-Type"] = entry.media_type or "application/octet-stream"
    resp = web.StreamResponse(status=plan.status, headers=headers)
    resp.content_length = plan.length
    await resp.prepare(request)
    if request.method == "HEAD" or plan.length == 0:
        await resp.write_eof()
        return resp
    await _send_body(request, resp, library, entry, f, plan.start, plan.length, picked)
    return resp


async def _send_body(request: web.Request, resp: web.StreamResponse, library: Library,
                     entry: Entry, f: BinaryIO, start: int, length: int,
                     picked: dict[str, float | None]) -> None:
    to_send = length
    cut = False
    if "drop_after" in picked:
        to_send = min(to_send, int(picked["drop_after"] or 0))
        cut = True
    if "short_body" in picked:
        to_send = min(to_send, max(0, length - max(1, int(picked["short_body"] or 1))))
        cut = True
    mutate_at = None
    if "mutate" in picked:
        value = picked["mutate"]
        mutate_at = min(length - 1, int(value) if value is not None else length // 2)
    rate = float(picked["trickle"] or 0) if "trickle" in picked else 0.0
    chunk = max(1, min(CHUNK, int(rate / 10))) if rate else CHUNK
    sent = 0
    await asyncio.to_thread(f.seek, start)
    while sent < to_send:
        if mutate_at is not None and sent >= mutate_at:
            log.info("fault mutate: changing %s at byte %d", entry.path, start + sent)
            await library.corrupt_at(entry, start + sent)
            mutate_at = None
        n = min(chunk, to_send - sent)
        if mutate_at is not None:
            n = min(n, mutate_at - sent)
        data = await asyncio.to_thread(f.read, n)
        if not data:
            cut = True  # the file shrank under us: the client sees a short body
            break
        await resp.write(data)
        sent += len(data)
        if rate:
            await asyncio.sleep(len(data) / rate)  # the trickle fault's pacing
    if mutate_at is not None:  # the body was cut before the mutation point
        await library.corrupt_at(entry, start + min(mutate_at, length - 1))
    if cut and sent < length:
        log.info("fault: ending %s after %d of %d bytes", entry.path, sent, length)
        if request.transport is not None:
            # flushes what was written, then FIN; aiohttp's own write_eof then meets a
            # closing transport, which it treats as a client that went away
            request.transport.close()
        return
    await resp.write_eof()
