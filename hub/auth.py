"""Who is asking: logins, sessions and tokens for the running hub, with caches that revoke at once.

The rules live in hub/accounts.py (SQLite, on the store's thread); argon2 runs on worker
threads, two at a time, so a burst of logins can neither block the loop nor the database.
Credentials found in the database are cached for `recheck` seconds: revoking through the API
drops the cache entry at once; a change made by the CLI to a running hub's database is seen
within `recheck` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from . import accounts as acc
from .accounts import AccountError, Role, Scope, User
from .store import Store
from .throttle import Throttle

log = logging.getLogger(__name__)

SESSION_TTL = 30 * 24 * 3600.0  # idle time after which a session ends; each use extends it
TOUCH_EVERY = 60.0  # write a session's last_seen at most this often
CACHE_MAX = 10_000


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins: try again in {retry_after} s")
        self.retry_after = retry_after


class BadLogin(Exception):
    """Wrong name or password (never says which)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user, through a session or a token, with a scope."""

    user: User
    scope: Scope
    via: Literal["session", "token"]
    credential: str  # the session's or the token's public id

    @property
    def can_write(self) -> bool:
        return self.scope == "write"

    @property
    def is_owner(self) -> bool:
        return self.user.role == "owner"


@dataclass
class _Cached:
    principal: Principal
    checked: float  # monotonic time of the last database check
    touched: float  # wall time of the last last_seen write (sessions)


class Auth:
    """Accounts, sessions and tokens for the web edge; `start()` migrates, `stop()` forgets."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, session_ttl: float = SESSION_TTL,
                 recheck: float = 2.0, throttle: Throttle | None = None) -> None:
        self.store = store
        self._clock = clock
        self._monotonic = monotonic
        self.session_ttl = session_ttl
        self.recheck = recheck
        self.throttle = throttle or Throttle(clock=monotonic)
        self._hashing = asyncio.Semaphore(2)
        self._sessions: dict[str, _Cached] = {}  # secret hash -> cached
        self._tokens: dict[str, _Cached] = {}

    async def start(self) -> None:
        await self.store.call(acc.migrate)
        pruned = await self.store.call(lambda db: acc.prune_sessions(db, self._clock()))
        if pruned:
            log.info("removed %d expired sessions", pruned)

    async def stop(self) -> None:
        self._sessions.clear()
        self._tokens.clear()

    async def _hash(self, fn: Callable[..., Any], *args: Any) -> Any:
        async with self._hashing:
            return await asyncio.to_thread(fn, *args)

    # -- first run and logins -------------------------------------------------------

    async def owner_exists(self) -> bool:
        return await self.store.call(acc.owner_exists)

    async def onboard(self, name: str, password: str, *, user_agent: str, address: str) -> tuple[User, str]:
        """Create the owner (409 once one exists) and sign them in."""
        if await self.owner_exists():
            raise AccountError("the hub already has an owner: log in instead", "name", 409)
        hashed = await self._hash(acc.hash_password, password)
        user = await self.store.call(lambda db: acc.insert_user(db, name, hashed, "owner", only_if_no_owner=True))
        log.info("owner %s created", user.name)
        return user, await self._new_session(user, user_agent, address)

    async def login(self, name: str, password: str, *, user_agent: str, address: str) -> tuple[User, str]:
        keys = ("user:" + name.casefold()[:64], "addr:" + address)
        wait = self.throttle.retry_after(*keys)
        if wait:
            raise Throttled(wait)
        user, stored = await self.store.call(lambda db: acc.find_user(db, name))
        if not await self._hash(acc.verify_password, stored, password):
            self.throttle.failed(*keys)
            log.warning("failed login for %r from %s", name[:64], address)
            raise BadLogin("wrong name or password")
        assert user is not None and stored is not None
        self.throttle.succeeded(keys[0])
        if await self._hash(acc.needs_rehash, stored):
            hashed = await self._hash(acc.hash_password, password)
            await self.store.call(lambda db: acc.set_password_hash(db, user.id, hashed))
        return user, await self._new_session(user, user_agent, address)

    async def _new_session(self, user: User, user_agent: str, address: str) -> str:
        secret = acc.new_secret()
        now = self._clock()
        await self.store.call(lambda db: acc.insert_session(db, user.id, secret, now=now, ttl=self.session_ttl,
                                                            user_agent=user_agent, address=address))
        return secret

    # -- checking credentials ---------------------------------------------------------

    async def session(self, secret: str) -> Principal | None:
        if not secret or len(secret) > 200:
            return None
        key = acc.secret_hash(secret)
        now, mono = self._clock(), self._monotonic()
        hit = self._sessions.get(key)
        if hit is None or mono - hit.checked > self.recheck:
            found = await self.store.call(lambda db: acc.lookup_session(db, secret, now))
            if found is None:
                self._sessions.pop(key, None)
                return None
            session_id, user, _ = found
            hit = _Cached(Principal(user, "write", "session", session_id), mono, hit.touched if hit else 0.0)
            self._remember(self._sessions, key, hit)
        if now - hit.touched > TOUCH_EVERY:  # rolling expiry, written at most once a minute
            hit.touched = now
            sid = hit.principal.credential
            await self.store.call(lambda db: acc.touch_session(db, sid, now, self.session_ttl))
        return hit.principal

    async def token(self, token: str) -> Principal | None:
        if not token.startswith(acc.TOKEN_PREFIX) or len(token) > 200:
            return None
        key = acc.secret_hash(token)
        now, mono = self._clock(), self._monotonic()
        hit = self._tokens.get(key)
        if hit is None or mono - hit.checked > self.recheck:
            found = await self.store.call(lambda db: acc.lookup_token(db, token))
            if found is None:
                self._tokens.pop(key, None)
                return None
            token_id, user, scope = found
            hit = _Cached(Principal(user, scope, "token", token_id), mono, hit.touched if hit else 0.0)
            self._remember(self._tokens, key, hit)
        if now - hit.touched > TOUCH_EVERY:
            hit.touched = now
            tid = hit.principal.credential
            await self.store.call(lambda db: acc.mark_token_used(db, tid, now))
        return hit.principal

    @staticmethod
    def _remember(cache: dict[str, _Cached], key: str, entry: _Cached) -> None:
        if len(cache) >= CACHE_MAX and key not in cache:
            cache.clear()  # rare; everything is re-read from the database
        cache[key] = entry

    def _forget(self, *, user_id: int | None = None, credentials: set[str] | None = None) -> None:
        for cache in (self._sessions, self._tokens):
            for key in [k for k, c in cache.items()
                        if (user_id is not None and c.principal.user.id == user_id)
                        or (credentials is not None and c.principal.credential in credentials)]:
                del cache[key]

    # -- sessions ------------------------------------------------------------------

    async def logout(self, who: Principal) -> None:
        if who.via == "session":
            await self.revoke_session(who, who.credential)

    async def sessions_of(self, who: Principal) -> list[dict[str, Any]]:
        rows = await self.store.call(lambda db: acc.list_sessions(db, who.user.id, self._clock()))
        for r in rows:
            r["current"] = who.via == "session" and r["id"] == who.credential
            r["device"] = describe_agent(r.pop("user_agent"))
        return rows

    async def revoke_session(self, who: Principal, session_id: str) -> bool:
        gone = await self.store.call(lambda db: acc.delete_sessions(db, who.user.id, only=session_id))
        self._forget(credentials=set(gone))
        return bool(gone)

    # -- passwords and users ---------------------------------------------------------

    async def change_password(self, who: Principal, current: str, new: str) -> None:
        """A user's own change: needs the current password; ends their other sessions."""
        _, stored = await self.store.call(lambda db: acc.find_user(db, who.user.name))
        if not await self._hash(acc.verify_password, stored, current):
            raise AccountError("current: wrong password", "current", 403)
        await self.set_password(who.user.id, new, keep=who.credential if who.via == "session" else None)

    async def set_password(self, user_id: int, password: str, *, keep: str | None = None) -> None:
        hashed = await self._hash(acc.hash_password, password)

        def write(db) -> list[str]:
            acc.set_password_hash(db, user_id, hashed)
            return acc.delete_sessions(db, user_id, keep=keep)

        gone = await self.store.call(write)
        self._forget(credentials=set(gone))

    async def users(self) -> list[User]:
        return await self.store.call(acc.list_users)

    async def user_named(self, name: str) -> User:
        user = (await self.store.call(lambda db: acc.find_user(db, name)))[0]
        if user is None:
            raise AccountError(f"no user {name!r}", "name", 404)
        return user

    async def add_user(self, name: str, password: str, role: Role) -> User:
        hashed = await self._hash(acc.hash_password, password)
        return await self.store.call(lambda db: acc.insert_user(db, name, hashed, role))

    async def set_role(self, user_id: int, role: Role) -> User:
        user = await self.store.call(lambda db: acc.set_role(db, user_id, role))
        self._forget(user_id=user_id)  # cached principals carry the old role
        return user

    async def delete_user(self, user_id: int) -> None:
        await self.store.call(lambda db: acc.delete_user(db, user_id))
        self._forget(user_id=user_id)

    # -- tokens --------------------------------------------------------------------

    async def create_token(self, who: Principal, name: str, scope: Scope) -> tuple[str, dict[str, Any]]:
        if scope == "write" and not who.can_write:
            raise AccountError("scope: a read-only token can only make read-only tokens", "scope", 403)
        token, row = await self.store.call(lambda db: acc.insert_token(db, who.user.id, name, scope))
        return token, {**row, "user": who.user.name, "last_used": None}

    async def tokens(self, who: Principal) -> list[dict[str, Any]]:
        return await self.store.call(lambda db: acc.list_tokens(db, None if who.is_owner else who.user.id))

    async def revoke_token(self, who: Principal, token_id: str) -> bool:
        owner_any = None if who.is_owner else who.user.id
        gone = await self.store.call(lambda db: acc.delete_token(db, token_id, owner_any))
        if gone:
            self._forget(credentials={token_id})
        return gone


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Safari/", "Safari"), ("curl/", "curl"), ("aiohttp", "aiohttp"), ("python", "Python"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def describe_agent(agent: str) -> str:
    """'Firefox on Linux' from a User-Agent header, for the list of signed-in devices."""
    browser = next((name for mark, name in _BROWSERS if mark in agent), "")
    system = next((name for mark, name in _SYSTEMS if mark in agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "unknown device"
