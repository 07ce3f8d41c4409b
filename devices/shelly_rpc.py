"""Shelly Gen2 RPC without I/O: identity, frames, the WebSocket `auth` object, status → wires, commands.

Shelly docs (shelly-api-docs.shelly.cloud/gen2): General/RPCProtocol (frames), General/Notifications
(`NotifyStatus` carries only what changed, to be overlaid on the last full status;
`NotifyFullStatus` the whole of it), General/Authentication (SHA-256 digest, RFC 7616, user `admin`,
realm = the device id), General/mDNS (`_shelly._tcp`, TXT `gen`, `app`, `ver`), and the
Switch, Cover and Light components.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from hub.driver import Wire, Wiring
from hub.model import Access, Action, Binary, Enum, Expose, Numeric

SERVICE = "_shelly._tcp.local."
USER = "admin"  # docs, Authentication: always
ALGORITHM = "SHA-256"
WS_HA2 = hashlib.sha256(b"dummy_method:dummy_uri").hexdigest()  # what frames hash instead of method:uri
MAX_FRAME = 256 * 1024
COMPONENT_KINDS = ("switch", "cover", "light")
COVER_STATES = ("open", "closed", "opening", "closing", "stopped", "calibrating")
COVER_ACTIONS = {"open": "Cover.Open", "close": "Cover.Close", "stop": "Cover.Stop"}

# RPC error codes (docs, General/CommonErrors)
INVALID_ARGUMENT = -103
FAILED_PRECONDITION = -109
UNAUTHORIZED = 401

_MAC = re.compile(r"(?:^|-)([0-9a-fA-F]{12})$")


# -- identity ------------------------------------------------------------------------------------

def normalize_mac(text: str) -> str:
    """`A8:03:2A:B1:F0:01`, `a8032ab1f001` → `a8032ab1f001`; ValueError otherwise."""
    mac = text.replace(":", "").replace("-", "").lower()
    if len(mac) != 12 or any(c not in "0123456789abcdef" for c in mac):
        raise ValueError(f"{text[:40]!r} is not a MAC address")
    return mac


def device_id_for(mac: str) -> str:
    """Stable hub id from the MAC (never the IP or the name): `shelly-a8032ab1f001`."""
    return "shelly-" + normalize_mac(mac)


@dataclass(frozen=True, slots=True)
class Announcement:
    """What a `_shelly._tcp` record says: generation, app, firmware, and the MAC its id ends in."""

    gen: int
    app: str
    ver: str
    mac: str


def read_announcement(instance: str, txt: Mapping[str, str]) -> Announcement | None:
    """A `_shelly._tcp` record → Announcement; None for Gen1 (not ours); ValueError for junk.

    Gen2+ name their instance (and TXT `id`, where present) `<model>-<mac>`, e.g.
    `shellyplus1pm-a8032ab1f001`: the MAC is the id's last 12 hex digits.
    """
    raw_gen = txt.get("gen", "")
    if not raw_gen:
        raise ValueError("TXT has no gen")
    try:
        gen = int(raw_gen)
    except ValueError:
        raise ValueError(f"TXT gen {raw_gen[:20]!r} is not a number") from None
    if gen < 2:
        return None
    for candidate in (txt.get("id", ""), instance.split(".", 1)[0]):
        if (m := _MAC.search(candidate)) is not None:
            return Announcement(gen, txt.get("app", "")[:40], txt.get("ver", "")[:40], m.group(1).lower())
    raise ValueError(f"no MAC in instance {instance[:60]!r} or TXT id")


# -- frames --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Response:
    id: Any
    result: Any = None
    error: RpcError | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    method: str  # NotifyStatus, NotifyFullStatus, NotifyEvent
    params: dict[str, Any]


class RpcError(Exception):
    """An error object from the device: `{"code": -103, "message": "Invalid argument 'pos'"}`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def argument(self) -> str | None:
        """The argument the device names in its message, if it names one."""
        m = re.search(r"'([A-Za-z_][A-Za-z0-9_]*)'", self.message)
        return m.group(1) if m else None


