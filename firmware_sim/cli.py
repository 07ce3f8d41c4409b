"""`firmware-sim`: simulated device firmware, the projector and the operator cloud."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> module; each module has add_arguments(parser) and main(args) -> int
COMMANDS = {
    "house": ("firmware_sim.homie.house", "a whole simulated house of Homie 5 devices, from a TOML file"),
    "fleet": ("firmware_sim.homie.fleet", "N generic Homie 5 devices, for load tests"),
    "projector": ("firmware_sim.projector.command", "a PJLink Class 2 projector with its Homie 5 media player"),
    "cloud": ("firmware_sim.cloud.command", "the operator cloud API serving a library directory"),
    "shelly": ("firmware_sim.shelly.command", "a Shelly Gen2 device: HTTP/WebSocket RPC, digest auth, mDNS"),
    "tasmota": ("firmware_sim.tasmota.command", "a Tasmota device on MQTT with native discovery"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="firmware-sim", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # import only the simulator that runs: each costs memory
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_module=module)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args._module.main(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
