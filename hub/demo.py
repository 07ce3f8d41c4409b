"""`hub demo`: a private broker, the hub, a simulated house, a Shelly, a Tasmota, the projector and the cloud, on loopback."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
from rich.console import Console

from . import accounts, demo_scenes
from .broker import Broker, free_port, wait_for_port
from .config import HubConfig, default_data_dir
from .media.cli import cloud_link, cloud_unlink
from .service import running_hub, wait_for_signal

log = logging.getLogger(__name__)


class Child:
    """A simulator subprocess with its log file; stop() ends it, SIGTERM then SIGKILL."""

    def __init__(self, name: str, args: list[str], logdir: Path) -> None:
        self.name = name
        self.args = args
        self.logdir = logdir
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)
        with open(self.logdir / f"{self.name}.log", "ab") as out:
            # its own session: Ctrl-C reaches the demo alone, which then stops everything in order
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "firmware_sim.cli", *self.args,
                stdout=out, stderr=out, stdin=asyncio.subprocess.DEVNULL, start_new_session=True)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


DEMO_USER = "demo"


def _demo_login(data: Path) -> tuple[str, str]:
    """The demo's owner with a fresh password each run, and the demo's own API token (for the
    sync it starts). Returns (password, token)."""
    password = secrets.token_urlsafe(9)
    hashed = accounts.hash_password(password)

    def ensure(db) -> None:
        user = accounts.find_user(db, DEMO_USER)[0]
        if user is None:
            accounts.insert_user(db, DEMO_USER, hashed, "owner")
        else:
            accounts.set_password_hash(db, user.id, hashed)

    accounts.with_db(data / "hub.db", ensure)
    path = data / "secrets" / "demo-token"
    if path.exists():
        token = path.read_text().strip()
        if accounts.with_db(data / "hub.db", accounts.lookup_token, token) is not None:
            return password, token
    token = accounts.create_token(data / "hub.db", "demo sync", user=DEMO_USER)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return password, token


async def _seed_scenes(hub, url: str, token: str) -> None:
    try:
        created = await demo_scenes.seed(hub, url, token)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
        log.warning("demo scenes not created: %s", e)
    except Exception:
        log.exception("demo scenes not created")
    else:
        log.info("demo scenes created: %s", ", ".join(created) or "none (already there)")


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


SHELLY_PASSWORD = "demo-shelly"  # the simulated Shelly asks for it, as a real one with a password does


async def run_demo(args: argparse.Namespace) -> int:
    data: Path = args.data or (default_data_dir() / "demo")
    data.mkdir(parents=True, exist_ok=True)
    logs = data / "logs"
    broker = Broker(data / "broker", port=args.mqtt_port, embedded=True if args.no_mosquitto else None)
    notify_port = free_port()  # the projector's PJLink Class 2 status notifications come here (UDP)
    async with AsyncExitStack() as stack:
        await asyncio.to_thread(broker.start)
        stack.callback(broker.stop)
        config = HubConfig(
            data_dir=data,
            mqtt={"url": broker.url},
            http={"host": "127.0.0.1", "port": args.port},
            discovery={"interfaces": ["127.0.0.1"], "advertise_broker": True},
            drivers={"pjlink": {"udp_host": "127.0.0.1", "notify_port": notify_port},
                     "shelly": {"default_password": SHELLY_PASSWORD}},
            inbox=False,  # the simulated house is the household's own: no 14 devices in "New devices"
        )
        password, token = await asyncio.to_thread(_demo_login, data)
        # each demo run starts its own cloud on a new port: forget the last run's link first
        cloud_unlink(data, console=Console(quiet=True))
        hub, url = await stack.enter_async_context(running_hub(config))
        await hub.mqtt.wait_connected(10)

        speed = str(args.speed)
        cloud_port = free_port()
        children = [
            Child("house", ["house", "--broker", broker.url, "--state-dir", str(data / "sim-state"),
                            "--speed", speed], logs),
            Child("projector", ["projector", "--broker", broker.url, "--port", str(free_port()),
                                "--udp-port", str(free_port()), "--notify-port", str(notify_port),
                                "--state-dir", str(data / "sim-state"),
                                "--speed", speed], logs),
            # two device families besides Homie: a Shelly Plus 1PM (HTTP RPC with digest auth, found
            # by mDNS) and a Tasmota two-relay plug with an energy meter (native MQTT discovery)
            Child("shelly", ["shelly", "--model", "plus1pm", "--port", str(free_port()), "--password", SHELLY_PASSWORD,
                             "--name", "Washing machine", "--speed", speed], logs),
            Child("tasmota", ["tasmota", "--model", "plug2", "--broker", broker.url, "--discovery-delay", "1",
                              "--teleperiod", "30", "--speed", speed], logs),
            Child("cloud", ["cloud", "--library", str(data / "cloud-library"), "--port", str(cloud_port),
                            "--auto-approve", "--seed-demo", "--interval", "1"], logs),
        ]
        for child in children:
            await child.start()
            stack.push_async_callback(child.stop)
        await asyncio.to_thread(wait_for_port, "127.0.0.1", cloud_port, 30)
        cloud_url = f"http://127.0.0.1:{cloud_port}"
        # link like a household would (device code; the simulated phone approves at once), then sync
        if await cloud_link(data, cloud_url, console=Console(quiet=True)) == 0:
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
                async with s.post(f"{url}/api/media/sync") as r:
                    if r.status >= 300:
                        log.warning("starting the media sync failed: %s", await r.text())
        else:
            log.warning("could not link the demo cloud; see %s", logs / "cloud.log")
        # "Movie night" and "All off", once the house, the projector and a film are there
        seeding = asyncio.get_running_loop().create_task(_seed_scenes(hub, url, token), name="demo-scenes")
        stack.push_async_callback(_cancel, seeding)

        print(f"""
  hub demo is running  ({broker.kind} on {broker.url})

    open    {url}/   and log in as  {DEMO_USER} / {password}   (a new password each run)
    API     hub token create --name script --data {data}   then
            curl -H 'Authorization: Bearer <token>' {url}/api/devices
    MQTT    mosquitto_sub -p {broker.port} -t 'hub/#' -v
    scenes  mosquitto_pub -p {broker.port} -t hub/scene/movie-night/set -n   (or "all-off")
    cloud   {cloud_url} (linked; films, photos and documents sync into {data / "media"})
    logs    {logs}

  Ctrl-C stops everything.
""", flush=True)
        await wait_for_signal()
        print("stopping…", flush=True)
    return 0
