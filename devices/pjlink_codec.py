"""PJLink Class 1 and 2 as pure code: bytes in, typed events out (no sockets, no clock).

Facts from the PJLink specification (JBMIA, Class 1 v1.04 and Class 2 v2.00): TCP 4352, lines
end with CR, at most 136 bytes; the projector greets with `PJLINK 0` (no auth) or
`PJLINK 1 <random>` (MD5 auth: md5(random + password) in hex goes in front of the first
command); `PJLINK ERRA` means a bad password; replies are `%<class><CMD>=<param>`, where the
param may be ERR1..ERR4.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

MAX_LINE: Final = 136  # spec "Format": a packet is at most 136 bytes including the CR
MAX_PARAM: Final = 128  # spec "Format": parameter field
CR: Final = b"\r"


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class Greeting:
    """`PJLINK 0` (no auth) or `PJLINK 1 <random>` (MD5 auth), spec "Authentication procedure"."""

    random: str | None = None

    @property
    def auth_required(self) -> bool:
        return self.random is not None


@dataclass(frozen=True)
class AuthRejected:
    """`PJLINK ERRA`: the digest was wrong; the projector closes the connection."""


@dataclass(frozen=True)
class Reply:
    """`%<class><CMD>=<param>`: a response (or, on TCP, an unsolicited `%2LKUP=`)."""

    pj_class: int
    command: str
    param: str

    @property
    def error(self) -> CommandRejected | None:
        """The typed error when the param is ERR1..ERR4, else None."""
        cls = ERRORS.get(self.param.upper())
        return cls(self.command, self.param.upper()) if cls else None


@dataclass(frozen=True)
class ProtocolError:
    """Input that is not PJLink; the bytes are kept (truncated) for the log."""

    reason: str
    data: bytes = b""


@dataclass(frozen=True)
class Closed:
    """The peer closed the connection (receive_data(b""))."""


Event = Greeting | AuthRejected | Reply | ProtocolError | Closed


# ---------------------------------------------------------------- errors


class PJLinkError(Exception):
    """Base of every PJLink-level failure (the projector answered, but not with success)."""


class CommandRejected(PJLinkError):
    """The projector answered ERRn to a command."""

    code = ""

    def __init__(self, command: str, code: str = "") -> None:
        super().__init__(f"{command}: {code or self.code} ({self.__doc__})")
        self.command = command


class UndefinedCommand(CommandRejected):
    """ERR1: undefined command"""

    code = "ERR1"


class OutOfParameter(CommandRejected):
    """ERR2: out of parameter"""

    code = "ERR2"


class UnavailableTime(CommandRejected):
    """ERR3: unavailable time (standby, warm-up, cool-down or busy)"""

    code = "ERR3"


class ProjectorFailure(CommandRejected):
    """ERR4: projector/display failure"""

    code = "ERR4"


class AuthenticationFailed(PJLinkError):
    """PJLINK ERRA, or the projector wants a password and none was given."""


class BadReply(PJLinkError):
    """The projector sent something that is not a valid answer."""


ERRORS: Final[dict[str, type[CommandRejected]]] = {
    c.code: c for c in (UndefinedCommand, OutOfParameter, UnavailableTime, ProjectorFailure)
}


# ---------------------------------------------------------------- framing


def auth_digest(random: str, password: str) -> str:
    """Spec "Authentication procedure": md5(random + password) as 32 lowercase hex characters."""
    return hashlib.md5((random + password).encode("utf-8"), usedforsecurity=False).hexdigest()


class LineSplitter:
    """CR-terminated lines of at most MAX_LINE bytes; over-long lines become ProtocolError."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> Iterator[bytes | ProtocolError]:
        self._buf += data
        while True:
            idx = self._buf.find(CR)
            if idx < 0:
                if len(self._buf) >= MAX_LINE:
                    if not self._discarding:
                        yield ProtocolError("line longer than 136 bytes", bytes(self._buf[:64]))
                    self._discarding = True
                    self._buf.clear()
                return
            line = bytes(self._buf[:idx])
            del self._buf[: idx + 1]
            if self._discarding:
                self._discarding = False
                continue
            if len(line) + 1 > MAX_LINE:
                yield ProtocolError("line longer than 136 bytes", line[:64])
                continue
            yield line

    @property
    def pending(self) -> bytes:
        return bytes(self._buf)


