"""`firmware-sim shelly`: one simulated Shelly Gen2 device until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import signal

from firmware_sim.common.clock import SimClock

from .models import MODELS, build, normalise_mac
from .server import ShellySim


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=sorted(MODELS), default="plus1pm", help="which device (default plus1pm)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="HTTP/WebSocket port (0: any free one)")
    parser.add_argument("--password", default=None, help="enable digest auth for user admin with this password")
    parser.add_argument("--id", dest="mac", default=None, metavar="ID",
                        help="the device's MAC (12 hex digits) or id (e.g. shellyplus1pm-a8032ab1f001)")
    parser.add_argument("--name", default=None, help="device name (sys.device.name)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument("--mdns-interface", default="127.0.0.1",
                        help="IPv4 address to advertise _shelly._tcp on ('' to disable)")


async def run(args: argparse.Namespace) -> int:
    clock = SimClock(args.speed)
    device = build(args.model, mac=args.mac, password=args.password, name=args.name,
                   booted_at=clock.now(), ip=args.host)
    sim = ShellySim(device, clock, host=args.host, port=args.port, mdns_interface=args.mdns_interface or None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim:
        print(f"shelly {device.identity.device_id} at {sim.url}", flush=True)
        await stop.wait()
    return 0


def mac_of(text: str) -> str:
    """A MAC from `--id`: the MAC itself, or a device id ending in `-<12 hex digits>`."""
    tail = text.rsplit("-", 1)[-1]
    return normalise_mac(tail if "-" in text and len(tail) == 12 else text)


def main(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        raise SystemExit("--speed must be > 0")
    if args.mac:
        try:
            args.mac = mac_of(args.mac)
        except ValueError as exc:
            raise SystemExit(f"--id: {exc}") from None
    return asyncio.run(run(args))
