"""`hub`: run the hub, the demo, and manage tokens, devices and the cloud link."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from .config import ConfigError, default_data_dir, load_config


def _data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None,
                   help="data directory (hub.db, media/, secrets); default $HUB_DATA or ~/.local/share/hub")


def _data_dir(args: argparse.Namespace) -> Path:
    return args.data or default_data_dir()


def cmd_run(args: argparse.Namespace) -> int:
    from .service import serve

    overrides = {"data_dir": str(args.data)} if args.data else None
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as e:
        print(f"hub: {e}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(config.log_level.upper())
    asyncio.run(serve(config))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return asyncio.run(run_demo(args))


def cmd_token_create(args: argparse.Namespace) -> int:
    from .tokens import create_token

    print(create_token(_data_dir(args) / "hub.db", args.name))
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .store import open_database

    db_path = _data_dir(args) / "hub.db"
    if not db_path.exists():
        print(f"hub: no database at {db_path}", file=sys.stderr)
        return 1
    db = open_database(db_path)
    if "devices" not in db.table_names():
        print("no devices yet")
        return 0
    states = {r["id"]: r["state"] for r in db["device_state"].rows} if "device_state" in db.table_names() else {}
    rows = list(db["devices"].rows_where(order_by="room, name"))
    if args.json:
        print(json.dumps([{**r, "state": json.loads(states.get(r["id"]) or "{}")} for r in rows], indent=2))
        return 0
    table = Table("id", "name", "room", "driver", "model", "state")
    for r in rows:
        table.add_row(r["id"], r["user_name"] or r["name"], r["user_room"] or r["room"], r["driver"],
                      r["model"], (states.get(r["id"]) or "")[:60])
    Console().print(table)
    return 0


def _media_cli():
    from .media import cli as media_cli

    return media_cli


def cmd_cloud_link(args: argparse.Namespace) -> int:
    return asyncio.run(_media_cli().cloud_link(_data_dir(args), args.cloud))


def cmd_cloud_unlink(args: argparse.Namespace) -> int:
    return _media_cli().cloud_unlink(_data_dir(args))


def cmd_sync(args: argparse.Namespace) -> int:
    return asyncio.run(_media_cli().sync(_data_dir(args), once=args.once, bandwidth=args.bwlimit,
                                         concurrency=args.transfers, max_deletes=args.max_deletes, quiet=args.quiet))


def cmd_media_verify(args: argparse.Namespace) -> int:
    return asyncio.run(_media_cli().verify(_data_dir(args), refetch=not args.no_refetch, quiet=args.quiet))


def cmd_media_manifest(args: argparse.Namespace) -> int:
    return asyncio.run(_media_cli().write_manifest(_data_dir(args), args.out))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the hub (for real use)")
    p.add_argument("--config", type=Path, default=None, help="TOML config file")
    _data_arg(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="the zero-setup demo: broker, hub, simulated house, projector, cloud")
    p.add_argument("--port", type=int, default=8080, help="web UI port (default 8080)")
    p.add_argument("--mqtt-port", type=int, default=None, help="MQTT broker port (default: a free one)")
    p.add_argument("--speed", type=float, default=1.0, help="simulation speed factor")
    p.add_argument("--no-mosquitto", action="store_true", help="use the embedded amqtt broker")
    _data_arg(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("token", help="API tokens")
    tsub = p.add_subparsers(dest="token_command", required=True)
    t = tsub.add_parser("create", help="print a new long-lived API token")
    t.add_argument("--name", required=True)
    _data_arg(t)
    t.set_defaults(func=cmd_token_create)

    p = sub.add_parser("devices", help="list known devices")
    p.add_argument("--json", action="store_true")
    _data_arg(p)
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("cloud", help="link the operator cloud account")
    csub = p.add_subparsers(dest="cloud_command", required=True)
    c = csub.add_parser("link", help="device-code login; shows a code to approve on your phone")
    c.add_argument("--cloud", required=True, help="cloud base URL")
    _data_arg(c)
    c.set_defaults(func=cmd_cloud_link)
    c = csub.add_parser("unlink", help="forget the cloud tokens (synced files stay)")
    _data_arg(c)
    c.set_defaults(func=cmd_cloud_unlink)

    p = sub.add_parser("sync", help="sync media from the linked cloud")
    p.add_argument("--once", action="store_true", help="sync once and exit")
    p.add_argument("--bwlimit", type=int, default=None, metavar="BYTES_PER_S", help="bandwidth limit")
    p.add_argument("--transfers", type=int, default=3, help="big files fetched at once (default 3)")
    p.add_argument("--max-deletes", type=int, default=None, help="most deletions one pass may make")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _data_arg(p)
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("media", help="the synced media library")
    msub = p.add_subparsers(dest="media_command", required=True)
    m = msub.add_parser("verify", help="re-hash every file; report damaged ones and fetch them again")
    m.add_argument("--no-refetch", action="store_true", help="only report (damaged files still leave the library)")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    _data_arg(m)
    m.set_defaults(func=cmd_media_verify)
    m = msub.add_parser("manifest", help="write `<content_hash>  <path>` lines (rclone check --checkfile dropbox)")
    m.add_argument("out", type=Path)
    _data_arg(m)
    m.set_defaults(func=cmd_media_manifest)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
