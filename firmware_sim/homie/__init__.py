"""Simulated Homie 5 devices: the household (`firmware-sim house`) and the load fleet
(`firmware-sim fleet`).

`wire` is the pure topic and payload code, `runtime` the asyncio adapter (one MQTT connection
per device), `devices` the household's models, `mdns` the `_homie._tcp` record. The names below
are what other families may build on (the projector's media player is a Homie 5 device).
"""

from .devices import BaseModel, declare
from .mdns import HOMIE_SERVICE, homie_service_info
from .runtime import DeviceConfig, HomieDevice
from .wire import InvalidValue, Node, Property, Update

__all__ = ["HOMIE_SERVICE", "BaseModel", "DeviceConfig", "HomieDevice", "InvalidValue", "Node", "Property",
           "Update", "declare", "homie_service_info"]
