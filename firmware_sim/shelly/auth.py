"""Shelly Gen2 digest auth (SHA-256, RFC 7616), for HTTP headers and for JSON-RPC `auth` objects.

Shelly docs, General/Authentication: user is always `admin`, realm is the device id, and the
device keeps only `ha1 = SHA256("admin:<realm>:<password>")` (what `Shelly.SetAuth` takes).
RPC frames on the WebSocket carry the same digest in an `auth` object whose HA2 is the hash of
the fixed string "dummy_method:dummy_uri" (what aioshelly's `AuthData` computes).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

USER = "admin"
ALGORITHM = "SHA-256"
WS_HA2_INPUT = "dummy_method:dummy_uri"


def sha256_hex(text: str) -> str:
    """Lower-case hex SHA-256 of a UTF-8 string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_ha1(realm: str, password: str) -> str:
    """The HA1 a device stores for `admin` (Shelly.SetAuth `ha1`)."""
    return sha256_hex(f"{USER}:{realm}:{password}")


def parse_digest_header(value: str) -> dict[str, str] | None:
    """`Digest k=v, k="v"` -> dict (RFC 7616 §3.4 auth-params); None if not a Digest header."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    out: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,\t":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            i += 1
            chars = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            i += 1
            out[key] = "".join(chars)
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            out[key] = rest[i:end].strip()
            i = end
    return out


@dataclass
class NonceBook:
    """Issues nonces and accepts each (nonce, nc) pair once, with a strictly rising nc."""

    lifetime: float = 300.0
    _issued: dict[str, float] = field(default_factory=dict)
    _last_nc: dict[str, int] = field(default_factory=dict)

    def issue(self, now: float) -> int:
        """A fresh nonce (an integer, as devices send it), valid for `lifetime` seconds."""
        self._expire(now)
        nonce = secrets.randbits(31)
        while str(nonce) in self._issued:
            nonce = secrets.randbits(31)
        self._issued[str(nonce)] = now
        return nonce

    def check(self, nonce: str, nc: int, now: float) -> str:
        """'ok', 'stale' (expired or reused nc) or 'unknown'."""
        self._expire(now)
        if nonce not in self._issued:
            return "unknown"
        if nc <= self._last_nc.get(nonce, 0):
            return "stale"
        self._last_nc[nonce] = nc
        return "ok"

    def _expire(self, now: float) -> None:
        for nonce, born in list(self._issued.items()):
            if now - born > self.lifetime:
                del self._issued[nonce]
                self._last_nc.pop(nonce, None)
        while len(self._issued) > 64:  # bounded: oldest nonces go first
            oldest = min(self._issued, key=self._issued.__getitem__)
            del self._issued[oldest]
            self._last_nc.pop(oldest, None)


@dataclass
class DigestGuard:
    """The device's auth state: its realm, its HA1 (None = auth off) and the nonces it gave out."""

    realm: str
    ha1: str | None = None
    nonces: NonceBook = field(default_factory=NonceBook)

    @property
    def enabled(self) -> bool:
        return self.ha1 is not None

    def set_password(self, password: str | None) -> None:
        self.ha1 = make_ha1(self.realm, password) if password else None

    def challenge_header(self, now: float, stale: bool = False) -> str:
        """The `WWW-Authenticate` value of a 401 (RFC 7616 §3.3)."""
        nonce = self.nonces.issue(now)
        value = f'Digest qop="auth", realm="{self.realm}", nonce="{nonce}", algorithm={ALGORITHM}'
        return value + (", stale=true" if stale else "")

    def challenge_object(self, now: float, stale: bool = False) -> dict[str, Any]:
        """The JSON challenge that goes, serialised, in a 401 error's `message` (WS channel)."""
        out: dict[str, Any] = {"auth_type": "digest", "nonce": self.nonces.issue(now), "nc": 1,
                               "realm": self.realm, "algorithm": ALGORITHM}
        if stale:
            out["stale"] = True
        return out

    def verify_header(self, header: str | None, method: str, uri: str, now: float) -> str:
        """'ok', 'stale' or 'bad' for an HTTP `Authorization` header on request-target `uri`."""
        params = parse_digest_header(header or "")
        if not params or params.get("uri") != uri:  # RFC 7616 §3.4.6: the uri must be this request's
            return "bad"
        try:
            nc = int(params.get("nc", ""), 16)
        except ValueError:
            return "bad"
        ha2 = sha256_hex(f"{method}:{params.get('uri', '')}")
        return self._verify(params, nc, ha2, now)

    def verify_object(self, auth: Any, now: float) -> str:
        """'ok', 'stale' or 'bad' for a JSON-RPC frame's `auth` object."""
        if not isinstance(auth, dict):
            return "bad"
        try:
            nc = int(auth.get("nc"))  # aioshelly notes some devices send nc as a string
        except (TypeError, ValueError):
            return "bad"
        params = {k: str(v) for k, v in auth.items()}
        params.setdefault("qop", "auth")
        return self._verify(params, nc, sha256_hex(WS_HA2_INPUT), now)

    def _verify(self, p: dict[str, str], nc: int, ha2: str, now: float) -> str:
        if self.ha1 is None:
            return "ok"
        if (p.get("username") != USER or p.get("realm") != self.realm
                or p.get("algorithm", ALGORITHM).upper() != ALGORITHM or p.get("qop") != "auth"):
            return "bad"
        nc_text = p.get("nc", "")
        expected = sha256_hex(f"{self.ha1}:{p.get('nonce', '')}:{nc_text}:{p.get('cnonce', '')}:auth:{ha2}")
        if not hmac.compare_digest(expected, p.get("response", "")):
            return "bad"
        state = self.nonces.check(p.get("nonce", ""), nc, now)
        return "ok" if state == "ok" else "stale"
