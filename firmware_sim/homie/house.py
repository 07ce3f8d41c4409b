"""`firmware-sim house`: a whole simulated house of Homie 5 devices, described by a TOML file.

```
[[device]]
id = "kitchen-light"      # Homie id: a-z, 0-9, hyphens
name = "Kitchen light"
type = "light"            # light, plug, thermostat, climate-sensor, motion-sensor, contact-sensor, cover, lock
room = "Kitchen"
params = { }              # optional, per type (e.g. cover: speed = 10 (%/s); plug: load_w = 60)
```

Every device gets its own MQTT connection; all of them share one AsyncZeroconf for mDNS.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import time
import tomllib
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel as Schema
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from zeroconf.asyncio import AsyncZeroconf

from firmware_sim.common.clock import SimClock
from firmware_sim.common.net import Advertiser, BrokerAddress, make_zeroconf, resolve_broker
from firmware_sim.common.state import StateStore, default_state_dir

from .devices import MODELS, build_model
from .mdns import homie_service_info
from .runtime import DeviceConfig, HomieDevice
from .wire import valid_id

log = logging.getLogger(__name__)


class DeviceSpec(Schema):
    """One `[[device]]` table of a house file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=63)
    type: str
    room: str = ""
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _homie_id(cls, value: str) -> str:
        if not valid_id(value):
            raise ValueError("Homie ids use only a-z, 0-9 and inner hyphens")
        return value

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"unknown type; known: {', '.join(sorted(MODELS))}")
        return value


class HouseSpec(Schema):
    model_config = ConfigDict(extra="forbid")
    device: list[DeviceSpec] = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _unique(self) -> "HouseSpec":
        ids = [d.id for d in self.device]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate device ids: {', '.join(dupes)}")
        return self


def default_house_text() -> str:
    return resources.files(__package__).joinpath("default_house.toml").read_text("utf-8")


def parse_house(text: str) -> list[DeviceSpec]:
    """Parse and validate a house file; ValueError with a readable message when it is wrong."""
    try:
        data = tomllib.loads(text)
        spec = HouseSpec.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"house file is not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise ValueError(f"house file is invalid:\n{exc}") from None
    for d in spec.device:  # fail on bad params now, not when the device starts
        build_model(d.type, d.params)
    return spec.device


def load_house(path: Path | None) -> list[DeviceSpec]:
    return parse_house(default_house_text() if path is None else Path(path).read_text("utf-8"))