_REPLY = re.compile(rb"^%([12])([A-Za-z0-9]{4})=(.*)$", re.S)
_RANDOM = re.compile(r"[0-9A-Za-z]{1,32}")


def parse_line(line: bytes) -> Event:
    """One line (without its CR) → an event; anything unknown is a ProtocolError."""
    line = line.lstrip(b"\n")  # tolerate CRLF-sending firmware: the LF starts the next line
    if line[:7].upper() == b"PJLINK ":
        rest = line[7:]
        if rest.upper() == b"ERRA":
            return AuthRejected()
        if rest == b"0":
            return Greeting(None)
        if rest[:2] == b"1 ":
            random = rest[2:].decode("ascii", "replace")
            if _RANDOM.fullmatch(random):
                return Greeting(random)
        return ProtocolError("bad greeting", line[:64])
    m = _REPLY.match(line)
    if not m:
        return ProtocolError("not a PJLink reply", line[:64])
    param = m.group(3).decode("utf-8", "replace")  # params may be UTF-8 (NAME, INNM)
    if len(m.group(3)) > MAX_PARAM:
        return ProtocolError("parameter longer than 128 bytes", line[:64])
    return Reply(int(m.group(1)), m.group(2).decode("ascii").upper(), param)


_COMMAND = re.compile(r"[A-Z0-9]{4}")


def encode_command(pj_class: int, command: str, param: str) -> bytes:
    """`%<class><CMD> <param>\\r` (spec "Command line"); ValueError for anything the spec does not allow."""
    if pj_class not in (1, 2):
        raise ValueError(f"PJLink class must be 1 or 2, not {pj_class!r}")
    command = command.upper()
    if not _COMMAND.fullmatch(command):
        raise ValueError(f"PJLink command must be 4 letters/digits, not {command!r}")
    raw = param.encode("utf-8")
    if b"\r" in raw or b"\n" in raw or len(raw) > MAX_PARAM:
        raise ValueError("PJLink parameter must be one line of at most 128 bytes")
    return b"%" + str(pj_class).encode() + command.encode() + b" " + raw + CR


