"""`firmware-sim cloud`: the simulated operator cloud serving a library directory.

API (cloudsync research §7; errors are JSON {"error", "error_description"}):
- RFC 8628 device grant: POST /oauth/device/code, POST /oauth/token (device_code and
  refresh_token grants); the phone's page at GET/POST /device. Refresh tokens are not
  rotated. Access tokens expire after --token-ttl; /v1 answers 401 + WWW-Authenticate.
- GET /v1/changes?cursor=&limit= (1..2000, default 500) -> {entries, cursor, has_more}. No
  cursor lists everything (no tombstones), parents before children; later pages and deltas
  come in change order; deletions keep the id. 410 {"error": "reset"}: relist without a
  cursor (journal overflowed, server restarted, or the `reset` fault). 400 invalid_cursor.
- GET /v1/changes/latest_cursor; GET /v1/changes/wait?cursor=&timeout= (1..480, default 30)
  -> {changes, backoff?}.
- GET|HEAD /v1/files/{id}/content[?rev=]: ETag "<content_hash>", Range, If-Range, 416.
- GET /v1/files/{id}/blocks: {block_size, blocks, content_hash, rev} (4 MiB block hashes).
- GET /v1/manifest: `<content_hash>  <relative path>` lines (rclone --checkfile dropbox).
- ids are derived from the path (stable across restarts); revs from hash + mtime + inode.
  Hidden names (".*") and symlinks are not served.
- POST|GET|DELETE /_admin/faults (unauthenticated: keep --host on loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from aiohttp import web

from .app import AUTHORITY, FAULTS, LIBRARY, create_app
from .faults import FAULTS as FAULT_HELP
from .faults import FaultError

__all__ = ["AUTHORITY", "FAULTS", "LIBRARY", "add_arguments", "create_app", "main", "serve"]

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    fault_names = ", ".join(sorted(FAULT_HELP)) + ", random=FRACTION[:SEED]"
    parser.add_argument("--library", type=Path, required=True, help="directory to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765,
                        help="port (default 8765; 0 picks a free one, printed at start)")
    parser.add_argument("--auto-approve", action="store_true",
                        help="approve every device code at once (scripts and the demo)")
    parser.add_argument("--seed-demo", action="store_true",
                        help="fill an empty library with demo films, photos and documents")
    parser.add_argument("--token-ttl", type=int, default=3600, help="access token lifetime, s")
    parser.add_argument("--code-ttl", type=int, default=900, help="device code lifetime, s")
    parser.add_argument("--interval", type=int, default=5, help="device grant poll interval, s")
    parser.add_argument("--scan-interval", type=float, default=2.0,
                        help="seconds between library rescans (0: only on requests)")
    parser.add_argument("--journal-size", type=int, default=1000,
                        help="deletions remembered; older cursors get 410 reset")
    parser.add_argument("--wait-jitter", type=float, default=0.0,
                        help="random extra seconds on long-polls (Dropbox adds up to 90)")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME[=VALUE][*COUNT]",
                        help=f"turn on a fault switch (repeatable): {fault_names}")
    parser.add_argument("--fault-seed", type=int, default=None, help="seed for random faults")


async def serve(app: web.Application, host: str, port: int,
                stop: asyncio.Event | None = None) -> None:
    """Run `app` on host:port until `stop` is set (or forever)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        library = app[LIBRARY]
        files = sum(1 for e in library.journal.live() if e.tag == "file")
        port = runner.addresses[0][1] if runner.addresses else port  # --port 0: the real one
        print(f"operator cloud on http://{host}:{port}/ serving {library.root} ({files} files); "
              f"approve devices at http://{host}:{port}/device", flush=True)
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()


def main(args: argparse.Namespace) -> int:
    library: Path = args.library
    if args.seed_demo:
        from . import media_seed

        if media_seed.is_empty(library):
            made = media_seed.seed(library)
            print(f"seeded {len(made)} demo files into {library}", flush=True)
        else:
            log.info("library %s is not empty: not seeding", library)
    try:
        app = create_app(library, auto_approve=args.auto_approve, token_ttl=args.token_ttl,
                         code_ttl=args.code_ttl, interval=args.interval, faults=args.fault,
                         fault_seed=args.fault_seed, scan_interval=args.scan_interval,
                         max_tombstones=args.journal_size, wait_jitter=args.wait_jitter)
    except FaultError as exc:
        print(f"firmware-sim cloud: {exc}")
        return 2

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve(app, args.host, args.port, stop)

    try:
        asyncio.run(run())
    except OSError as exc:
        print(f"firmware-sim cloud: cannot serve on {args.host}:{args.port}: {exc}")
        return 1
    return 0