class House:
    """Runs the given devices: one MQTT connection each, one shared AsyncZeroconf.

    `start()` finds the broker, restores state, connects every device and advertises them;
    `stop()` publishes `$state` = disconnected, says mDNS goodbye and saves state.
    """

    def __init__(self, specs: Sequence[DeviceSpec], *, broker_url: str | None = None,
                 state_dir: Path | None = None, interface: str = "127.0.0.1", speed: float = 1.0,
                 keepalive: int = 10, mdns: bool = True, discovery_timeout: float = 10.0,
                 aiozc: AsyncZeroconf | None = None) -> None:
        self.specs = list(specs)
        self.broker_url = broker_url
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.interface = interface
        self.speed = speed
        self.keepalive = keepalive
        self.mdns = mdns
        self.discovery_timeout = discovery_timeout
        self.aiozc = aiozc
        self._own_zeroconf = aiozc is None
        self.broker: BrokerAddress | None = None
        self.devices: list[HomieDevice] = []
        self.advertiser: Advertiser | None = None
        self._advertising: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.mdns and self.aiozc is None:
            self.aiozc = make_zeroconf(self.interface)
        try:
            self.broker = await resolve_broker(self.broker_url, self.aiozc if self.mdns else None,
                                               self.discovery_timeout)
            clock = SimClock(self.speed)
            store = StateStore(self.state_dir)
            for spec in self.specs:
                config = DeviceConfig(spec.id, spec.name, spec.room, self.broker.host, self.broker.port,
                                      self.keepalive)
                model = build_model(spec.type, spec.params, random.Random())
                self.devices.append(HomieDevice(config, model, clock, store))
            await asyncio.gather(*(d.start() for d in self.devices))
            if self.mdns and self.aiozc is not None:
                self.advertiser = Advertiser(self.aiozc)
                self._advertising = asyncio.create_task(self._advertise())
        except BaseException:
            await self.stop()
            raise

    async def _advertise(self) -> None:
        assert self.advertiser is not None and self.broker is not None
        infos = [homie_service_info(d.config.name, d.device_id, d.config.room, d.model.kind,
                                    self.interface, self.broker.port) for d in self.devices]
        await self.advertiser.register(infos)
        log.info("advertised %d devices as _homie._tcp on %s", len(infos), self.interface)

    async def advertised(self) -> None:
        """Wait until every mDNS registration finished (probing takes about a second)."""
        if self._advertising is not None:
            await asyncio.shield(self._advertising)

    async def wait_ready(self, timeout: float) -> None:
        """Until every device has published `$state` = ready."""
        await asyncio.wait_for(asyncio.gather(*(d.ready.wait() for d in self.devices)), timeout)

    async def stop(self) -> None:
        if self._advertising is not None:
            if not self._advertising.done():
                self._advertising.cancel()
            await asyncio.gather(self._advertising, return_exceptions=True)
            self._advertising = None
        if self.advertiser is not None:
            await self.advertiser.unregister()
            self.advertiser = None
        await asyncio.gather(*(d.stop() for d in self.devices), return_exceptions=True)
        self.devices = []
        if self.aiozc is not None and self._own_zeroconf:
            await self.aiozc.async_close()
            self.aiozc = None


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", metavar="URL", help="mqtt://host:port (default: find _mqtt._tcp by mDNS)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where device state is kept (default: $XDG_STATE_HOME/firmware-sim)")
    parser.add_argument("--interface", default="127.0.0.1", help="IPv4 address for mDNS (default 127.0.0.1)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulation clock speed-up factor")
    parser.add_argument("--keepalive", type=int, default=10, help="MQTT keepalive in seconds (default 10)")
    parser.add_argument("--no-mdns", action="store_true", help="do not advertise over mDNS (needs --broker)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", type=Path, default=None, help="house TOML (default: the shipped house)")
    add_common_arguments(parser)


def check_common(args: argparse.Namespace) -> str | None:
    if args.speed <= 0 or args.speed > 10000:
        return "--speed must be in (0, 10000]"
    if not 1 <= args.keepalive <= 3600:
        return "--keepalive must be 1..3600 seconds"
    if args.no_mdns and not args.broker:
        return "--no-mdns needs --broker"
    return None


async def run(house: House) -> int:
    """Start, report readiness, then run until SIGINT/SIGTERM (also during start); stop cleanly."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    t0 = time.monotonic()
    stop_wait = asyncio.create_task(stopping.wait())
    phase = asyncio.create_task(house.start())
    try:
        await asyncio.wait({phase, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not phase.done():
            return 0  # stopped while still starting (e.g. looking for the broker)
        exc = phase.exception()
        if isinstance(exc, (TimeoutError, ValueError, OSError)):
            log.error("%s", exc)
            return 2
        if exc is not None:
            raise exc
        phase = asyncio.create_task(house.wait_ready(timeout=24 * 3600))
        await asyncio.wait({phase, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if phase.done() and phase.exception() is None:
            log.info("all %d devices ready in %.2f s (broker %s)", len(house.devices),
                     time.monotonic() - t0, house.broker.url if house.broker else "?")
        await stop_wait
        log.info("stopping")
        return 0
    finally:
        for task in (phase, stop_wait):
            task.cancel()
        await asyncio.gather(phase, stop_wait, return_exceptions=True)
        await house.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_specs(args: argparse.Namespace, specs_of: Callable[[], list[DeviceSpec]]) -> int:
    """Check the common options, build the devices (exit 2 naming the problem), run them until stopped."""
    problem = check_common(args)
    if problem:
        log.error("%s", problem)
        return 2
    try:
        specs = specs_of()
    except (OSError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    house = House(specs, broker_url=args.broker, state_dir=args.state_dir, interface=args.interface,
                  speed=args.speed, keepalive=args.keepalive, mdns=not args.no_mdns)
    return asyncio.run(run(house))


def main(args: argparse.Namespace) -> int:
    return run_specs(args, lambda: load_house(args.file))