def request(frame_id: int, src: str, method: str, params: Mapping[str, Any] | None = None,
            auth: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A request frame (docs, RPCProtocol: `id`, `src`, `method`, `params`, and `auth` once challenged)."""
    frame: dict[str, Any] = {"id": frame_id, "src": src, "method": method}
    if params is not None:
        frame["params"] = dict(params)
    if auth is not None:
        frame["auth"] = dict(auth)
    return frame


def parse_frame(data: str | bytes) -> Response | Notification | None:
    """A frame from the device: a Response, a Notification, or None for one to ignore (a
    request from the device, which we don't serve). ValueError for garbage."""
    if len(data) > MAX_FRAME:
        raise ValueError(f"frame of {len(data)} bytes")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("frame is not JSON") from None
    if not isinstance(obj, dict):
        raise ValueError("frame is not a JSON object")
    method = obj.get("method")
    if method is not None:
        if not isinstance(method, str):
            raise ValueError("frame's method is not a string")
        if "id" in obj:
            return None
        params = obj.get("params", {})
        if not isinstance(params, dict):
            raise ValueError(f"{method[:40]} params are not an object")
        return Notification(method, params)
    if "id" not in obj:
        raise ValueError("frame has neither id nor method")
    if "error" in obj:
        return Response(obj["id"], error=error_of(obj["error"]))
    if "result" not in obj:
        raise ValueError("response has neither result nor error")
    return Response(obj["id"], result=obj["result"])


def error_of(err: Any) -> RpcError:
    if not isinstance(err, dict) or not isinstance(err.get("code"), int):
        raise ValueError("error object without a numeric code")
    return RpcError(err["code"], str(err.get("message", ""))[:400])


def challenge_of(err: RpcError) -> dict[str, Any]:
    """The digest challenge a 401 error carries in its message on the WebSocket (a JSON object)."""
    try:
        challenge = json.loads(err.message)
    except ValueError:
        raise ValueError("401 without a challenge") from None
    if not isinstance(challenge, dict) or "nonce" not in challenge or "realm" not in challenge:
        raise ValueError("401 challenge lacks nonce or realm")
    return challenge


class FrameAuth:
    """The `auth` object of WebSocket frames (docs, Authentication; RFC 7616 §3.4.1 with HA2 the
    hash of "dummy_method:dummy_uri"). aiohttp's DigestAuthMiddleware does the same for HTTP
    headers; a frame is not an HTTP request, so this part is ours."""

    def __init__(self, realm: str, password: str) -> None:
        self.realm = realm
        self._ha1 = hashlib.sha256(f"{USER}:{realm}:{password}".encode()).hexdigest()
        self.nonce: str | None = None
        self.nc = 1

    def challenged(self, challenge: Mapping[str, Any]) -> None:
        """Take a challenge's nonce (and nc); ValueError for an algorithm we don't speak."""
        if str(challenge.get("algorithm", ALGORITHM)).upper() != ALGORITHM:
            raise ValueError(f"unsupported digest algorithm {str(challenge.get('algorithm'))[:20]!r}")
        if str(challenge.get("realm")) != self.realm:
            raise ValueError(f"challenge realm {str(challenge.get('realm'))[:64]!r} is not {self.realm!r}")
        self.nonce = str(challenge["nonce"])
        try:
            self.nc = int(challenge.get("nc", 1))  # some devices send nc as a string
        except (TypeError, ValueError):
            self.nc = 1

    def next(self, cnonce: str | None = None) -> dict[str, Any] | None:
        """The auth object for the next frame (None before the first challenge); nc rises each time."""
        if self.nonce is None:
            return None
        cnonce = cnonce or base64.b64encode(secrets.token_bytes(12)).decode()
        response = hashlib.sha256(f"{self._ha1}:{self.nonce}:{self.nc}:{cnonce}:auth:{WS_HA2}".encode()).hexdigest()
        auth = {"realm": self.realm, "username": USER, "nonce": self.nonce, "nc": self.nc, "cnonce": cnonce,
                "response": response, "algorithm": ALGORITHM}
        self.nc += 1
        return auth


# -- status → exposes -------------------------------------------------------------------------------

def flatten(status: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`{"switch:0": {"output": true, "aenergy": {"total": 1.5}}}` → `{"switch:0/output": true,
    "switch:0/aenergy/total": 1.5}`: a NotifyStatus names only what changed, down to nested fields,
    so each leaf is its own key. A component of ours that isn't an object is a problem."""
    flat: dict[str, Any] = {}
    problems: list[str] = []
    for comp, body in status.items():
        if comp.partition(":")[0] not in COMPONENT_KINDS:
            continue
        if not isinstance(body, dict):
            problems.append(f"dropped {comp[:20]}: not an object ({str(body)[:40]!r})")
            continue
        for field, value in body.items():
            if isinstance(value, dict):
                for sub, leaf in value.items():
                    flat[f"{comp}/{field}/{sub}"] = leaf
            else:
                flat[f"{comp}/{field}"] = value
    return flat, problems


def components(status: Mapping[str, Any]) -> list[str]:
    """The controllable components in a full status, in a stable order: `switch:0`, `cover:0`…"""
    found = []
    for key, body in status.items():
        kind, _, cid = key.partition(":")
        if kind in COMPONENT_KINDS and cid.isdigit() and isinstance(body, dict):
            found.append((COMPONENT_KINDS.index(kind), int(cid), key))
    return [key for _, _, key in sorted(found)]


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("not a boolean")
    return value


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("not a number")
    return value


def _wires(comp: str, body: Mapping[str, Any]) -> list[tuple[str, Wire]]:
    """(plain expose name, wire) for one component, from the fields its status has."""
    kind = comp.partition(":")[0]
    rw = Access.STATE | Access.SET
    out: list[tuple[str, Expose, str, Any]] = []  # name, expose, status field, to_device
    if kind in ("switch", "light"):
        out.append(("on", Binary(name="on", access=rw), "output", _bool))
    if kind == "light":
        out.append(("brightness", Numeric(name="brightness", access=rw, min=0, max=100, unit="%", integer=True),
                    "brightness", round))
    if kind == "cover":
        out += [("position", Numeric(name="position", access=rw, min=0, max=100, unit="%", integer=True),
                 "current_pos", round),
                ("state", Enum(name="state", values=COVER_STATES), "state", str),
                ("action", Action(name="action", values=tuple(COVER_ACTIONS)), "action", str)]
    if "apower" in body:
        out += [("power", Numeric(name="power", unit="W"), "apower", _num),
                ("energy", Numeric(name="energy", unit="Wh", min=0), "aenergy/total", _num)]
    if "voltage" in body:
        out.append(("voltage", Numeric(name="voltage", unit="V", category="diagnostic"), "voltage", _num))
    if "current" in body:
        out.append(("current", Numeric(name="current", unit="A", category="diagnostic"), "current", _num))
    if isinstance(body.get("temperature"), dict):
        out.append(("temperature", Numeric(name="temperature", unit="°C", category="diagnostic"),
                    "temperature/tC", _num))
    wires = []
    for name, expose, field, to_device in out:
        from_device = _num if isinstance(expose, Numeric) else _bool if isinstance(expose, Binary) else str
        wires.append((name, Wire(expose, f"{comp}/{field}", to_device, from_device)))
    return wires


def wiring_for(status: Mapping[str, Any]) -> Wiring:
    """The device's exposes from a full status. Names are plain (`on`, `power`) unless two
    components would share one; then each is qualified by its component, `switch_0_on`, as the
    Homie driver qualifies colliding properties by node."""
    per_comp = [(comp, _wires(comp, status[comp])) for comp in components(status)]
    counts: dict[str, int] = {}
    for _, wires in per_comp:
        for name, _ in wires:
            counts[name] = counts.get(name, 0) + 1
    out = []
    for comp, wires in per_comp:
        for name, wire in wires:
            if counts[name] > 1:
                qualified = f"{comp.replace(':', '_')}_{name}"
                wire = Wire(_renamed(wire.expose, qualified), wire.key, wire.to_device, wire.from_device)
            out.append(wire)
    return Wiring(out)


def _renamed(expose: Expose, name: str) -> Expose:
    return replace(expose, name=name)


# -- commands -------------------------------------------------------------------------------------

# (kind, status field) → (method, parameter); the cover's action picks its own method
_SETTERS = {
    ("switch", "output"): ("Switch.Set", "on"),
    ("light", "output"): ("Light.Set", "on"),
    ("light", "brightness"): ("Light.Set", "brightness"),
    ("cover", "current_pos"): ("Cover.GoToPosition", "pos"),
}


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    params: dict[str, Any]
    fields: dict[str, str]  # parameter → the wire key it came from (to name the field of an error)


def calls_for(encoded: Mapping[str, Any]) -> list[Call]:
    """{wire key: device value} (Wiring.encode's output) → the RPC calls, one per component and
    method: `{"light:0/output": True, "light:0/brightness": 40}` is one `Light.Set`."""
    calls: dict[tuple[str, str], Call] = {}
    for key, value in encoded.items():
        comp, _, field = key.partition("/")
        kind, _, cid = comp.partition(":")
        if kind == "cover" and field == "action":
            method, param = COVER_ACTIONS[value], None
        else:
            method, param = _SETTERS[(kind, field)]
        call = calls.setdefault((comp, method), Call(method, {"id": int(cid)}, {}))
        if param is not None:
            call.params[param] = value
            call.fields[param] = key
        else:
            call.fields["id"] = key
    return list(calls.values())


def blamed_key(call: Call, err: RpcError) -> str:
    """The wire key an RPC error is about: the argument the device names, else the call's first."""
    arg = err.argument()
    if arg is not None and arg in call.fields:
        return call.fields[arg]
    return next(iter(call.fields.values()))


def unchanged(call: Call, result: Any, wiring: Wiring) -> dict[str, Any]:
    """Expose values a call's answer shows were already so: `Switch.Set` answers `was_on`."""
    if call.method == "Switch.Set" and isinstance(result, dict) and result.get("was_on") is call.params["on"]:
        return {expose_of(wiring, call.fields["on"]): call.params["on"]}
    return {}


def expose_of(wiring: Wiring, key: str) -> str:
    for wire in wiring.wires:
        if wire.key == key:
            return wire.expose.name
    return key


def pretty_model(info: Mapping[str, Any], fallback: str = "") -> str:
    """`Plus1PM (SNSW-001P16EU)` from GetDeviceInfo."""
    app, model = str(info.get("app") or fallback)[:40], str(info.get("model") or "")[:40]
    return f"{app} ({model})" if app and model else app or model
