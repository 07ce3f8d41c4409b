"""A Shelly Gen2 device as a pure object: identity, components, and the RPC method table.

`ShellyDevice.call(method, params, now)` runs one RPC method (raising `RpcError`), and
`delta(before, after)` gives the partial status a `NotifyStatus` carries. The `Shelly.*`,
`Sys.*`, `WiFi.*`, `Cloud.*` and `Mqtt.*` shapes follow shelly-api-docs gen2
ComponentsAndServices; the keys aioshelly reads at connect (GetDeviceInfo: id, mac, model, gen,
fw_id, ver, app, auth_en, auth_domain; GetConfig: sys.device.name; GetStatus: sys) are all present.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .auth import DigestGuard, USER
from .components import INVALID_ARGUMENT, NOT_FOUND, Component, RpcError

NO_HANDLER = 404  # what devices answer for an unknown method ("No handler for <method>")
UNAUTHORIZED = 401


@dataclass(frozen=True)
class Identity:
    """What a device says about itself in `/shelly` and `Shelly.GetDeviceInfo`."""

    id_prefix: str  # e.g. "shellyplus1pm"
    mac: str  # 12 upper-case hex digits
    model: str  # e.g. "SNSW-001P16EU"
    app: str  # e.g. "Plus1PM"
    fw_id: str = "20241011-114455/1.4.4-g6d2a586"
    ver: str = "1.4.4"
    gen: int = 2
    profile: str | None = None

    @property
    def device_id(self) -> str:
        return f"{self.id_prefix}-{self.mac.lower()}"


class ShellyDevice:
    """State and RPC dispatch; every call takes `now` (simulated epoch seconds)."""

    def __init__(self, identity: Identity, components: list[Component], *, name: str | None = None,
                 password: str | None = None, booted_at: float | None = None,
                 ip: str = "127.0.0.1") -> None:
        self.identity = identity
        self.components = {c.key: c for c in components}
        self.name = name
        self.ip = ip
        self.booted_at = booted_at if booted_at is not None else time.time()
        self.cfg_rev = 1
        self.guard = DigestGuard(realm=identity.device_id)
        self.guard.set_password(password)
        self.events: list[dict[str, Any]] = []  # for NotifyEvent; the channel drains it

    def _config_changed(self, component: str, cid: int | None, now: float) -> None:
        """Bump `cfg_rev` and queue the `config_changed` event devices send after a SetConfig."""
        self.cfg_rev += 1
        event: dict[str, Any] = {"component": component, "event": "config_changed", "restart_required": False,
                                 "ts": round(now, 2), "cfg_rev": self.cfg_rev}
        if cid is not None:
            event["id"] = cid
        self.events = self.events[-31:] + [event]  # bounded: nobody listening must not grow it

    def take_events(self) -> list[dict[str, Any]]:
        events, self.events = self.events, []
        return events

    # -- what the device reports ---------------------------------------------------------

    def device_info(self) -> dict[str, Any]:
        """`GET /shelly` and `Shelly.GetDeviceInfo` (never behind auth)."""
        i = self.identity
        info: dict[str, Any] = {"name": self.name, "id": i.device_id, "mac": i.mac, "slot": 0,
                                "model": i.model, "gen": i.gen, "fw_id": i.fw_id, "ver": i.ver,
                                "app": i.app, "auth_en": self.guard.enabled,
                                "auth_domain": i.device_id if self.guard.enabled else None}
        if i.profile:
            info["profile"] = i.profile
        return info

    def status(self, now: float) -> dict[str, Any]:
        """`Shelly.GetStatus`: one object per component, plus the system services."""
        out: dict[str, Any] = {}
        for key, comp in self.components.items():
            out[key] = comp.status(now)
        out.update(self._services_status(now))
        return out

    def config(self) -> dict[str, Any]:
        """`Shelly.GetConfig`."""
        i = self.identity
        device = {"name": self.name, "mac": i.mac, "fw_id": i.fw_id, "discoverable": True,
                  "eco_mode": False}
        if i.profile:
            device["profile"] = i.profile
        out: dict[str, Any] = {key: comp.config() for key, comp in self.components.items()}
        out.update({
            "sys": {"device": device, "location": {"tz": "Europe/Berlin", "lat": None, "lon": None},
                    "debug": {"level": 2, "mqtt": {"enable": False}, "websocket": {"enable": False},
                              "udp": {"addr": None}},
                    "ui_data": {}, "rpc_udp": {"dst_addr": None, "listen_port": None},
                    "sntp": {"server": "time.google.com"}, "cfg_rev": self.cfg_rev},
            "wifi": {"ap": {"ssid": i.device_id, "is_open": True, "enable": False},
                     "sta": {"ssid": "house", "is_open": False, "enable": True, "ipv4mode": "dhcp"},
                     "sta1": {"ssid": None, "is_open": True, "enable": False, "ipv4mode": "dhcp"},
                     "roam": {"rssi_thr": -80, "interval": 60}},
            "cloud": {"enable": False, "server": "iot.shelly.cloud:6012/jrpc"},
            "mqtt": {"enable": False, "server": None, "client_id": i.device_id, "user": None,
                     "topic_prefix": i.device_id, "rpc_ntf": True, "status_ntf": False},
            "ble": {"enable": False, "rpc": {"enable": True}, "observer": {"enable": False}},
        })
        return out

    def _services_status(self, now: float) -> dict[str, Any]:
        local = time.localtime(now)
        return {
            "sys": {"mac": self.identity.mac, "restart_required": False,
                    "time": time.strftime("%H:%M", local), "unixtime": int(now),
                    "uptime": int(max(0.0, now - self.booted_at)), "ram_size": 246_680,
                    "ram_free": 151_312, "fs_size": 458_752, "fs_free": 143_360,
                    "cfg_rev": self.cfg_rev, "kvs_rev": 0, "schedule_rev": 0, "webhook_rev": 0,
                    "available_updates": {}, "reset_reason": 3},
            "wifi": {"sta_ip": self.ip, "status": "got ip", "ssid": "house", "rssi": -58},
            "cloud": {"connected": False},
            "mqtt": {"connected": False},
            "ble": {},
        }

    # -- time ----------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        for comp in self.components.values():
            comp.advance(now)

    def next_deadline(self, now: float) -> float | None:
        deadlines = [d for c in self.components.values() if (d := c.next_deadline(now)) is not None]
        return min(deadlines) if deadlines else None

    # -- RPC -----------------------------------------------------------------------------

    def methods(self) -> list[str]:
        """Every method name the device answers (`Shelly.ListMethods`)."""
        names = sorted(self._device_methods())
        kinds = {c.kind.capitalize() for c in self.components.values()}
        for comp in self.components.values():
            for attr in dir(comp):
                if attr.startswith("rpc_"):
                    names.append(f"{comp.kind.capitalize()}.{attr[4:]}")
        return sorted(set(names) | {f"{k}.GetStatus" for k in kinds})

    def _device_methods(self) -> dict[str, Callable[[dict[str, Any], float], Any]]:
        return {
            "Shelly.GetDeviceInfo": lambda p, now: self.device_info(),
            "Shelly.GetStatus": lambda p, now: self.status(now),
            "Shelly.GetConfig": lambda p, now: self.config(),
            "Shelly.ListMethods": lambda p, now: {"methods": self.methods()},
            "Shelly.GetComponents": self._get_components,
            "Shelly.SetAuth": self._set_auth,
            "Sys.GetStatus": lambda p, now: self._services_status(now)["sys"],
            "Sys.GetConfig": lambda p, now: self.config()["sys"],
            "Sys.SetConfig": self._sys_set_config,
            "WiFi.GetStatus": lambda p, now: self._services_status(now)["wifi"],
            "WiFi.GetConfig": lambda p, now: self.config()["wifi"],
            "Cloud.GetStatus": lambda p, now: self._services_status(now)["cloud"],
            "Cloud.GetConfig": lambda p, now: self.config()["cloud"],
            "Mqtt.GetStatus": lambda p, now: self._services_status(now)["mqtt"],
            "Mqtt.GetConfig": lambda p, now: self.config()["mqtt"],
        }

    def call(self, method: str, params: Any, now: float) -> Any:
        """Run one method; raises RpcError (404 for an unknown method, as devices answer)."""
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise RpcError(INVALID_ARGUMENT, "Invalid 'params': expected object")
        handler = self._device_methods().get(method)
        if handler is not None:
            return handler(params, now)
        kind, _, verb = method.partition(".")
        comps = [c for c in self.components.values() if c.kind.capitalize() == kind]
        if not comps or not verb or not hasattr(comps[0], f"rpc_{verb}"):
            raise RpcError(NO_HANDLER, f"No handler for {method}")
        if "id" not in params:
            raise RpcError(INVALID_ARGUMENT, "Missing required 'id'")
        cid = params["id"]
        if isinstance(cid, bool) or not isinstance(cid, (int, float)):
            raise RpcError(INVALID_ARGUMENT, "Invalid argument 'id': expected number")
        comp = next((c for c in comps if c.id == cid), None)
        if comp is None:
            raise RpcError(NOT_FOUND, f"Bad id={cid}")  # docs, CommonErrors -105
        result = getattr(comp, f"rpc_{verb}")(params, now)
        if verb == "SetConfig":
            self._config_changed(comp.key, comp.id, now)
        return result

    def _sys_set_config(self, params: dict[str, Any], now: float) -> Any:
        config = params.get("config")
        if not isinstance(config, dict):
            raise RpcError(INVALID_ARGUMENT, "Missing required 'config'")
        device = config.get("device", {})
        if not isinstance(device, dict):
            raise RpcError(INVALID_ARGUMENT, "Invalid argument 'device'")
        if "name" in device:
            name = device["name"]
            if name is not None and (not isinstance(name, str) or len(name) > 64):
                raise RpcError(INVALID_ARGUMENT, "Invalid argument 'name'")
            self.name = name
        self._config_changed("sys", None, now)
        return {"restart_required": False}

    def _get_components(self, params: dict[str, Any], now: float) -> Any:
        # The simulated devices have no dynamic (virtual) components.
        offset = params.get("offset", 0)
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise RpcError(INVALID_ARGUMENT, "Invalid argument 'offset'")
        if params.get("dynamic_only"):
            items: list[dict[str, Any]] = []
        else:
            st, cfg = self.status(now), self.config()
            items = [{"key": k, "status": st.get(k, {}), "config": cfg.get(k, {})} for k in self.components]
        return {"components": items[offset:offset + 20], "cfg_rev": self.cfg_rev, "offset": offset,
                "total": len(items)}

    def _set_auth(self, params: dict[str, Any], now: float) -> Any:
        # Docs (Shelly.SetAuth): user must be "admin", realm the device id, ha1 a hex SHA-256 or null.
        if params.get("user") != USER:
            raise RpcError(INVALID_ARGUMENT, "Invalid argument 'user'")
        if params.get("realm") != self.identity.device_id:
            raise RpcError(INVALID_ARGUMENT, "Invalid argument 'realm'")
        ha1 = params.get("ha1")
        if ha1 is not None and (not isinstance(ha1, str) or len(ha1) != 64
                                or any(ch not in "0123456789abcdef" for ch in ha1.lower())):
            raise RpcError(INVALID_ARGUMENT, "Invalid argument 'ha1'")
        self.guard.ha1 = ha1.lower() if ha1 else None
        self._config_changed("sys", None, now)
        return None


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The fields of `after` that differ from `before`, nested (what NotifyStatus carries)."""
    out: dict[str, Any] = {}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            sub = delta(old, value)
            if sub:
                out[key] = sub
        elif key not in before or old != value:
            out[key] = value
    return out
