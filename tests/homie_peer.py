"""A hand-driven Homie 5 device for tests: the test decides every byte it sends."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiomqtt
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

LIGHT = {
    "homie": "5.0", "version": 1, "name": "Test lamp", "type": "light",
    "nodes": {"light": {"name": "Light", "properties": {
        "on": {"datatype": "boolean", "settable": True},
        "brightness": {"datatype": "integer", "format": "0:100", "unit": "%", "settable": True},
        "color": {"datatype": "color", "format": "rgb", "settable": True},
        "power": {"datatype": "float", "format": "0:100", "unit": "W"},
    }}},
}


class HomiePeer:
    """Publishes what the test tells it; echoes valid /set commands like a well-behaved device."""

    def __init__(self, broker_port: int, device_id: str = "test-lamp", description: Any = LIGHT,
                 echo: bool = True) -> None:
        self.broker_port = broker_port
        self.id = device_id
        self.base = f"homie/5/{device_id}"
        self.description = description
        self.echo = echo
        self.client: aiomqtt.Client | None = None
        self.commands: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self, values: dict[str, str] | None = None) -> None:
        self.client = aiomqtt.Client("127.0.0.1", self.broker_port, identifier=self.id, keepalive=5,
                                     will=aiomqtt.Will(f"{self.base}/$state", "lost", qos=1, retain=True),
                                     socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        await self.client.__aenter__()
        await self.publish("$state", "init")
        desc = self.description
        await self.publish("$description", desc if isinstance(desc, (bytes, str)) else json.dumps(desc))
        for suffix, value in (values or {"light/on": "false", "light/brightness": "50",
                                         "light/color": "255,255,255", "light/power": "0.0"}).items():
            await self.publish(suffix, value)
        await self.publish("$state", "ready")
        await self.client.subscribe(f"{self.base}/+/+/set", qos=1)
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def publish(self, suffix: str, payload: str | bytes, retain: bool = True) -> None:
        assert self.client is not None
        await self.client.publish(f"{self.base}/{suffix}", payload, qos=1, retain=retain)

    async def _listen(self) -> None:
        assert self.client is not None
        async for msg in self.client.messages:
            suffix = msg.topic.value[len(self.base) + 1:-len("/set")]
            payload = msg.payload.decode() if isinstance(msg.payload, bytes) else str(msg.payload)
            await self.commands.put((suffix, payload))
            if self.echo:
                await self.publish(suffix, payload)

    async def stop(self, clean: bool = True) -> None:
        if self._task:
            self._task.cancel()
        if self.client is not None:
            if clean:
                await self.publish("$state", "disconnected")
            await self.client.__aexit__(None, None, None)
            self.client = None


async def advertise(aiozc: AsyncZeroconf, device_id: str, room: str = "Test room",
                    txt: dict[str, str] | None = None, port: int = 1883) -> AsyncServiceInfo:
    """Announce a `_homie._tcp` service on loopback, as the simulators do."""
    properties = txt if txt is not None else {
        "txtvers": "1", "id": device_id, "topic": f"homie/5/{device_id}", "room": room}
    info = AsyncServiceInfo(
        "_homie._tcp.local.", f"{device_id}._homie._tcp.local.", port=port, properties=properties,
        addresses=[socket.inet_aton("127.0.0.1")], server=f"{device_id}.local.")
    await aiozc.async_register_service(info)
    return info


def loopback_zeroconf() -> AsyncZeroconf:
    return AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
