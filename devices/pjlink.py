"""PJLink projector driver: found by mDNS `_pjlink._tcp` or Class 2 search, one device per MAC.

The projector's media player (Homie 5, `_homie._tcp` with TXT `type=media-player` and the
projector's `mac`) is merged into the same device as `media_*` exposes.

Options (`[drivers.pjlink]`, see `PJLinkDriver.Options`): passwords by MAC or device id, a
fallback password (default: env `HUB_PJLINK_PASSWORD`), the search address, ports and timings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hub.driver import (
    Claim, DeviceRejected, DeviceUnreachable, Discovered, Driver, DriverContext, MqttSeen, Poller, Priority,
)
from hub.model import Access, Action, Binary, DeviceInfo, Enum, Expose, NotNow, Numeric

from . import pjlink_codec as pj
from .pjlink_client import PJLinkClient
from .pjlink_identity import Identity, move_refusal
from .pjlink_player import MediaPlayer, PlayerUpdate
from .pjlink_search import PJLinkUdp, SearchAck, StatusNotice, UdpEvent

log = logging.getLogger(__name__)

PJLINK_SERVICE = "_pjlink._tcp.local."
HOMIE_SERVICE = "_homie._tcp.local."
ERROR_VALUES = ("ok", "warning", "error")
MAX_PROJECTORS = 256  # bounded: a flood of fake search replies cannot grow memory forever


def device_id_for(mac: str) -> str:
    """Stable id from the MAC: `projector-0026ab000001` (never the IP or the name)."""
    return "projector-" + pj.normalize_mac(mac)


class Options(BaseModel):
    """`[drivers.pjlink]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    passwords: dict[str, SecretStr] = Field(default_factory=dict)  # by MAC (any notation) or device id
    default_password: SecretStr | None = Field(
        default_factory=lambda: SecretStr(pw) if (pw := os.environ.get("HUB_PJLINK_PASSWORD")) else None)
    search_address: str | None = None  # e.g. "255.255.255.255"; None: no Class 2 search
    port: int = Field(4352, ge=1, le=65535)  # TCP and search port
    notify_port: int | None = Field(4352, ge=0, le=65535)  # UDP for Class 2 notifications; None: don't listen
    udp_host: str = "0.0.0.0"
    poll_interval: float = Field(30.0, gt=0)
    transition_poll: float = Field(1.0, gt=0)  # while warming/cooling, ask POWR this often
    search_interval: float = Field(300.0, gt=0)
    timeout: float = Field(5.0, gt=0)
    backoff: tuple[float, float] = (1.0, 60.0)  # initial and longest retry delay, seconds

    @field_validator("passwords")
    @classmethod
    def _keys_lower(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return {k.lower(): pw for k, pw in v.items()}


@dataclass
class _Projector:
    """Everything the driver knows about one projector (mutable, owned by the driver)."""

    id: str
    mac: str
    host: str = ""
    port: int = 4352
    label: str = ""  # mDNS instance name until NAME answers
    room: str = ""  # from a `room` TXT key, when the projector or its player advertises one
    name: str = ""  # PJLink NAME
    manufacturer: str = ""
    model: str = ""
    pj_class: int = 1
    serial: str = ""  # PJLink SNUM (Class 2)
    identity: Identity | None = None  # what answered at `host` once the static queries succeeded
    moving: bool = False  # a check of a new address is in flight (one at a time)
    inputs: dict[str, str] = field(default_factory=dict)  # input name → code
    values: dict[str, Any] = field(default_factory=dict)
    unsupported: set[str] = field(default_factory=set)
    static_loaded: bool = False
    client: PJLinkClient | None = None
    poller: Poller | None = None
    player: MediaPlayer | None = None
    announced: DeviceInfo | None = None
    reported_error: str = ""


class PJLinkDriver(Driver):
    """Projectors over PJLink Class 1/2 plus their Homie media player, as one device each."""

    name: ClassVar[str] = "pjlink"
    priority: ClassVar[int] = Priority.SPECIFIC  # takes the projector's Homie player from the Homie driver
    service_types: ClassVar[tuple[str, ...]] = (PJLINK_SERVICE, HOMIE_SERVICE)
    Options: ClassVar[type[BaseModel]] = Options
    options: Options

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        self.udp: PJLinkUdp | None = None
        self._projectors: dict[str, _Projector] = {}
        self._stopping = False

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        o = self.options
        if o.notify_port is not None or o.search_address:
            self.udp = PJLinkUdp(self._on_udp, host=o.udp_host, port=o.notify_port or 0)
            try:
                await self.udp.start()
            except OSError as e:
                log.warning("pjlink: cannot listen on UDP %s:%s (%s); polling only", o.udp_host, o.notify_port, e)
                self.udp = None
        if o.search_address and self.udp is not None:
            self.ctx.spawn(self._search_loop(), "search")

    async def stop(self) -> None:
        self._stopping = True
        for p in self._projectors.values():
            if p.poller is not None:
                await p.poller.stop()
            if p.client is not None:
                await p.client.close()
            self._unfollow_player(p)
        if self.udp is not None:
            await self.udp.stop()
            self.udp = None

    # ---------------------------------------------------------------- discovery

    def identify(self, seen: Discovered | MqttSeen) -> str | Claim | None:
        if not isinstance(seen, Discovered):
            return None
        if seen.service_type == HOMIE_SERVICE:
            if seen.txt.get("type") != "media-player" or not seen.txt.get("mac") or not seen.txt.get("id"):
                return None  # not a projector's player: the generic Homie driver takes it
            try:
                # the same thing the Homie driver names it by: this claim outranks its claim
                return Claim(device_id_for(seen.txt["mac"]), "homie:" + seen.txt["id"])
            except ValueError:
                return None
        if seen.service_type == PJLINK_SERVICE:
            mac = seen.txt.get("mac", "")
            if not mac:
                raise ValueError("_pjlink._tcp TXT has no mac")
            return device_id_for(mac)  # ValueError names the bad MAC
        return None

    async def seen(self, device_id: str, seen: Discovered) -> None:
        if seen.service_type == HOMIE_SERVICE:
            self._attach_player(device_id, seen)
            self._room_from(device_id, seen)
            return
        mac = pj.normalize_mac(seen.txt.get("mac", ""))
        try:
            pj_class = 2 if int(seen.txt.get("class", "1")) >= 2 else 1  # CLSS answers later anyway
        except ValueError:
            pj_class = 1
        label = seen.name.split("." + PJLINK_SERVICE)[0] if seen.name else ""
        self._attach(device_id, mac, seen.address, seen.port or self.options.port, label, pj_class)
        self._room_from(device_id, seen)

    def _room_from(self, device_id: str, seen: Discovered) -> None:
        p = self._projectors.get(device_id)
        room = seen.txt.get("room", "")[:80]
        if p is not None and room and room != p.room:
            p.room = room
            self._announce(p)

    async def gone(self, device_id: str) -> None:
        """mDNS goodbye: PJLink itself decides availability, so just check now."""
        p = self._projectors.get(device_id)
        if p is None:
            return
        if p.poller is not None:
            p.poller.wake()
        else:
            self.ctx.availability_changed(device_id, False, "mDNS goodbye")

    def _projector(self, device_id: str, mac: str) -> _Projector | None:
        p = self._projectors.get(device_id)
        if p is None:
            if len(self._projectors) >= MAX_PROJECTORS:
                log.warning("pjlink: %d projectors known; ignoring %s", MAX_PROJECTORS, device_id)
                return None
            p = self._projectors[device_id] = _Projector(device_id, mac)
        return p

    def _attach(self, device_id: str, mac: str, host: str, port: int, label: str = "", pj_class: int = 1) -> None:
        """A projector's PJLink address is known (mDNS or search): (re)start talking to it."""
        if self._stopping or not host:
            return
        p = self._projector(device_id, mac)
        if p is None:
            return
        if p.identity is not None and (host, port) != (p.host, p.port):
            self._consider_move(p, host, port)  # follow only once TCP says it is the same unit
            return
        p.label = p.label or label
        if not p.static_loaded:
            p.pj_class = max(p.pj_class, pj_class)
        password = self._password(p)
        if p.client is None:
            p.client = PJLinkClient(host, port, password, timeout=self.options.timeout)
        else:
            p.client.retarget(host, port, password)
        p.host, p.port = host, port
        if p.poller is None:
            o = self.options
            p.poller = Poller(self.ctx, p.id, lambda: self._poll_once(p), interval=o.poll_interval, backoff=o.backoff)
        if p.poller.running:
            p.poller.wake()
        else:
            p.poller.start()
        self._announce(p)

    def _password(self, p: _Projector) -> str | None:
        pw = self.options.passwords
        for key in (p.id, p.mac, ":".join(p.mac[i:i + 2] for i in range(0, 12, 2))):
            if key in pw:
                return pw[key].get_secret_value()
        default = self.options.default_password
        return default.get_secret_value() if default is not None else None

    # ---------------------------------------------------------------- the device definition

    def _exposes(self, p: _Projector) -> tuple[Expose, ...]:
        ex: list[Expose] = []
        if p.host:
            ex += [
                Binary(name="power", access=Access.STATE | Access.SET),
                Enum(name="power_state", values=("off", "warming", "on", "cooling")),
            ]
            if p.inputs:
                ex.append(Enum(name="input", access=Access.STATE | Access.SET, values=tuple(p.inputs)))
            ex += [
                Binary(name="video_mute", access=Access.STATE | Access.SET),
                Binary(name="audio_mute", access=Access.STATE | Access.SET),
            ]
            if p.pj_class >= 2:
                ex += [Action(name="volume", values=("up", "down")),
                       Binary(name="freeze", access=Access.STATE | Access.SET)]
            ex.append(Numeric(name="lamp_hours", unit="h", min=0, integer=True, category="diagnostic"))
            if p.pj_class >= 2 and "FILT" not in p.unsupported:
                ex.append(Numeric(name="filter_hours", unit="h", min=0, integer=True, category="diagnostic"))
            ex += [Enum(name=f"error_{part}", values=ERROR_VALUES, category="diagnostic")
                   for part in pj.ERROR_PARTS]
        if p.player is not None:
            ex += p.player.exposes
        return tuple(ex)

    def _announce(self, p: _Projector) -> None:
        name = p.name or p.label or f"Projector {p.mac[-6:]}"
        info = DeviceInfo(
            id=p.id, name=name, driver=self.name, exposes=self._exposes(p), model=p.model,
            manufacturer=p.manufacturer, address=p.host, room=p.room,
        )
        if info != p.announced:
            p.announced = info
            self.ctx.device_found(info)

    # ---------------------------------------------------------------- polling

    async def _poll_once(self, p: _Projector) -> float:
        """One round for the Poller: identity once, then state; fast while warming or cooling
        (notifications do the fast path otherwise)."""
        try:
            if not p.static_loaded:
                await self._load_static(p)
            await self._poll(p)
        except pj.AuthenticationFailed as e:
            self._error(p, f"PJLink authentication failed: {e}")
            raise DeviceUnreachable("authentication failed") from None
        o = self.options
        return o.transition_poll if p.values.get("power_state") in ("warming", "cooling") else o.poll_interval

    async def _ask(self, p: _Projector, command: str, pj_class: int = 1, param: str = "?") -> str | None:
        """One query; None when the projector can't answer it now (ERR1-4) or answered garbage."""
        if command in p.unsupported:
            return None
        assert p.client is not None
        try:
            return await p.client.request(command, param, pj_class=pj_class)
        except pj.UndefinedCommand:
            p.unsupported.add(command)
        except pj.CommandRejected as e:
            log.debug("pjlink %s: %s", p.id, e)
        return None

    async def _load_static(self, p: _Projector) -> None:
        """CLSS, NAME, INF1, INF2, INST and (Class 2) INNM: the device's identity and inputs."""
        clss = await self._ask(p, "CLSS")
        p.pj_class = 2 if clss and clss.strip().startswith("2") else 1
        p.name = (await self._ask(p, "NAME") or "").strip()
        p.manufacturer = (await self._ask(p, "INF1") or "").strip()
        p.model = (await self._ask(p, "INF2") or "").strip()
        if p.pj_class >= 2:
            p.serial = (await self._ask(p, "SNUM", 2) or "").strip()
        codes: tuple[str, ...] = ()
        raw = await self._ask(p, "INST", p.pj_class)
        if raw is not None:
            codes = self._decoded(p, pj.decode_inputs, raw) or ()
        inputs: dict[str, str] = {}
        for code in codes:
            label = ""
            if p.pj_class >= 2:
                label = (await self._ask(p, "INNM", 2, "?" + code) or "").strip()
            label = label or pj.input_label(code)
            if label in inputs:
                label = f"{label} ({code})"
            inputs[label] = code
        p.inputs = inputs
        p.static_loaded = True
        assert p.client is not None
        p.identity = Identity(p.pj_class, p.serial, p.manufacturer, p.model, bool(p.client.auth_required))
        self._announce(p)

    async def _poll(self, p: _Projector) -> None:
        """POWR, INPT, AVMT, ERST, LAMP (+ FILT, FREZ on Class 2) → changed values."""
        values: dict[str, Any] = {}
        if (raw := await self._ask(p, "POWR")) is not None and (power := self._decoded(p, pj.decode_power, raw)):
            values.update(_power_values(power))
        if values.get("power_state") in ("warming", "cooling") and p.values.get("power_state") == values["power_state"]:
            self._report(p, values)  # mid-transition: only POWR matters until it settles
            return
        if (raw := await self._ask(p, "INPT", p.pj_class)) is not None:
            code = self._decoded(p, pj.decode_input, raw)
            if code is not None:
                values["input"] = self._input_name(p, code)
        if (raw := await self._ask(p, "AVMT")) is not None and (mute := self._decoded(p, pj.decode_mute, raw)):
            values["video_mute"], values["audio_mute"] = mute
        if (raw := await self._ask(p, "ERST")) is not None and (errs := self._decoded(p, pj.decode_errors, raw)):
            values.update({f"error_{k}": v for k, v in errs.items()})
        if (raw := await self._ask(p, "LAMP")) is not None and (lamps := self._decoded(p, pj.decode_lamps, raw)):
            values["lamp_hours"] = lamps[0][0]
        if p.pj_class >= 2:
            had_filter = "FILT" not in p.unsupported
            if (raw := await self._ask(p, "FILT", 2)) is not None:
                hours = self._decoded(p, pj.decode_hours, raw)
                if hours is not None:
                    values["filter_hours"] = hours
            if had_filter and "FILT" in p.unsupported:
                self._announce(p)  # no filter: drop the expose
            if (raw := await self._ask(p, "FREZ", 2)) is not None:
                frozen = self._decoded(p, pj.decode_flag, raw)
                if frozen is not None:
                    values["freeze"] = frozen
        self._report(p, values)

    def _decoded(self, p: _Projector, decode: Any, raw: str) -> Any:
        try:
            return decode(raw)
        except pj.BadReply as e:
            self._error(p, str(e))
            return None

    def _input_name(self, p: _Projector, code: str) -> str:
        for name, c in p.inputs.items():
            if c == code:
                return name
        return pj.input_label(code)

    def _report(self, p: _Projector, values: Mapping[str, Any], *, confirm: bool = False) -> None:
        """Tell the hub what changed; with confirm, everything given (the projector acknowledged
        it, or the player said it), so a command asking for the value it already has is confirmed."""
        changed = {k: v for k, v in values.items() if p.values.get(k, object()) != v}
        p.values.update(changed)
        if confirm and values:
            self.ctx.state_changed(p.id, dict(values))
        elif changed:
            self.ctx.state_changed(p.id, changed)

    @staticmethod
    def _wake(p: _Projector) -> None:
        if p.poller is not None:
            p.poller.wake()

    def _lost(self, p: _Projector, reason: str) -> None:
        """A command found it unreachable: offline now; the poller backs off and brings it back."""
        if p.poller is not None:
            p.poller.set_online(False, reason)
            p.poller.wake()

    def _error(self, p: _Projector, message: str) -> None:
        if message != p.reported_error:  # logged once per distinct problem
            p.reported_error = message
            log.warning("pjlink %s: %s", p.id, message)
            self.ctx.device_error(p.id, message)

    # ---------------------------------------------------------------- commands

    async def send(self, device_id: str, values: Mapping[str, Any]) -> None:
        p = self._projectors.get(device_id)
        if p is None:
            raise DeviceUnreachable(f"{device_id} is not a known projector")
        ordered = sorted(values.items(), key=lambda kv: kv[0] != "power")  # power first
        for key, value in ordered:
            if key.startswith("media_"):
                await self._send_media(p, key, value)
                continue
            if p.client is None:
                raise DeviceUnreachable(f"{device_id}: PJLink address not known yet")
            try:
                await self._send_one(p, key, value)
            except pj.UnavailableTime:
                raise NotNow(key, self._not_now(p)) from None  # PJLink ERR3: valid, but not now
            except pj.OutOfParameter:
                raise DeviceRejected(key, "the projector refused this value (ERR2)") from None
            except pj.UndefinedCommand:
                raise DeviceRejected(key, "this projector does not support it (ERR1)") from None
            except pj.ProjectorFailure:
                raise DeviceRejected(key, "the projector reports a failure (ERR4)") from None
            except pj.AuthenticationFailed as e:
                self._lost(p, "authentication failed")
                raise DeviceUnreachable(f"{device_id}: PJLink authentication failed ({e})") from None
            except DeviceUnreachable as e:
                self._lost(p, str(e))
                raise
            if p.poller is not None:
                p.poller.set_online(True)

    def _not_now(self, p: _Projector) -> str:
        state = p.values.get("power_state")
        if state == "warming":
            return "projector is warming up"
        if state == "cooling":
            return "projector is cooling down"
        if state == "on":
            return "projector is busy"
        return "projector is in standby"

    async def _send_one(self, p: _Projector, key: str, value: Any) -> None:
        assert p.client is not None
        req = p.client.request
        if key == "power":
            await req("POWR", "1" if value else "0")
            self.ctx.target_accepted(p.id, {"power": bool(value)})
            raw = await req("POWR", "?")
            state = pj.decode_power(raw) if raw in pj.POWER_STATES else None
            if state is None or (value and state == "off") or (not value and state == "on"):
                state = "warming" if value else "cooling"  # the projector hasn't caught up yet
            self._report(p, _power_values(state))
            self._wake(p)  # poll fast until the transition ends
        elif key == "input":
            code = p.inputs.get(value)
            if code is None:
                raise DeviceRejected(key, f"must be one of {', '.join(p.inputs)}")
            await req("INPT", code, pj_class=pj.input_class(code))
            self._report(p, {"input": value}, confirm=True)
        elif key in ("video_mute", "audio_mute"):
            await req("AVMT", ("1" if key == "video_mute" else "2") + ("1" if value else "0"))
            self._report(p, {key: bool(value)}, confirm=True)
        elif key == "freeze":
            await req("FREZ", "1" if value else "0", pj_class=2)
            self._report(p, {"freeze": bool(value)}, confirm=True)
        elif key == "volume":
            await req("SVOL", "1" if value == "up" else "0", pj_class=2)
        else:
            raise DeviceRejected(key, "not a projector property")

    # ---------------------------------------------------------------- Class 2 UDP

    def _on_udp(self, ev: UdpEvent, source: str) -> None:
        """Search replies attach projectors; status notifications update state (PJLink v2.00 "Status Notification Protocol")."""
        if isinstance(ev, SearchAck):  # PJLinkUdp delivers one only while our search is in flight
            self._announced_at(ev.mac, source)
            return
        if not isinstance(ev, StatusNotice):
            log.debug("pjlink udp from %s: %s %r", source, ev.reason, ev.data)
            return
        at_source = [p for p in self._projectors.values() if p.host == source]
        if ev.command == "LKUP":
            try:
                mac = pj.normalize_mac(ev.value)
            except ValueError:
                for p in at_source:
                    self._wake(p)  # a garbled LKUP from a projector we know: just ask it
                return
            if device_id_for(mac) in self._projectors or (self.udp is not None and self.udp.searching):
                self._announced_at(mac, source)
            else:
                # Unsolicited and unknown: anyone can send one; the next search finds a real unit.
                log.debug("pjlink: LKUP for unknown %s from %s outside a search; ignored", mac, source)
            return
        if len(at_source) != 1:
            for p in at_source:  # several projectors share the address: ask each
                self._wake(p)
            return
        p = at_source[0]
        try:
            if ev.command == "POWR":
                state = pj.decode_power(ev.value)
                self._report(p, _power_values(state))
                if state in ("warming", "cooling"):
                    self._wake(p)
            elif ev.command == "INPT":
                self._report(p, {"input": self._input_name(p, pj.decode_input(ev.value))})
            elif ev.command == "ERST":
                self._report(p, {f"error_{k}": v for k, v in pj.decode_errors(ev.value).items()})
        except pj.BadReply as e:
            self._error(p, f"notification: {e}")

    def _announced_at(self, mac: str, source: str) -> None:
        """A search reply or LKUP says projector `mac` is at `source`."""
        device_id = device_id_for(mac)
        known = self._projectors.get(device_id)
        if known is not None and known.host == source:
            self._wake(known)  # already talking to it (maybe on a port mDNS told us)
        else:
            self._attach(device_id, mac, source, self.options.port)

    def _consider_move(self, p: _Projector, host: str, port: int) -> None:
        if p.moving or self._stopping:
            return  # one check at a time per projector: a flood of claims costs one probe
        p.moving = True
        self.ctx.spawn(self._check_move(p, host, port), f"move-{p.id}")

    async def _check_move(self, p: _Projector, host: str, port: int) -> None:
        """Follow a projector to a new address only if TCP there says it is the same unit."""
        new = PJLinkClient(host, port, self._password(p), timeout=self.options.timeout)
        try:
            assert p.identity is not None and p.client is not None
            refusal = await move_refusal(p.identity, p.client, new)
        except Exception:  # a bug must not leave the projector stuck as "moving"
            log.exception("pjlink %s: checking %s:%s failed", p.id, host, port)
            refusal = "the check failed"
        finally:
            p.moving = False
            await new.close()
        if refusal is not None:
            self._error(p, f"{host}:{port} claimed to be this projector; ignored: {refusal}")
            return
        log.info("pjlink %s moved from %s:%s to %s:%s (checked over TCP)", p.id, p.host, p.port, host, port)
        assert p.client is not None
        p.client.retarget(host, port, self._password(p))
        p.host, p.port = host, port
        self._wake(p)
        self._announce(p)

    async def search(self, target: tuple[str, int] | None = None, window: float = 2.0) -> dict[str, str]:
        """One Class 2 search (to search_address unless `target` is given); mac → IP of each reply."""
        o = self.options
        if self.udp is None:
            raise RuntimeError("pjlink: no UDP socket to search with")
        if target is None:
            if not o.search_address:
                raise RuntimeError("pjlink: no search_address configured")
            target = (o.search_address, o.port)
        found = await self.udp.search(target, window)
        log.debug("pjlink search found %d projector(s)", len(found))
        return found

    async def _search_loop(self) -> None:
        while True:
            await self.search()
            await self.ctx.clock.sleep(self.options.search_interval)

    # ---------------------------------------------------------------- the Homie media player

    def _attach_player(self, device_id: str, seen: Discovered) -> None:
        topic = seen.txt.get("topic") or (f"homie/5/{seen.txt['id']}" if seen.txt.get("id") else "")
        if not topic.startswith("homie/5/") or len(topic) > 200 or "+" in topic or "#" in topic:
            log.warning("pjlink: media player %r has no usable Homie topic; ignored", seen.name)
            return
        p = self._projector(device_id, pj.normalize_mac(seen.txt["mac"]))
        if p is None:
            return
        if p.player is not None and p.player.topic == topic.rstrip("/"):
            return
        self._unfollow_player(p)
        p.player = MediaPlayer(topic)
        p.label = p.label or (seen.name.split("." + HOMIE_SERVICE)[0] if seen.name else "")
        for topic_filter in p.player.topic_filters:
            self.ctx.mqtt.subscribe(topic_filter, self._on_mqtt)
        self._announce(p)
        if not p.host:
            self.ctx.availability_changed(p.id, True, "media player found")

    def _unfollow_player(self, p: _Projector) -> None:
        if p.player is not None:
            for topic_filter in p.player.topic_filters:
                self.ctx.mqtt.unsubscribe(topic_filter, self._on_mqtt)

    def _on_mqtt(self, topic: str, payload: bytes, retained: bool) -> None:
        for p in self._projectors.values():
            if p.player is not None and topic.startswith(p.player.topic + "/"):
                self._player_update(p, p.player.handle(topic, payload))

    def _player_update(self, p: _Projector, up: PlayerUpdate) -> None:
        if up.exposes_changed:
            self._announce(p)
        if up.values:
            self._report(p, up.values, confirm=True)  # each message is the player's own report
        if up.error:
            self._error(p, up.error)

    async def _send_media(self, p: _Projector, key: str, value: Any) -> None:
        if p.player is None:
            raise DeviceRejected(key, "the projector's media player has not been found")
        try:
            topic, payload = p.player.encode_set(key, value)
        except KeyError:
            raise DeviceRejected(key, "the media player does not accept it") from None
        await self.ctx.mqtt.publish(topic, payload, qos=1, retain=False)


def _power_values(state: str) -> dict[str, Any]:
    """POWR state → exposes: `power` is true while on or warming up (where it is heading)."""
    return {"power_state": state, "power": state in ("on", "warming")}
