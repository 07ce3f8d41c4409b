"""Runs pjlink-advance's PJLinkEmulator (Python 3.13 venv) for the tests; controlled over stdin.

argv[1]: JSON options. Prints {"port": tcp, "udp_port": udp} once listening, then one JSON
reply per JSON command line on stdin: notify, power, state, disconnect_all, set.
"""

import asyncio
import json
import socket
import sys

from pjlink_advance.emulator import PJLinkEmulator
from pjlink_advance.models import PowerState


def free_port_for_both() -> int:
    """A port free for TCP and UDP at once (the emulator's CLI uses one number for both)."""
    for _ in range(50):
        t = socket.socket()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


async def main() -> None:
    opts = json.loads(sys.argv[1])
    port = opts.get("port") or free_port_for_both()
    emu = PJLinkEmulator(
        pj_class=opts.get("pj_class", 2), password=opts.get("password"), host=opts.get("host", "127.0.0.1"),
        port=port, udp_port=port, idle_timeout=opts.get("idle_timeout", 30.0),
        transition_delay=opts.get("transition_delay", 0.0),
    )
    if "mac" in opts:
        emu.state.mac = opts["mac"]
    if "power" in opts:
        emu.state.power = PowerState(opts["power"])
    await emu.start()
    print(json.dumps({"port": emu.port, "udp_port": emu.udp_port}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = json.loads(line)
        op = cmd.pop("op")
        out: dict = {"ok": True}
        if op == "notify":
            await emu.notify(cmd["command"], cmd["value"], (cmd["host"], cmd["port"]))
        elif op == "power":
            emu.state.power = PowerState(cmd["value"])
        elif op == "disconnect_all":
            emu.disconnect_all()
        elif op == "set":
            for k, v in cmd.items():
                setattr(emu, k, set(v) if isinstance(v, list) else v)
        elif op == "state":
            s = emu.state
            out.update(power=str(s.power), input=s.input.code, video=s.mute.video, audio=s.mute.audio,
                       freeze=s.freeze, speaker_volume=s.speaker_volume, connections=emu.connections,
                       received=emu.received[-50:])
        print(json.dumps(out), flush=True)
    await emu.stop()


asyncio.run(main())
