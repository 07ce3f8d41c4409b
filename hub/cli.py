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
    try:
        asyncio.run(serve(config))
    except ConfigError as e:  # a driver's [drivers.<name>] table, checked as the hub starts
        print(f"hub: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return asyncio.run(run_demo(args))


def _accounts(args: argparse.Namespace, fn, *fn_args, **kwargs):
    """Run an accounts function on the data dir's hub.db; AccountError → a message and exit 1."""
    from . import accounts

    try:
        return accounts.with_db(_data_dir(args) / "hub.db", fn, *fn_args, **kwargs)
    except accounts.AccountError as e:
        raise SystemExit(f"hub: {e}") from None


def _new_password(args: argparse.Namespace) -> str:
    """From stdin with --password-stdin (scripts), else asked twice at the terminal."""
    import getpass

    from .accounts import AccountError, check_password_rule

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("new password: ")
        if getpass.getpass("again: ") != password:
            raise SystemExit("hub: the passwords differ")
    try:
        check_password_rule(password)
    except AccountError as e:
        raise SystemExit(f"hub: {e}") from None
    return password


def cmd_user_add(args: argparse.Namespace) -> int:
    from .accounts import hash_password, insert_user

    user = _accounts(args, insert_user, args.name, hash_password(_new_password(args)), args.role)
    print(f"added {user.role} {user.name}")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    from .accounts import delete_sessions, find_user, hash_password, set_password_hash

    def change(db, password_hash: str) -> int:
        user = find_user(db, args.name)[0]
        if user is None:
            raise SystemExit(f"hub: no user {args.name!r}")
        set_password_hash(db, user.id, password_hash)
        return len(delete_sessions(db, user.id))

    ended = _accounts(args, change, hash_password(_new_password(args)))
    print(f"password changed; {ended} session(s) signed out")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from .accounts import list_users

    for user in _accounts(args, list_users):
        print(f"{user.name}\t{user.role}")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from .accounts import AccountError, create_token

    try:
        print(create_token(_data_dir(args) / "hub.db", args.name, user=args.user,
                           scope="read" if args.read_only else "write"))
    except AccountError as e:
        raise SystemExit(f"hub: {e}") from None
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    import datetime

    from .accounts import list_tokens

    def when(t: float | None) -> str:
        return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else "never"

    for t in _accounts(args, list_tokens):
        print(f"{t['id']}\t{t['name']}\t{t['user']}\t{t['scope']}\tcreated {when(t['created'])}"
              f"\tlast used {when(t['last_used'])}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from .accounts import delete_token

    if not _accounts(args, delete_token, args.id):
        raise SystemExit(f"hub: no token {args.id!r} (see hub token list)")
    print("revoked (a running hub stops accepting it within 2 s)")
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

    p = sub.add_parser("token", help="long-lived API tokens")
    tsub = p.add_subparsers(dest="token_command", required=True)
    t = tsub.add_parser("create", help="print a new API token (shown once)")
    t.add_argument("--name", required=True, help="what it is for, e.g. 'wall tablet'")
    t.add_argument("--user", default=None, help="whose token (default: the hub's only owner)")
    t.add_argument("--read-only", action="store_true", help="may read state but change nothing")
    t.set_defaults(func=cmd_token_create)
    t = tsub.add_parser("list", help="every token: id, name, user, scope, created, last used")
    t.set_defaults(func=cmd_token_list)
    t = tsub.add_parser("revoke", help="revoke a token by its id")
    t.add_argument("id")
    t.set_defaults(func=cmd_token_revoke)
    for t in tsub.choices.values():
        _data_arg(t)

    p = sub.add_parser("user", help="household accounts (also for a household locked out of its hub)")
    usub = p.add_subparsers(dest="user_command", required=True)
    u = usub.add_parser("add", help="add a user (asks for the password)")
    u.add_argument("name")
    u.add_argument("--role", choices=("owner", "member"), default="member")
    u.set_defaults(func=cmd_user_add)
    u = usub.add_parser("passwd", help="set a user's password; signs out all their sessions")
    u.add_argument("name")
    u.set_defaults(func=cmd_user_passwd)
    for u in usub.choices.values():
        u.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    u = usub.add_parser("list", help="users and their roles")
    u.set_defaults(func=cmd_user_list)
    for u in usub.choices.values():
        _data_arg(u)

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
