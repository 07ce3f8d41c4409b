"""Who answers at a PJLink address: what the hub checks before it follows a projector that moved.

A Class 2 search reply (`%2ACKN=<mac>`) or link-up notice (`%2LKUP=<mac>`) is one unsigned UDP
datagram: any host on the LAN can send one with any MAC (PJLink v2.00 "Search protocol" and
"Status Notification Protocol" carry no authentication). PJLink has no TCP query for the MAC
(the Class 2 table has SNUM, SVER, INF1/2 and CLSS, but no MAC), so the identity the hub can
check over TCP is the class, the serial number, the manufacturer and product name, and whether
the unit demands our password and accepts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.driver import DeviceUnreachable

from . import pjlink_codec as pj
from .pjlink_client import PJLinkClient


@dataclass(frozen=True)
class Identity:
    """What a projector says about itself over TCP."""

    pj_class: int
    serial: str = ""
    manufacturer: str = ""
    model: str = ""
    auth_required: bool = False


def mismatch(known: Identity, seen: Identity) -> str | None:
    """Why `seen` is not the projector `known` describes, or None when it is (pure)."""
    if seen.pj_class < 2:
        return "it is not a Class 2 projector (search and LKUP are Class 2 only)"
    if known.auth_required and not seen.auth_required:
        return "it does not ask for the projector's password"
    if known.serial and seen.serial != known.serial:
        return "its serial number (SNUM) differs"
    for what, a, b in (("manufacturer (INF1)", known.manufacturer, seen.manufacturer),
                       ("product name (INF2)", known.model, seen.model)):
        if a and a != b:
            return f"its {what} differs"
    return None


async def probe(client: PJLinkClient) -> Identity:
    """Ask CLSS, SNUM, INF1 and INF2; raises DeviceUnreachable or AuthenticationFailed like request()."""

    async def ask(command: str, pj_class: int = 1) -> str:
        try:
            return (await client.request(command, pj_class=pj_class)).strip()
        except pj.CommandRejected:
            return ""  # ERR1-4: the unit doesn't say; compared as unknown

    clss = await ask("CLSS")
    pj_class = 2 if clss.startswith("2") else 1
    return Identity(
        pj_class=pj_class,
        serial=await ask("SNUM", 2) if pj_class >= 2 else "",
        manufacturer=await ask("INF1"),
        model=await ask("INF2"),
        auth_required=bool(client.auth_required),
    )


async def move_refusal(known: Identity, old: PJLinkClient, new: PJLinkClient) -> str | None:
    """Why not to follow a projector from `old`'s address to `new`'s; None: follow.

    The old address is asked first: while the real projector still answers there, the claim is
    false, and the new host never gets a session (nor a response to a password challenge).
    """
    try:
        if mismatch(known, await probe(old)) is None:
            return f"the projector still answers at {old.host}:{old.port}"
    except (DeviceUnreachable, pj.AuthenticationFailed):
        pass  # gone from there (or someone else is there now): check the new address
    try:
        return mismatch(known, await probe(new))
    except DeviceUnreachable:
        return "it does not answer PJLink over TCP"
    except pj.AuthenticationFailed:
        return "it does not accept the projector's password"
