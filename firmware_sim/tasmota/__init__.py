"""Simulated Tasmota devices on MQTT (a two-relay plug with energy metering, a dimmer)."""

from .device import TasmotaSim
from .model import MODELS, TasmotaConfig, TasmotaDevice

__all__ = ["MODELS", "TasmotaConfig", "TasmotaDevice", "TasmotaSim"]
