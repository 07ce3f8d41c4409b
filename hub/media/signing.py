"""Signed, expiring media URLs: `/media/file/<id>?exp=<unix time>&sig=<hex HMAC-SHA256>`.

The projector has no session, so the URL is its only key. Parsing is strict: the id and the
expiry are ASCII digits only (Python's `str.isdigit()` and `int()` also take "²", "٣", "+7",
" 7" and "7_0"), the signature is exactly 64 hex digits; anything else is simply not a valid
signature (403), never an exception (500).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from .auth import write_secret

_ID = re.compile(r"[0-9]{1,18}")  # fits SQLite's INTEGER
_EXP = re.compile(r"[0-9]{1,12}")  # unix seconds until the year 33658
_SIG = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Signed:
    """A syntactically valid signed request, not yet checked against the key or the clock."""

    media_id: int
    exp: int
    sig: str  # lowercase hex


def parse_id(raw: str | None) -> int | None:
    """A media id from a URL: ASCII digits only, else None."""
    if raw is None or not _ID.fullmatch(raw):
        return None
    return int(raw)


def parse(media_id: str | None, exp: str | None, sig: str | None) -> Signed | None:
    """The parts of a signed URL, or None when any of them is malformed."""
    mid = parse_id(media_id)
    if mid is None or exp is None or sig is None or not _EXP.fullmatch(exp) or not _SIG.fullmatch(sig):
        return None
    return Signed(mid, int(exp), sig.lower())


def signature(key: bytes, media_id: int, exp: int) -> str:
    """HMAC-SHA256 over "<id>:<exp>", lowercase hex."""
    return hmac.new(key, f"{media_id}:{exp}".encode(), hashlib.sha256).hexdigest()


def valid(key: bytes, signed: Signed, now: float) -> bool:
    """Is the signature right and the URL not yet expired at `now`?"""
    return signed.exp >= now and hmac.compare_digest(signature(key, signed.media_id, signed.exp), signed.sig)


class UrlSigner:
    """Signs and checks media URLs with a key kept in `<data>/secrets/media-url.key` (0600)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "secrets" / "media-url.key"
        self._key: bytes | None = None

    def key(self) -> bytes:
        """The key, created on first use. Blocking (file I/O)."""
        if self._key is None:
            try:
                self._key = bytes.fromhex(self.path.read_text().strip())
            except (FileNotFoundError, ValueError):
                write_secret(self.path, secrets.token_hex(32).encode())
                self._key = bytes.fromhex(self.path.read_text().strip())
        return self._key

    def url(self, media_id: int, ttl: float, now: float) -> str:
        """The path and query of a URL valid for `ttl` seconds from `now`."""
        exp = int(now + ttl)
        return f"/media/file/{media_id}?exp={exp}&sig={signature(self.key(), media_id, exp)}"

    def check(self, media_id: str | None, exp: str | None, sig: str | None, now: float) -> int | None:
        """The media id a request's URL parts authorise at `now`, or None (bad, forged or expired)."""
        signed = parse(media_id, exp, sig)
        if signed is None or not valid(self.key(), signed, now):
            return None
        return signed.media_id