class ClientConnection:
    """Client side of one PJLink TCP session: feed bytes, read events, encode commands."""

    def __init__(self, password: str | None = None) -> None:
        self.password = password
        self.greeting: Greeting | None = None
        self.closed = False
        self._lines = LineSplitter()
        self._events: list[Event] = []
        self._digest_sent = False

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the socket; b"" means the peer closed the connection."""
        if self.closed:
            return
        if not data:
            self.closed = True
            if self._lines.pending:
                self._events.append(ProtocolError("unterminated line at close", self._lines.pending[:64]))
            self._events.append(Closed())
            return
        for item in self._lines.feed(data):
            self._events.append(item if isinstance(item, ProtocolError) else self._event(item))

    def _event(self, line: bytes) -> Event:
        ev = parse_line(line)
        if isinstance(ev, Greeting):
            if self.greeting is not None:
                return ProtocolError("second greeting", line[:64])
            self.greeting = ev
        elif isinstance(ev, Reply) and self.greeting is None:
            return ProtocolError("reply before greeting", line[:64])
        return ev

    def next_event(self) -> Event | _NeedData:
        return self._events.pop(0) if self._events else NEED_DATA

    def send(self, pj_class: int, command: str, param: str) -> bytes:
        """Bytes for one command; the first after `PJLINK 1` carries the MD5 digest ("Authentication procedure")."""
        if self.greeting is None:
            raise RuntimeError("wait for the projector's greeting before sending")
        line = encode_command(pj_class, command, param)
        if self.greeting.random is not None and not self._digest_sent:
            if self.password is None:
                raise AuthenticationFailed("the projector requires a password and none is configured")
            self._digest_sent = True
            return auth_digest(self.greeting.random, self.password).encode("ascii") + line
        return line


# ---------------------------------------------------------------- values (spec "Command Descriptions")

POWER_STATES: Final = {"0": "off", "1": "on", "2": "cooling", "3": "warming"}
ERROR_PARTS: Final = ("fan", "lamp", "temperature", "cover", "filter", "other")  # ERST order
ERROR_LEVELS: Final = {"0": "ok", "1": "warning", "2": "error"}
INPUT_TYPES: Final = {"1": "RGB", "2": "VIDEO", "3": "DIGITAL", "4": "STORAGE", "5": "NETWORK", "6": "INTERNAL"}
_INPUT_CLASS1 = re.compile(r"[1-5][1-9]")
_INPUT_CLASS2 = re.compile(r"[1-6][1-9A-Z]")
_DIGITS = re.compile(r"[0-9]{1,7}")  # ASCII only: str.isdigit() accepts "²"


def input_class(code: str) -> int:
    """1 when a Class 1 projector can select this code, 2 when it needs Class 2 (`6x`, `xA`..`xZ`)."""
    if _INPUT_CLASS1.fullmatch(code):
        return 1
    if _INPUT_CLASS2.fullmatch(code):
        return 2
    raise ValueError(f"not a PJLink input code: {code!r}")


def input_label(code: str) -> str:
    """A readable name for an input without INNM, e.g. `31` → `DIGITAL 1`."""
    return f"{INPUT_TYPES.get(code[:1], 'INPUT')} {code[1:]}"


def _bad(what: str, param: str) -> BadReply:
    return BadReply(f"bad {what}: {param[:40]!r}")


def decode_power(param: str) -> str:
    try:
        return POWER_STATES[param]
    except KeyError:
        raise _bad("POWR", param) from None


def decode_input(param: str) -> str:
    code = param.upper()
    try:
        input_class(code)
    except ValueError:
        raise _bad("INPT", param) from None
    return code


def decode_inputs(param: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(decode_input(p) for p in param.split()))


def decode_mute(param: str) -> tuple[bool, bool]:
    """AVMT → (video muted, audio muted); `11` video, `21` audio, `31` both, `x0` none."""
    table = {"11": (True, False), "21": (False, True), "31": (True, True),
             "10": (False, False), "20": (False, False), "30": (False, False)}
    try:
        return table[param]
    except KeyError:
        raise _bad("AVMT", param) from None


def decode_errors(param: str) -> dict[str, str]:
    """ERST: six digits (fan, lamp, temperature, cover, filter, other), each 0/1/2."""
    if len(param) != 6 or any(c not in ERROR_LEVELS for c in param):
        raise _bad("ERST", param)
    return {part: ERROR_LEVELS[c] for part, c in zip(ERROR_PARTS, param, strict=True)}


def decode_lamps(param: str) -> tuple[tuple[int, bool], ...]:
    """LAMP: `<hours> <on>` pairs for up to 8 lamps."""
    parts = param.split()
    if not parts or len(parts) % 2 or len(parts) > 16:
        raise _bad("LAMP", param)
    hours, flags = parts[0::2], parts[1::2]
    if not all(_DIGITS.fullmatch(h) for h in hours) or not all(f in ("0", "1") for f in flags):
        raise _bad("LAMP", param)
    return tuple((int(h), f == "1") for h, f in zip(hours, flags, strict=True))


def decode_hours(param: str) -> int:
    """FILT: usage hours as a decimal number."""
    if not _DIGITS.fullmatch(param):
        raise _bad("hours", param)
    return int(param)


def decode_flag(param: str) -> bool:
    """FREZ and other 0/1 answers."""
    if param not in ("0", "1"):
        raise _bad("flag", param)
    return param == "1"


def normalize_mac(mac: str) -> str:
    """`00:26:AB:00:00:01`, `0026ab000001` or `00-26-ab-…` → `0026ab000001`; ValueError otherwise."""
    hexes = re.sub(r"[:\-.]", "", mac.strip()).lower()
    if not re.fullmatch(r"[0-9a-f]{12}", hexes):
        raise ValueError(f"not a MAC address: {mac[:40]!r}")
    return hexes
