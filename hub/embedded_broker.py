"""The demo's zero-setup fallback broker (amqtt), in its own process, bound to loopback.

Never for production (measured here, amqtt 0.12.1): retained messages leak past its ACLs, keepalive
is not enforced (a silently dead client's will never fires), anonymous persistent sessions are
dropped, and it speaks MQTT 3.1.1 only. `make demo` installs Mosquitto where it can.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal


async def serve(host: str, port: int) -> None:
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    logging.getLogger(__name__).warning(
        "embedded amqtt broker on %s:%s: demo only (no keepalive enforcement, retained leaks)", host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
