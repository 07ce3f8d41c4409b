"""OAuth 2.0 device authorization grant (RFC 8628) and bearer tokens, as a pure state machine.

Every method takes `now` (seconds, monotonic) so tests advance time instead of sleeping.
Refresh tokens are NOT rotated: a refresh returns a new access token and the same refresh
token, so a hub that crashes between receiving and saving a token pair is never locked out
(cloudsync research §2; FAPI2 discourages rotation).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 §6.1: base-20, no vowels
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: interval grows by 5 s on slow_down


@dataclass(frozen=True)
class DeviceGrant:
    """One pending device authorization (RFC 8628 §3.2)."""

    device_code: str
    user_code: str  # canonical form, 8 letters without the dash
    client_id: str
    scope: str
    expires_at: float
    interval: int
    status: str = "pending"  # pending | approved | denied | issued
    last_poll: float | None = None


@dataclass(frozen=True)
class TokenGrant:
    """A successful token response (RFC 6749 §5.1)."""

    access_token: str
    refresh_token: str
    expires_in: int
    scope: str

    def as_json(self) -> dict[str, object]:
        return {"access_token": self.access_token, "token_type": "Bearer",
                "expires_in": self.expires_in, "refresh_token": self.refresh_token,
                "scope": self.scope}


@dataclass(frozen=True)
class TokenError:
    """An error response of the token endpoint (RFC 6749 §5.2, RFC 8628 §3.5)."""

    error: str
    description: str = ""


def format_user_code(code: str) -> str:
    """WDJBMJHT → WDJB-MJHT, the form shown to people."""
    return f"{code[:4]}-{code[4:]}"


def normalize_user_code(typed: str) -> str:
    """RFC 8628 §6.1: ignore case, dashes, spaces and other punctuation."""
    return "".join(ch for ch in typed.upper() if ch.isalnum())


class DeviceAuthority:
    """Device codes, user codes, access and refresh tokens of the simulated operator."""

    def __init__(self, *, token_ttl: int = 3600, code_ttl: int = 900, interval: int = 5,
                 auto_approve: bool = False) -> None:
        self.token_ttl = token_ttl
        self.code_ttl = code_ttl
        self.interval = interval
        self.auto_approve = auto_approve
        self._grants: dict[str, DeviceGrant] = {}  # device_code -> grant
        self._by_user_code: dict[str, str] = {}  # user_code -> device_code
        self._access: dict[str, tuple[str, float]] = {}  # token -> (client_id, expires_at)
        self._refresh: dict[str, tuple[str, str]] = {}  # token -> (client_id, scope)

    # -- RFC 8628 §3.1/3.2 -------------------------------------------------------------
    def start(self, client_id: str, scope: str, now: float) -> DeviceGrant:
        """A new device code and user code for `client_id`."""
        self._expire(now)
        user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
        while user_code in self._by_user_code:
            user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
        grant = DeviceGrant(device_code=secrets.token_urlsafe(32), user_code=user_code,
                            client_id=client_id, scope=scope, expires_at=now + self.code_ttl,
                            interval=self.interval,
                            status="approved" if self.auto_approve else "pending")
        self._grants[grant.device_code] = grant
        self._by_user_code[user_code] = grant.device_code
        return grant

    def lookup_user_code(self, typed: str, now: float) -> DeviceGrant | None:
        """The pending grant a person typed the code of, if it exists and has not expired."""
        device_code = self._by_user_code.get(normalize_user_code(typed))
        grant = self._grants.get(device_code or "")
        if grant is None or grant.expires_at <= now or grant.status != "pending":
            return None
        return grant

    def decide(self, typed: str, approve: bool, now: float) -> DeviceGrant | None:
        """The phone's answer for a user code; None when the code is unknown or expired."""
        grant = self.lookup_user_code(typed, now)
        if grant is None:
            return None
        grant = replace(grant, status="approved" if approve else "denied")
        self._grants[grant.device_code] = grant
        return grant

    # -- RFC 8628 §3.4/3.5 -------------------------------------------------------------
    def poll(self, device_code: str, client_id: str, now: float) -> TokenGrant | TokenError:
        """One poll of the token endpoint with the device_code grant type."""
        grant = self._grants.get(device_code)
        if grant is None or grant.client_id != client_id or grant.status == "issued":
            return TokenError("invalid_grant", "unknown or already used device_code")
        if grant.expires_at <= now:
            return TokenError("expired_token", "the device_code has expired")
        too_fast = grant.last_poll is not None and now - grant.last_poll < grant.interval
        grant = replace(grant, last_poll=now)
        if grant.status == "denied":
            self._grants[device_code] = grant
            return TokenError("access_denied", "the user denied the request")
        if grant.status == "pending":
            if too_fast:
                grant = replace(grant, interval=grant.interval + SLOW_DOWN_STEP)
                self._grants[device_code] = grant
                return TokenError("slow_down", f"poll at most every {grant.interval} s")
            self._grants[device_code] = grant
            return TokenError("authorization_pending", "waiting for the user")
        self._grants[device_code] = replace(grant, status="issued")
        self._by_user_code.pop(grant.user_code, None)
        return self._issue(grant.client_id, grant.scope, now, refresh=None)

    def interval_of(self, device_code: str) -> int | None:
        grant = self._grants.get(device_code)
        return grant.interval if grant else None

    # -- RFC 6749 §6 ---------------------------------------------------------------------
    def refresh(self, refresh_token: str, client_id: str, now: float) -> TokenGrant | TokenError:
        """A new access token for a refresh token; the refresh token itself is not rotated."""
        known = self._refresh.get(refresh_token)
        if known is None or (client_id and known[0] != client_id):
            return TokenError("invalid_grant", "unknown refresh_token")
        return self._issue(known[0], known[1], now, refresh=refresh_token)

    def revoke_refresh(self, refresh_token: str) -> None:
        """Test helper: forget a refresh token (the user unlinked the hub)."""
        self._refresh.pop(refresh_token, None)

    def _issue(self, client_id: str, scope: str, now: float, refresh: str | None) -> TokenGrant:
        access = secrets.token_urlsafe(32)
        self._access[access] = (client_id, now + self.token_ttl)
        if refresh is None:
            refresh = secrets.token_urlsafe(32)
            self._refresh[refresh] = (client_id, scope)
        return TokenGrant(access, refresh, self.token_ttl, scope)

    # -- RFC 6750 ------------------------------------------------------------------------
    def check_access(self, token: str, now: float) -> str | None:
        """None when the bearer token is valid, else why not (for WWW-Authenticate)."""
        known = self._access.get(token)
        if known is None:
            return "unknown access token"
        if known[1] <= now:
            return "the access token expired"
        return None

    def _expire(self, now: float) -> None:
        """Forget grants long past expiry, so memory stays bounded."""
        stale = [c for c, g in self._grants.items() if g.expires_at + self.code_ttl <= now]
        for code in stale:
            grant = self._grants.pop(code)
            self._by_user_code.pop(grant.user_code, None)
        stale_tokens = [t for t, (_, exp) in self._access.items() if exp + self.token_ttl <= now]
        for token in stale_tokens:
            del self._access[token]
