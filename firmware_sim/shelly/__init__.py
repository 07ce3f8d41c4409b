"""Simulated Shelly Gen2 devices (Plus 1PM, Plus 2PM as a cover, Plus Wall Dimmer)."""

from .device import Identity, ShellyDevice
from .models import MODELS, build
from .server import ShellySim

__all__ = ["MODELS", "Identity", "ShellyDevice", "ShellySim", "build"]
