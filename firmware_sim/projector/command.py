"""`firmware-sim projector`: arguments, their checks, and running one `ProjectorSim` until a signal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from dataclasses import replace
from pathlib import Path

from firmware_sim.common.net import parse_broker_url
from firmware_sim.common.state import default_state_dir

from .model import ErrorKind, Level, ProjectorConfig
from .runtime import ProjectorSim


def _error_arg(text: str) -> tuple[ErrorKind, Level]:
    kind, _, level = text.partition("=")
    try:
        return ErrorKind[kind.strip().upper()], Level(int(level or 2))
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r}: use KIND[=LEVEL], KIND one of "
            f"{', '.join(k.name.lower() for k in ErrorKind)}, LEVEL 0/1/2") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ProjectorConfig()
    parser.add_argument("--host", default="127.0.0.1", help="TCP address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4352, help="PJLink TCP port (default 4352)")
    parser.add_argument("--udp-host", default=None,
                        help="UDP address for search/notifications (default: --host; "
                             "0.0.0.0 to hear broadcast searches)")
    parser.add_argument("--udp-port", type=int, default=4352, help="UDP port (default 4352)")
    parser.add_argument("--notify-port", type=int, default=4352,
                        help="controller's UDP port for status notifications (default 4352)")
    parser.add_argument("--password", default=None, help="PJLink password (default: none)")
    parser.add_argument("--name", default=d.name, help=f"projector name (default {d.name!r})")
    parser.add_argument("--room", default="Living room", help="room advertised in mDNS TXT (default 'Living room')")
    parser.add_argument("--mac", default="", help="MAC address (default: derived from --name)")
    parser.add_argument("--serial", default="", help="serial number (default: from --name)")
    parser.add_argument("--warmup", type=float, default=d.warmup, help="warm-up seconds")
    parser.add_argument("--cooldown", type=float, default=d.cooldown, help="cooling seconds")
    parser.add_argument("--speed", type=float, default=d.speed,
                        help="lamp/filter hours grow this many times faster than real time")
    parser.add_argument("--idle-timeout", type=float, default=30.0,
                        help="close a silent TCP session after this many seconds")
    parser.add_argument("--error", action="append", type=_error_arg, default=[],
                        metavar="KIND[=LEVEL]",
                        help="inject a fault at start: fan, lamp, temperature, cover, filter, "
                             "other; LEVEL 1 warning or 2 error (default 2); repeatable")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where power, input and lamp hours persist "
                             "(default $XDG_STATE_HOME/firmware-sim)")
    parser.add_argument("--interface", default="127.0.0.1",
                        help="interface address for mDNS (default 127.0.0.1)")
    parser.add_argument("--no-mdns", action="store_true", help="do not advertise over mDNS")
    parser.add_argument("--broker", default=None,
                        help="MQTT broker for the media player, mqtt://host:port "
                             "(default: found by mDNS _mqtt._tcp)")


def _validate(args: argparse.Namespace) -> str | None:
    if len(args.name.encode()) > 64 or not args.name.strip():
        return "--name must be 1 to 64 bytes (PJLink NAME)"
    if args.password is not None and len(args.password.encode()) > 32:
        return "--password must be at most 32 bytes"
    if args.mac and not _valid_mac(args.mac):
        return "--mac must look like 02:00:00:aa:bb:cc"
    if args.broker is not None:
        try:
            parse_broker_url(args.broker)
        except ValueError as exc:
            return str(exc)
    if min(args.warmup, args.cooldown) < 0 or args.speed <= 0 or args.idle_timeout <= 0:
        return "--warmup/--cooldown must be >= 0, --speed and --idle-timeout > 0"
    return None


def _valid_mac(mac: str) -> bool:
    parts = mac.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                   for p in parts)


def sim_from_args(args: argparse.Namespace) -> ProjectorSim:
    config = replace(ProjectorConfig(), name=args.name, mac=args.mac, serial=args.serial,
                     warmup=args.warmup, cooldown=args.cooldown, speed=args.speed)
    return ProjectorSim(
        config, host=args.host, port=args.port, udp_host=args.udp_host, udp_port=args.udp_port,
        notify_port=args.notify_port, password=args.password, idle_timeout=args.idle_timeout,
        state_dir=args.state_dir or default_state_dir(),
        mdns_interface=None if args.no_mdns else args.interface,
        broker=args.broker, find_broker=not args.no_mdns, room=args.room)


async def run(args: argparse.Namespace) -> int:
    sim = sim_from_args(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await sim.start()
    except OSError as exc:
        print(f"firmware-sim projector: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        for kind, level in args.error:
            sim.inject_error(kind, level)
        print(f"PJLink projector {sim.config.name!r} on {sim.host}:{sim.port} "
              f"(UDP {sim.udp_host}:{sim.udp_port}), mac {sim.config.mac}, "
              f"serial {sim.config.serial}, password {'set' if sim.password else 'off'}",
              flush=True)
        await stop.wait()
    finally:
        await sim.stop()
    return 0


def main(args: argparse.Namespace) -> int:
    problem = _validate(args)
    if problem:
        print(f"firmware-sim projector: {problem}", file=sys.stderr)
        return 2
    return asyncio.run(run(args))
