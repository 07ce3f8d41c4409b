"""Simulated Tasmota devices on MQTT: a two-relay plug with an energy meter, and a dimmer.

Run one with `firmware-sim tasmota --model plug2|dimmer [--broker mqtt://host:port] [--topic T]
[--full-topic PATTERN] [--teleperiod S] [--speed X]`; without `--broker` it finds `_mqtt._tcp` by mDNS.
"""

from .device import TasmotaSim
from .model import MODELS, TasmotaConfig, TasmotaDevice

__all__ = ["MODELS", "TasmotaConfig", "TasmotaDevice", "TasmotaSim"]
