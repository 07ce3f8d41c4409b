"""The `_homie._tcp` mDNS record of a simulated Homie 5 device (RFC 6763 TXT rules, §6)."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from zeroconf.asyncio import AsyncServiceInfo

from firmware_sim.common.net import instance_name

HOMIE_SERVICE = "_homie._tcp.local."


def homie_txt(device_id: str, room: str, kind: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """TXT keys of the contract; `txtvers` first (RFC 6763 §6.7)."""
    txt = {"txtvers": "1", "id": device_id, "topic": f"homie/5/{device_id}", "room": room, "type": kind}
    txt.update(extra or {})
    return txt


def homie_service_info(name: str, device_id: str, room: str, kind: str, address: str, port: int,
                       extra: Mapping[str, str] | None = None) -> AsyncServiceInfo:
    """The `_homie._tcp` record of one device; each device gets its own host name."""
    return AsyncServiceInfo(
        HOMIE_SERVICE, f"{instance_name(name)}.{HOMIE_SERVICE}",
        addresses=[socket.inet_aton(address)], port=port,
        properties=homie_txt(device_id, room, kind, extra), server=f"{device_id}.local.",
    )
