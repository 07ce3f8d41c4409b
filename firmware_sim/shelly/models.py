"""The simulated Shelly models: which identity and which components each one has.

Model numbers and apps as aioshelly's `const.DEVICES` knows them (so `firmware_supported` holds):
Plus 1PM `SNSW-001P16EU` (relay with metering), Plus 2PM `SNSW-002P16EU` in its cover profile,
and Plus Wall Dimmer `SNDM-0013US` (one `light` with brightness, no metering).
"""

from __future__ import annotations

from collections.abc import Callable

from .components import Component, Cover, Input, Light, Switch
from .device import Identity, ShellyDevice


def _plus1pm(mac: str) -> tuple[Identity, list[Component]]:
    return (Identity("shellyplus1pm", mac, "SNSW-001P16EU", "Plus1PM"),
            [Input(0), Switch(0, load_w=60.0)])


def _plus2pm_cover(mac: str) -> tuple[Identity, list[Component]]:
    return (Identity("shellyplus2pm", mac, "SNSW-002P16EU", "Plus2PM", profile="cover"),
            [Input(0), Input(1), Cover(0, maxtime=20.0, position=0.0)])


def _dimmer(mac: str) -> tuple[Identity, list[Component]]:
    return (Identity("shellywalldimmer", mac, "SNDM-0013US", "PlusWallDimmer"), [Light(0)])


MODELS: dict[str, tuple[Callable[[str], tuple[Identity, list[Component]]], str]] = {
    "plus1pm": (_plus1pm, "A8032AB1F001"),
    "plus2pm-cover": (_plus2pm_cover, "A8032AB1F002"),
    "dimmer": (_dimmer, "A8032AB1F003"),
}


def normalise_mac(text: str) -> str:
    """`a8:03:2a:b1:f0:01` or `a8032ab1f001` -> `A8032AB1F001`; ValueError if not 12 hex digits."""
    mac = text.replace(":", "").replace("-", "").upper()
    if len(mac) != 12 or any(ch not in "0123456789ABCDEF" for ch in mac):
        raise ValueError(f"not a MAC address: {text!r}")
    return mac


def build(model: str, *, mac: str | None = None, password: str | None = None,
          name: str | None = None, booted_at: float | None = None, ip: str = "127.0.0.1") -> ShellyDevice:
    """A fresh device of `model` (a key of MODELS)."""
    try:
        factory, default_mac = MODELS[model]
    except KeyError:
        raise ValueError(f"unknown Shelly model {model!r}; choose from {', '.join(MODELS)}") from None
    identity, components = factory(normalise_mac(mac) if mac else default_mac)
    return ShellyDevice(identity, components, name=name, password=password, booted_at=booted_at, ip=ip)
