"""PJLink Class 1 and 2 server protocol, sans-I/O: bytes in, replies out.

`PJLinkServerConnection` is one TCP session (greeting, MD5 authentication, CR-terminated
command lines); `search_reply` and `notification` are the UDP side (PJLink 2.00 search and
status notification). Section numbers (§4.x) follow the Class 2 specification's command list.
Nothing here reads a clock or a socket: the asyncio runtime in `runtime.py` does the I/O.

Choices where real units differ, documented so the hub's driver can rely on them:
- A line longer than 136 bytes (the PJLink maximum packet, CR included; 32 more for the digest on
  the authentication line) is discarded up to its CR and answered `ERR2` when its header
  names a command, like units that range-check the parameter; the session stays open.
- A line that is not a command (no `%`, binary garbage) is dropped without an answer.
- A command without the space separator is answered `ERR2`; an unknown one `ERR1`; a Class 2
  command sent as `%1` gets `ERR1`, as on a Class 1 unit.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import string
from collections.abc import Callable
from dataclasses import dataclass

from .model import (
    BadParameter,
    Failure,
    ProjectorModel,
    Unavailable,
)

log = logging.getLogger(__name__)

MAX_LINE = 136  # bytes, CR included (PJLink packet maximum)
DIGEST_LEN = 32  # md5 hex digest prepended to the first command (PJLink §5, authentication)
MAX_DATAGRAM = 25  # UDP search answers and notifications (PJLink 2.00)
ERRA = b"PJLINK ERRA\r"

CLASS1_COMMANDS = frozenset({"POWR", "INPT", "AVMT", "ERST", "LAMP", "INST", "NAME", "INF1",
                             "INF2", "INFO", "CLSS"})
CLASS2_ONLY_COMMANDS = frozenset({"SNUM", "SVER", "INNM", "IRES", "RRES", "FILT", "RLMP",
                                  "RFIL", "SVOL", "MVOL", "FREZ"})

CLASS1_TYPES = "12345"  # RGB, VIDEO, DIGITAL, STORAGE, NETWORK (§4.3)
CLASS2_TYPES = "123456"  # + INTERNAL (2.00 §4.3)
CLASS1_INDEXES = "123456789"
CLASS2_INDEXES = "123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HEX = frozenset(string.hexdigits.encode())


@dataclass(frozen=True)
class Send:
    """Bytes to write to the controller."""

    data: bytes


@dataclass(frozen=True)
class Close:
    """Close the connection after writing what came before."""

    reason: str


Output = Send | Close


class SessionState(enum.Enum):
    AWAIT_AUTH = "await-auth"
    READY = "ready"
    CLOSED = "closed"


class _Unknown(Exception):
    """ERR1: undefined command."""


def digest_for(token: str, password: str) -> str:
    """The authentication digest: md5(random + password), lowercase hex (PJLink §5)."""
    return hashlib.md5((token + password).encode("utf-8")).hexdigest()


def valid_input_code(code: str, pj_class: str) -> bool:
    """An INPT parameter the given class can express (§4.3; 2.00 widens both digits)."""
    if len(code) != 2:
        return False
    types, indexes = (CLASS1_TYPES, CLASS1_INDEXES) if pj_class == "1" else (CLASS2_TYPES,
                                                                             CLASS2_INDEXES)
    return code[0] in types and code[1].upper() in indexes


class PJLinkServerConnection:
    """One PJLink TCP session against a `ProjectorModel`: feed bytes, get `Output`s."""

    def __init__(self, model: ProjectorModel, password: str | None, token: str) -> None:
        self.model = model
        self._password = password or None
        self._token = token
        self.state = SessionState.AWAIT_AUTH if self._password else SessionState.READY
        self._buf = bytearray()
        self._overflow: bytes | None = None  # head of an over-long line being discarded
        self._garbage_logged = False

    def greeting(self) -> bytes:
        """`PJLINK 0` or `PJLINK 1 <random>` (PJLink §5.1)."""
        return f"PJLINK 1 {self._token}\r".encode() if self._password else b"PJLINK 0\r"

    def receive_data(self, data: bytes) -> list[Output]:
        """Feed bytes as they arrived; returns what to send, and maybe a Close."""
        out: list[Output] = []
        if self.state is SessionState.CLOSED:
            return out
        self._buf += data
        while self.state is not SessionState.CLOSED:
            limit = MAX_LINE + (DIGEST_LEN if self.state is SessionState.AWAIT_AUTH else 0)
            cr = self._buf.find(b"\r")
            if cr < 0:
                if len(self._buf) >= limit:
                    # Keep only the head (enough for digest and header); drop the rest.
                    if self._overflow is None:
                        self._overflow = bytes(self._buf[:limit])
                    self._buf.clear()
                break
            line = bytes(self._buf[:cr])
            del self._buf[:cr + 1]
            if self._overflow is not None:
                line, self._overflow = self._overflow, None
                out += self._line(line, oversized=True)
            else:
                out += self._line(line, oversized=len(line) + 1 > limit)
        return out

    def _line(self, line: bytes, oversized: bool) -> list[Output]:
        line = line.strip(b"\n")  # tolerate CRLF senders: the LF lands at the next line's start
        if not line:
            return []
        if self.state is SessionState.AWAIT_AUTH:
            assert self._password is not None
            expected = digest_for(self._token, self._password).encode()
            if not hmac.compare_digest(line[:DIGEST_LEN].lower(), expected):
                log.info("projector: bad or missing PJLink digest, closing")
                self.state = SessionState.CLOSED
                return [Send(ERRA), Close("authentication failed")]
            self.state = SessionState.READY
            line = line[DIGEST_LEN:]
            if not line:
                return []
        elif (line[:1] != b"%" and len(line) > DIGEST_LEN and line[DIGEST_LEN:DIGEST_LEN + 1] == b"%"
              and all(b in _HEX for b in line[:DIGEST_LEN])):
            line = line[DIGEST_LEN:]  # a digest sent to a unit without a password: ignore it
        reply = self._command(line, oversized)
        return [Send(reply)] if reply is not None else []

    def _garbage(self, line: bytes) -> None:
        if not self._garbage_logged:
            self._garbage_logged = True
            log.warning("projector: dropping a line that is not a PJLink command: %r", line[:40])
        else:
            log.debug("projector: dropping non-command %r", line[:40])

    def _command(self, line: bytes, oversized: bool) -> bytes | None:
        """One command line → its response line (§2.2), or None when there is none to give."""
        if len(line) < 6 or line[0] != ord("%") or not (0x30 <= line[1] <= 0x39):
            self._garbage(line)
            return None
        raw_body = line[2:6]
        if not raw_body.isascii() or not raw_body.decode().isalnum():
            self._garbage(line)
            return None
        pj_class, body = chr(line[1]), raw_body.decode().upper()
        result = self._dispatch(pj_class, body, line, oversized)
        return f"%{pj_class}{body}={result}\r".encode("utf-8")

    def _dispatch(self, pj_class: str, body: str, line: bytes, oversized: bool) -> str:
        handler = _HANDLERS.get(body)
        if (pj_class not in "12" or handler is None
                or (pj_class == "1" and body in CLASS2_ONLY_COMMANDS)):
            return "ERR1"
        if oversized or len(line) < 7 or line[6] != ord(" "):
            return "ERR2"
        try:
            param = line[7:].decode("utf-8")
        except UnicodeDecodeError:
            return "ERR2"
        try:
            return handler(self.model, pj_class, param)
        except _Unknown:
            return "ERR1"
        except BadParameter:
            return "ERR2"
        except Unavailable:
            return "ERR3"
        except Failure:
            return "ERR4"


# -- command handlers: (model, class, parameter) → response parameter ----------------------

def _query(param: str) -> None:
    if param != "?":
        raise BadParameter(param)


def _power(m: ProjectorModel, c: str, p: str) -> str:
    """POWR (§4.1, §4.2)."""
    if p == "?":
        return str(int(m.power))
    if p == "1":
        m.power_on()
    elif p == "0":
        m.power_off()
    else:
        raise BadParameter(p)
    return "OK"


def _input(m: ProjectorModel, c: str, p: str) -> str:
    """INPT (§4.3, §4.4)."""
    if p == "?":
        return m.input
    if not valid_input_code(p, c):
        raise BadParameter(p)
    m.select_input(p)
    return "OK"


_MUTE_SET = {"10": (False, None), "11": (True, None), "20": (None, False), "21": (None, True),
             "30": (False, False), "31": (True, True)}


def _mute(m: ProjectorModel, c: str, p: str) -> str:
    """AVMT (§4.5, §4.6): 11 video, 21 audio, 31 both, 30 none."""
    if p == "?":
        video, audio = m.mute
        return {(True, True): "31", (True, False): "11", (False, True): "21"}.get(
            (video, audio), "30")
    if p not in _MUTE_SET:
        raise BadParameter(p)
    video, audio = _MUTE_SET[p]
    m.set_mute(video=video, audio=audio)
    return "OK"


def _errors(m: ProjectorModel, c: str, p: str) -> str:
    """ERST (§4.7)."""
    _query(p)
    return m.error_digits()


def _lamp(m: ProjectorModel, c: str, p: str) -> str:
    """LAMP (§4.8): hours and lit flag."""
    _query(p)
    return f"{m.lamp_hours} {1 if m.lit else 0}"


def _inputs(m: ProjectorModel, c: str, p: str) -> str:
    """INST (§4.9): a Class 1 answer lists only the codes Class 1 can express."""
    _query(p)
    return " ".join(t.code for t in m.input_terminals() if valid_input_code(t.code, c))


def _text(get: Callable[[ProjectorModel], str]) -> Callable[[ProjectorModel, str, str], str]:
    def handler(m: ProjectorModel, c: str, p: str) -> str:
        _query(p)
        return get(m)
    return handler


def _input_name(m: ProjectorModel, c: str, p: str) -> str:
    """INNM ?<code> (2.00 §4.17)."""
    if not p.startswith("?") or not valid_input_code(p[1:], "2"):
        raise BadParameter(p)
    return m.input_name(p[1:])


def _resolution(m: ProjectorModel, c: str, p: str) -> str:
    """IRES (2.00 §4.18): `-` no signal."""
    _query(p)
    return m.resolution()


def _freeze(m: ProjectorModel, c: str, p: str) -> str:
    """FREZ (2.00 §4.25, §4.26)."""
    if p == "?":
        return "1" if m.frozen else "0"
    if p not in ("0", "1"):
        raise BadParameter(p)
    m.set_freeze(p == "1")
    return "OK"


def _volume(which: str) -> Callable[[ProjectorModel, str, str], str]:
    """SVOL/MVOL (2.00 §4.23, §4.24): 1 up, 0 down, OK even at the ends."""
    def handler(m: ProjectorModel, c: str, p: str) -> str:
        if p not in ("0", "1"):
            raise BadParameter(p)
        m.step_volume(which, up=p == "1")
        return "OK"
    return handler


_HANDLERS: dict[str, Callable[[ProjectorModel, str, str], str]] = {
    "POWR": _power,
    "INPT": _input,
    "AVMT": _mute,
    "ERST": _errors,
    "LAMP": _lamp,
    "INST": _inputs,
    "NAME": _text(lambda m: m.config.name),
    "INF1": _text(lambda m: m.config.manufacturer),
    "INF2": _text(lambda m: m.config.product),
    "INFO": _text(lambda m: m.config.info),
    "CLSS": _text(lambda m: "2"),
    "SNUM": _text(lambda m: m.config.serial),
    "SVER": _text(lambda m: m.config.software_version),
    "INNM": _input_name,
    "IRES": _resolution,
    "RRES": _text(lambda m: m.config.native_resolution),
    "FILT": _text(lambda m: str(m.filter_hours)),
    "RLMP": _text(lambda m: " ".join(m.config.lamp_models)),
    "RFIL": _text(lambda m: " ".join(m.config.filter_models)),
    "SVOL": _volume("speaker"),
    "MVOL": _volume("microphone"),
    "FREZ": _freeze,
}
assert set(_HANDLERS) == CLASS1_COMMANDS | CLASS2_ONLY_COMMANDS


# -- UDP (PJLink 2.00 search and status notification procedures) -----------------------------------

def search_reply(datagram: bytes, mac: str) -> bytes | None:
    """`%2SRCH` → `%2ACKN=<mac>`; anything else → None (dropped)."""
    if datagram.rstrip(b"\r\n").upper() != b"%2SRCH":
        return None
    return notification("ACKN", mac)


def notification(body: str, value: str) -> bytes:
    """One status notification datagram, e.g. `%2POWR=1\\r` (PJLink 2.00 status notification); at most 25 bytes."""
    data = f"%2{body}={value}\r".encode("ascii")
    if len(data) > MAX_DATAGRAM:
        raise ValueError(f"notification {data!r} exceeds {MAX_DATAGRAM} bytes")
    return data


__all__ = ["Close", "MAX_LINE", "Output", "PJLinkServerConnection", "Send",
           "SessionState", "digest_for", "notification", "search_reply", "valid_input_code"]
