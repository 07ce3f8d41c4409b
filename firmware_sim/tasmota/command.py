"""`firmware-sim tasmota`: one simulated Tasmota device until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import argparse
import asyncio
import signal

from firmware_sim.common.clock import SimClock
from firmware_sim.common.net import make_zeroconf, resolve_broker

from .device import TasmotaSim
from .model import MODELS, TasmotaDevice


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=sorted(MODELS), default="plug2", help="which device (default plug2)")
    parser.add_argument("--broker", default=None, help="mqtt://host:port (default: find _mqtt._tcp by mDNS)")
    parser.add_argument("--topic", default="", help="MQTT Topic (default tasmota_<last 6 of MAC>)")
    parser.add_argument("--full-topic", default="%prefix%/%topic%/",
                        help="FullTopic pattern (%%prefix%%, %%topic%%, %%hostname%%, %%id%%)")
    parser.add_argument("--mac", default=None, help="12 hex digits (default: one per model)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument("--teleperiod", type=int, default=300, help="seconds between tele/STATE+SENSOR (0: off)")
    parser.add_argument("--discovery-delay", type=float, default=10.0, help="seconds after boot before discovery")
    parser.add_argument("--mdns-interface", default="127.0.0.1", help="IPv4 address to look for the broker on")


async def run(args: argparse.Namespace) -> int:
    clock = SimClock(args.speed)
    if "%prefix%" not in args.full_topic or "%topic%" not in args.full_topic and "%id%" not in args.full_topic:
        raise SystemExit("--full-topic needs %prefix% and %topic% (or %id%)")
    kwargs = {"topic": args.topic, "full_topic": args.full_topic}
    if args.mac:
        kwargs["mac"] = args.mac.replace(":", "").upper()
    config = MODELS[args.model](**kwargs)
    aiozc = make_zeroconf(args.mdns_interface) if not args.broker else None
    try:
        broker = await resolve_broker(args.broker, aiozc)
    finally:
        if aiozc is not None:
            await aiozc.async_close()
    sim = TasmotaSim(TasmotaDevice(config, clock.now(), teleperiod=args.teleperiod), broker, clock,
                     discovery_delay=args.discovery_delay)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sim:
        await asyncio.wait_for(sim.ready.wait(), 30)
        print(f"tasmota {config.mqtt_topic} ({config.mac}) on {broker.url}", flush=True)
        await stop.wait()
    return 0


def main(args: argparse.Namespace) -> int:
    if args.speed <= 0 or args.teleperiod < 0:
        raise SystemExit("--speed must be > 0 and --teleperiod >= 0")
    if args.mac and len(args.mac.replace(":", "")) != 12:
        raise SystemExit("--mac must be 12 hex digits")
    return asyncio.run(run(args))
