"""The hub's configuration: one pydantic model, from a TOML file and HUB_* environment variables."""

from __future__ import annotations

import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator


M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration that can't start the hub; the message names the source, key and rule."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttConfig(_Section):
    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: SecretStr | None = None
    client_id: str = "hub"
    keepalive: int = Field(30, ge=5, le=3600)
    base_topic: str = Field("hub", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError("expected mqtt://host[:port]")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError("expected mqtt://host[:port] with a port from 0 to 65535") from None
        return v

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 1883


class HttpConfig(_Section):
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    # Names the hub answers to besides its addresses, localhost and <hostname>(.local); a
    # leading dot allows a domain's names (".home.arpa"). Others get 421 (DNS rebinding).
    allowed_hosts: list[str] = Field(default_factory=list)
    # Reverse proxies whose X-Forwarded-For/-Proto are believed (addresses or networks)
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for net in v:
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad one
        return v


class DiscoveryConfig(_Section):
    # "all" browses on every interface (a real install); tests and the demo use ["127.0.0.1"]
    interfaces: Literal["all"] | list[str] = "all"
    advertise_broker: bool = False  # announce the MQTT broker as _mqtt._tcp for devices


class HomeAssistantConfig(_Section):
    discovery: bool = True  # publish Home Assistant MQTT discovery for every device
    prefix: str = Field("homeassistant", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


class HistoryConfig(_Section):
    """Numeric readings kept for the device page's charts."""

    interval: float = Field(10.0, ge=0, le=3600, description="at most one point per property per this many s")
    retention_days: float = Field(7.0, gt=0, le=3650)
    flush_interval: float = Field(1.0, gt=0, le=60, description="points are written in one batch this often")
    prune_interval: float = Field(3600.0, gt=0, description="seconds between deletions of expired points")


class HubConfig(_Section):
    data_dir: Path = Field(default_factory=lambda: default_data_dir())
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    command_timeout: float = Field(5.0, gt=0, le=120, description="seconds to wait for a device to confirm")
    # a device seen for the first time waits in the UI's inbox until named; the demo accepts its own
    inbox: bool = True
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    discovery: DiscoveryConfig = Field(default_factory=DiscoveryConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    homeassistant: HomeAssistantConfig = Field(default_factory=HomeAssistantConfig)
    # per-driver options, e.g. [drivers.pjlink] search_address = "255.255.255.255"
    drivers: dict[str, dict[str, Any]] = Field(default_factory=dict)


SECTIONS = ("mqtt", "http", "discovery", "history", "homeassistant")
# HUB_* variables that are not config keys: read by a driver or by the test tooling.
NOT_CONFIG = frozenset({"HUB_IN_NETNS", "HUB_PJLINK_PASSWORD", "HUB_PY313_VENV", "HUB_HA_VENV"})
# A key named like this holds a secret, wherever it is (free-form [drivers.<name>] tables too).
SECRET_KEY = re.compile(r"pass|secret|token|key|cred|auth|psk|salt", re.IGNORECASE)


def default_data_dir() -> Path:
    if env := os.environ.get("HUB_DATA"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hub"


def _from_env(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """HUB_<KEY> and HUB_<SECTION>_<KEY> (e.g. HUB_MQTT_URL); returns values and their sources."""
    data: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    for name, value in environ.items():
        if not name.startswith("HUB_") or name in NOT_CONFIG:
            continue
        key = name[4:].lower()
        if key == "data":
            key = "data_dir"
        section = next((s for s in SECTIONS if key.startswith(s + "_")), None)
        if section:
            sub = key[len(section) + 1:]
            data.setdefault(section, {})[sub] = value
            sources[(section, sub)] = f"environment variable {name}"
        else:
            data[key] = value
            sources[(key,)] = f"environment variable {name}"
    return data, sources


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


_LISTS = (("discovery", "interfaces"), ("http", "allowed_hosts"), ("http", "trusted_proxies"))


def _lists_from_env(data: dict[str, Any]) -> None:
    """Comma-separated lists in variables, e.g. HUB_HTTP_ALLOWED_HOSTS=hub.home.arpa,hub"""
    for section, key in _LISTS:
        value = data.get(section, {}).get(key)
        if isinstance(value, str) and value != "all":
            data[section][key] = [s.strip() for s in value.split(",") if s.strip()]


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> HubConfig:
    """File, then environment, then command-line overrides; raise ConfigError saying where it broke."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source_of: dict[tuple[str, ...], str] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
    env_data, env_sources = _from_env(environ)
    _lists_from_env(env_data)
    source_of.update(env_sources)
    data = _merge(data, env_data)
    if overrides:
        data = _merge(data, overrides)
        for k, v in overrides.items():
            if isinstance(v, Mapping):
                source_of.update({(k, sub): "command line" for sub in v})
            else:
                source_of[(k,)] = "command line"
    try:
        return HubConfig.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(str(p) for p in err["loc"])
            where = source_of.get(loc) or source_of.get(loc[:2]) or (str(path) if path else "defaults")
            if err["type"] == "extra_forbidden":
                problems.append(f"{where}: {'.'.join(loc)}: unknown key")  # its value is irrelevant
            else:
                problems.append(f"{where}: {'.'.join(loc)}: {err['msg']} ({_shown(loc, err.get('input'))})")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None


def driver_options(name: str, model: type[M], data: Mapping[str, Any] | None) -> M:
    """A driver's [drivers.<name>] table validated by the model it declares; errors read as the
    config's do, and never show a value (a driver's table may hold passwords)."""
    try:
        return model.model_validate(dict(data or {}))
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(("drivers", name, *(str(p) for p in err["loc"])))
            rule = "unknown key" if err["type"] == "extra_forbidden" else f"{err['msg']} (value hidden: it may be a secret)"
            problems.append(f"[drivers.{name}]: {loc}: {rule}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None


def _shown(loc: tuple[str, ...], value: Any) -> str:
    """What an error may say about the bad value: never a secret's, never a whole table."""
    if loc[:1] == ("drivers",) or any(SECRET_KEY.search(part) for part in loc) or _is_secret_field(loc):
        return "value hidden: it may be a secret"
    if isinstance(value, Mapping):
        return "got a table"
    if isinstance(value, list | tuple):
        return "got an array"
    text = repr(value)
    if isinstance(value, str) and "@" in value:
        text = repr(re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", value))  # a URL's password
    return f"got {text[:80]}" + ("..." if len(text) > 80 else "")


def _is_secret_field(loc: tuple[str, ...]) -> bool:
    """True if loc walks into a field declared SecretStr (or optional SecretStr)."""
    model: Any = HubConfig
    for part in loc:
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return False
        model = field.annotation
        if model is SecretStr or SecretStr in typing.get_args(model):
            return True
    return False
