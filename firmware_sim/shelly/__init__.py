"""Simulated Shelly Gen2 devices: Plus 1PM (metered relay), Plus 2PM as a cover, Plus Wall Dimmer.

Run one with `firmware-sim shelly --model plus1pm|plus2pm-cover|dimmer [--port N] [--password PW]
[--id MAC-or-id] [--speed X]`; it serves `GET /shelly`, HTTP RPC at `/rpc` and `/rpc/<Method>`, the
`/rpc` WebSocket with notifications, and advertises `_shelly._tcp` and `_http._tcp` on 127.0.0.1.
"""

from .device import Identity, ShellyDevice
from .models import MODELS, build
from .server import ShellySim

__all__ = ["MODELS", "Identity", "ShellyDevice", "ShellySim", "build"]
