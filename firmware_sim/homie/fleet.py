"""`firmware-sim fleet --count N`: N generic Homie 5 devices (plugs and climate sensors) for load tests.

Ids are `<prefix>-plug-0001`, `<prefix>-sensor-0002`, ... alternating; the count is bounded by
MAX_COUNT so a typo cannot open thousands of connections.
"""

from __future__ import annotations

import argparse

from .house import DeviceSpec, add_common_arguments, run_specs
from .wire import valid_id

MAX_COUNT = 2000


def fleet_specs(count: int, prefix: str = "fleet") -> list[DeviceSpec]:
    """`count` alternating plugs and climate sensors, each in a room of ten."""
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"--count must be 1..{MAX_COUNT}")
    if not valid_id(prefix):
        raise ValueError("--prefix must be a Homie id (a-z, 0-9, inner hyphens)")
    specs = []
    for i in range(1, count + 1):
        kind, word = ("plug", "plug") if i % 2 else ("climate-sensor", "sensor")
        specs.append(DeviceSpec(id=f"{prefix}-{word}-{i:04d}", name=f"{prefix.capitalize()} {word} {i:04d}",
                                type=kind, room=f"{prefix.capitalize()} room {(i - 1) // 10 + 1}"))
    return specs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, required=True, help=f"how many devices (1..{MAX_COUNT})")
    parser.add_argument("--prefix", default="fleet", help="device id prefix (default fleet)")
    add_common_arguments(parser)


def main(args: argparse.Namespace) -> int:
    return run_specs(args, lambda: fleet_specs(args.count, args.prefix))
