"""Shelly Gen2+ driver: found by mDNS `_shelly._tcp`, commanded by HTTP RPC, told by the device.

Each device is one hub device, `shelly-<mac>`. Its exposes come from the components its status
has (`switch:N`, `cover:N`, `light:N`, with metering where the status carries it); live state
is what the device pushes on its `/rpc` WebSocket (`NotifyStatus`, `NotifyFullStatus`), and a
Poller only keeps that link up: reconnects with backoff, online tracking, a slow `GetStatus`
resync. Commands go over HTTP (`POST /rpc`) with SHA-256 digest (RFC 7616) by aiohttp's
DigestAuthMiddleware; the device's own notification confirms them.

Options (`[drivers.shelly]`): `passwords` by device id, Shelly id or MAC, `default_password`,
`timeout`, `resync_interval`, `heartbeat`, `backoff`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hub.driver import (
    Claim, DeviceRejected, DeviceTimeout, DeviceUnreachable, Discovered, Driver, DriverContext, MqttSeen, NotNow,
    Poller, Priority, Wiring,
)
from hub.model import Action, DeviceInfo, shared

from . import shelly_rpc as rpc
from .shelly_link import AuthFailed, HttpRpc, RpcSocket

MAX_DEVICES = 1024  # bounded: made-up announcements can't grow memory forever


class Options(BaseModel):
    """`[drivers.shelly]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    passwords: dict[str, SecretStr] = Field(default_factory=dict)  # by shelly-<mac>, the Shelly id or the MAC
    default_password: SecretStr | None = None
    timeout: float = Field(5.0, gt=0)  # per RPC call
    resync_interval: float = Field(300.0, gt=0)  # a full GetStatus over the live link, in case a notification was lost
    heartbeat: float = Field(55.0, gt=0)  # WebSocket ping (aioshelly's interval): finds a link that died silently
    backoff: tuple[float, float] = (1.0, 60.0)  # initial and longest reconnect delay, seconds

    @field_validator("passwords")
    @classmethod
    def _normalized_keys(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        out = {}
        for key, pw in v.items():
            try:
                out[rpc.normalize_mac(key)] = pw
            except ValueError:
                out[key.lower()] = pw
        return out


@dataclass(slots=True)
class _Device:
    """What the driver knows about one device (owned by the driver, mutable)."""

    id: str
    mac: str
    url: str = ""  # http://host:port
    label: str = ""  # the mDNS instance name until the device names itself
    info: dict[str, Any] = field(default_factory=dict)  # Shelly.GetDeviceInfo
    wiring: Wiring | None = None
    components: tuple[str, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)  # last reported, by expose name
    password: str | None = field(default=None, repr=False)
    http: HttpRpc | None = None
    socket: RpcSocket | None = None
    poller: Poller | None = None
    announced: DeviceInfo | None = None
    last_error: str = ""


class ShellyDriver(Driver):
    """Shelly Gen2+ devices (Plus, Pro, Gen3): switches with metering, covers, dimmers."""

    name: ClassVar[str] = "shelly"
    priority: ClassVar[int] = Priority.FAMILY
    service_types: ClassVar[tuple[str, ...]] = (rpc.SERVICE,)
    Options: ClassVar[type[BaseModel]] = Options
    options: Options

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        self._devices: dict[str, _Device] = {}
        self._src = "hub-" + secrets.token_hex(4)  # our name on the devices' RPC channels
        self._stopping = False

    async def stop(self) -> None:
        self._stopping = True
        for dev in self._devices.values():
            if dev.poller is not None:
                await dev.poller.stop()
            if dev.socket is not None:
                await dev.socket.close()

    # -- discovery -----------------------------------------------------------------------------------

    def identify(self, seen: Discovered | MqttSeen) -> Claim | None:
        if not isinstance(seen, Discovered) or seen.service_type != rpc.SERVICE:
            return None
        found = rpc.read_announcement(seen.name, seen.txt)  # ValueError names the junk
        if found is None:
            return None  # Gen1: not ours
        return Claim(rpc.device_id_for(found.mac), "shelly:" + found.mac)

    async def seen(self, device_id: str, seen: Discovered | MqttSeen) -> None:
        assert isinstance(seen, Discovered)
        if self._stopping or not seen.address:
            return
        dev = self._devices.get(device_id)
        if dev is None:
            if len(self._devices) >= MAX_DEVICES:
                self.ctx.log.warning("%d Shelly devices known; ignoring %s", MAX_DEVICES, device_id)
                return
            dev = self._devices[device_id] = _Device(device_id, device_id.removeprefix("shelly-"))
        host = f"[{seen.address}]" if ":" in seen.address else seen.address
        url = f"http://{host}:{seen.port or 80}"
        dev.label = dev.label or seen.name.split("." + rpc.SERVICE)[0]
        if url != dev.url:  # new, or moved: the next round talks to the new address
            dev.url = url
            dev.password = self._password(dev)
            dev.http = HttpRpc(self.ctx.http, url, self._src, dev.password, self.options.timeout)
            if dev.socket is not None:
                await dev.socket.close()
        if dev.poller is None:
            o = self.options
            dev.poller = Poller(self.ctx, device_id, lambda: self._keep_linked(dev), interval=o.resync_interval,
                                backoff=o.backoff)
        if dev.poller.running:
            dev.poller.wake()
        else:
            dev.poller.start()

    async def released(self, device_id: str) -> None:
        """A more specific driver took it: stop talking to it."""
        dev = self._devices.pop(device_id, None)
        if dev is not None:
            if dev.poller is not None:
                await dev.poller.stop()
            if dev.socket is not None:
                await dev.socket.close()

    async def gone(self, device_id: str) -> None:
        """mDNS goodbye: the WebSocket decides; check it now."""
        if (dev := self._devices.get(device_id)) is not None and dev.poller is not None:
            dev.poller.wake()

    def _password(self, dev: _Device) -> str | None:
        pw = self.options.passwords
        shelly_id = str(dev.info.get("id", "")).lower()
        for key in (dev.id, dev.mac, shelly_id):
            if key and key in pw:
                return pw[key].get_secret_value()
        default = self.options.default_password
        return default.get_secret_value() if default is not None else None

    # -- the link: Poller keeps it up, the WebSocket brings the state ----------------------------------

    async def _keep_linked(self, dev: _Device) -> float | None:
        """One Poller round: connect if the WebSocket is down, else resync with a full status."""
        try:
            if dev.socket is None or dev.socket.closed:
                await self._connect(dev)
            else:
                self._full_status(dev, await dev.socket.call("Shelly.GetStatus"))
        except AuthFailed as e:
            self._error(dev, f"authentication failed: {e}")
            raise DeviceUnreachable("authentication failed") from None
        except DeviceTimeout as e:
            raise DeviceUnreachable(str(e)) from None
        except (rpc.RpcError, ValueError) as e:
            self._error(dev, f"status: {e}")
            raise DeviceUnreachable(str(e)) from None
        return None

    async def _connect(self, dev: _Device) -> None:
        assert dev.http is not None
        answer = await dev.http.call("Shelly.GetDeviceInfo")  # never behind auth (docs, Authentication)
        info = answer.result
        if answer.error is not None or not isinstance(info, dict):
            raise ValueError("Shelly.GetDeviceInfo gave no device info")
        if str(info.get("mac", "")).lower().replace(":", "") != dev.mac:
            raise ValueError(f"{dev.url} is another device (mac {str(info.get('mac'))[:20]!r})")
        dev.info = info
        password = self._password(dev)  # may be keyed by the Shelly id, known only now
        if password != dev.password:
            dev.password = password
            dev.http = HttpRpc(self.ctx.http, dev.url, self._src, password, self.options.timeout)
        auth = rpc.FrameAuth(str(info.get("id", "")), password) if password else None
        socket = RpcSocket(self.ctx.http, dev.url, self._src, auth, timeout=self.options.timeout,
                           heartbeat=self.options.heartbeat, on_notify=lambda n: self._notified(dev, n),
                           on_garbage=lambda msg: self._error(dev, msg),
                           on_closed=lambda sock: self._closed(dev, sock))
        await socket.open(self.ctx.spawn)
        try:
            status = await socket.call("Shelly.GetStatus")  # names us: notifications follow
        except BaseException:
            await socket.close()
            raise
        old, dev.socket = dev.socket, socket
        if old is not None:
            await old.close()
        self._full_status(dev, status)
        if dev.last_error.startswith("authentication failed"):
            dev.last_error = ""

    def _closed(self, dev: _Device, socket: RpcSocket) -> None:
        if self._stopping or dev.poller is None or socket is not dev.socket:
            return  # not the live link (one that failed while connecting): the Poller already knows
        dev.poller.set_online(False, "WebSocket closed")
        dev.poller.wake()  # reconnect now; the Poller backs off if that fails

    # -- what the device says ------------------------------------------------------------------------

    def _full_status(self, dev: _Device, status: Any) -> None:
        """A whole status (GetStatus, NotifyFullStatus): (re)build the exposes if the components changed."""
        if not isinstance(status, dict):
            self._error(dev, f"dropped a status that is not an object: {str(status)[:40]!r}")
            return
        comps = tuple(rpc.components(status))
        if dev.wiring is None or comps != dev.components:
            dev.components, dev.wiring = comps, rpc.wiring_for(status)
            dev.values = {}
        self._announce(dev)
        self._report(dev, status)

    def _notified(self, dev: _Device, note: rpc.Notification) -> None:
        if note.method == "NotifyFullStatus":
            self._full_status(dev, note.params)
        elif note.method == "NotifyStatus" and dev.wiring is not None:
            if set(rpc.components(note.params)) - set(dev.components) and dev.poller is not None:
                dev.poller.wake()  # a component we haven't seen: a full status will rebuild the exposes
            self._report(dev, note.params)
        elif note.method == "NotifyEvent" and dev.poller is not None:
            events = note.params.get("events")
            if isinstance(events, list) and any(isinstance(e, dict) and e.get("event") == "config_changed"
                                                for e in events):
                dev.poller.wake()  # e.g. a profile switch: resync

    def _report(self, dev: _Device, status: Mapping[str, Any]) -> None:
        assert dev.wiring is not None
        flat, problems = rpc.flatten(status)
        for problem in problems:
            self._error(dev, problem)
        dev.values.update(self.ctx.report(dev.id, dev.wiring, flat))
        # a cover on its way says where it is going (docs, Cover: `target_pos` while moving)
        heading = {f"{comp}/current_pos": body["target_pos"] for comp, body in status.items()
                   if comp.startswith("cover:") and isinstance(body, dict) and "target_pos" in body}
        targets, problems = dev.wiring.decode(heading)
        for problem in problems:
            self._error(dev, problem)
        if targets:
            self.ctx.target_accepted(dev.id, targets)

    def _announce(self, dev: _Device) -> None:
        info = DeviceInfo(
            id=dev.id, driver=self.name, exposes=shared(dev.wiring.exposes) if dev.wiring else (),
            name=str(dev.info.get("name") or dev.label or dev.id)[:80], manufacturer="Shelly",
            model=rpc.pretty_model(dev.info), address=dev.url.removeprefix("http://"),
        )
        if info != dev.announced:
            dev.announced = info
            self.ctx.device_found(info)

    def _error(self, dev: _Device, message: str) -> None:
        if message != dev.last_error:  # one report per distinct problem
            dev.last_error = message
            self.ctx.log.warning("%s: %s", dev.id, message)
            self.ctx.device_error(dev.id, message)

    # -- commands ------------------------------------------------------------------------------------

    async def send(self, device_id: str, values: Mapping[str, Any]) -> None:
        dev = self._devices.get(device_id)
        if dev is None or dev.wiring is None or dev.http is None:
            raise DeviceUnreachable(f"{device_id} has not been reached yet")
        wiring = dev.wiring
        settled: dict[str, Any] = {}  # what the device's answers say it already was
        for call in rpc.calls_for(wiring.encode(values)):
            try:
                answer = await dev.http.call(call.method, call.params)
            except AuthFailed as e:
                self._error(dev, f"authentication failed: {e}")
                self._lost(dev, "authentication failed")
                raise DeviceUnreachable(f"{device_id}: authentication failed") from None
            except DeviceUnreachable as e:
                self._lost(dev, str(e))
                raise
            except ValueError as e:  # garbage for an answer: the notification still decides
                self._error(dev, f"{call.method}: {e}")
                continue
            if answer.error is not None:
                name = rpc.expose_of(wiring, rpc.blamed_key(call, answer.error))
                if answer.error.code == rpc.FAILED_PRECONDITION:
                    raise NotNow(name, answer.error.message)
                raise DeviceRejected(name, f"the device refused it ({answer.error.code}: {answer.error.message})")
            settled.update(rpc.unchanged(call, answer.result, wiring))
        # A value the device already had changes nothing, so nothing is notified: Switch.Set's
        # `was_on` says so; for the others the device's last report stands.
        for name, value in values.items():
            if name not in settled and dev.values.get(name) == value \
                    and not isinstance(wiring.wire(name).expose, Action):
                settled[name] = value
        if settled:
            self.ctx.state_changed(device_id, settled)

    def _lost(self, dev: _Device, reason: str) -> None:
        if dev.poller is not None:
            dev.poller.set_online(False, reason)
            dev.poller.wake()
