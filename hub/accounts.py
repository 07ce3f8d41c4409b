"""Household accounts, web sessions and API tokens in hub.db: plain functions on one connection.

Passwords are hashed with argon2id (argon2-cffi, OWASP's parameters); session cookies and
API tokens are 256 random bits, stored only as a SHA-256 (a plain hash is enough for random
secrets; argon2 is for what people choose). The argon2 module is imported on first use, so a
hub that nobody logs into never loads it. The CLI calls these directly; the running hub calls
them on its store's thread (hub/auth.py), hashing on another thread.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlite_utils

from .store import open_database

Role = Literal["owner", "member"]
Scope = Literal["write", "read"]
ROLES: tuple[Role, ...] = ("owner", "member")
TOKEN_PREFIX = "hub_"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 takes any length; a bound keeps a megabyte "password" off the hasher


class AccountError(ValueError):
    """A request the account rules refuse; `field` names what was wrong."""

    def __init__(self, message: str, field: str = "body", status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: Role
    created: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role, "created": self.created}


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


# -- passwords (argon2id) -------------------------------------------------------------

_hasher = None


def _argon2():
    global _hasher
    if _hasher is None:
        from argon2 import PasswordHasher  # lazy: only a login loads it

        # argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane): RFC 9106's 64 MiB would
        # double a small hub's memory for each login in flight. Older hashes are upgraded on login.
        _hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
    return _hasher


def check_password_rule(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"{field}: at least {MIN_PASSWORD} characters", field)
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"{field}: at most {MAX_PASSWORD} characters", field)


def hash_password(password: str) -> str:
    check_password_rule(password)
    return _argon2().hash(password)


_DUMMY: str | None = None


def verify_password(stored: str | None, password: str) -> bool:
    """True when password matches; an unknown user (stored None) costs the same time."""
    global _DUMMY
    from argon2.exceptions import InvalidHashError, VerificationError

    if len(password) > MAX_PASSWORD:
        return False
    unknown = stored is None
    if unknown:
        if _DUMMY is None:
            _DUMMY = _argon2().hash(secrets.token_hex(16))
        stored = _DUMMY
    try:
        return _argon2().verify(stored, password) and not unknown
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _argon2().check_needs_rehash(stored)


# -- schema ---------------------------------------------------------------------------

def migrate(db: sqlite_utils.Database) -> None:
    db.execute("""create table if not exists users (
        id integer primary key autoincrement,
        name text not null unique collate nocase,
        role text not null check (role in ('owner', 'member')),
        password text not null,
        created real not null,
        password_changed real not null)""")
    db.execute("""create table if not exists sessions (
        id text primary key,
        hash text not null unique,
        user_id integer not null references users(id) on delete cascade,
        created real not null,
        last_seen real not null,
        expires real not null,
        user_agent text not null default '',
        address text not null default '')""")
    db.execute("""create table if not exists api_tokens (
        id text primary key,
        hash text not null unique,
        user_id integer not null references users(id) on delete cascade,
        name text not null,
        scope text not null check (scope in ('write', 'read')),
        created real not null,
        last_used real not null default 0)""")
    db.execute("create index if not exists sessions_user on sessions(user_id)")
    db.execute("create index if not exists api_tokens_user on api_tokens(user_id)")


def _user(row: sqlite3.Row | tuple | None) -> User | None:
    return None if row is None else User(row[0], row[1], row[2], row[3])


_USER_COLS = "id, name, role, created"


def owner_exists(db: sqlite_utils.Database) -> bool:
    return db.execute("select 1 from users where role = 'owner' limit 1").fetchone() is not None


def get_user(db: sqlite_utils.Database, user_id: int) -> User | None:
    return _user(db.execute(f"select {_USER_COLS} from users where id = ?", [user_id]).fetchone())


def find_user(db: sqlite_utils.Database, name: str) -> tuple[User | None, str | None]:
    """(user, stored password hash) by name, case-insensitively; (None, None) when unknown."""
    row = db.execute(f"select {_USER_COLS}, password from users where name = ?", [name]).fetchone()
    return (None, None) if row is None else (_user(row), row[4])


def list_users(db: sqlite_utils.Database) -> list[User]:
    return [_user(r) for r in db.execute(f"select {_USER_COLS} from users order by name").fetchall()]  # type: ignore[misc]


def insert_user(db: sqlite_utils.Database, name: str, password_hash: str, role: Role,
                *, only_if_no_owner: bool = False) -> User:
    """Add a user; with only_if_no_owner, atomically refuse (409) once an owner exists."""
    import re

    if not re.match(NAME_PATTERN, name):
        raise AccountError("name: 1-64 letters, digits, spaces or ._@- (starting with a letter or digit)", "name")
    if role not in ROLES:
        raise AccountError(f"role: one of {', '.join(ROLES)}", "role")
    now = time.time()
    with db.conn:
        if only_if_no_owner and owner_exists(db):
            raise AccountError("the hub already has an owner: log in instead", "name", 409)
        if find_user(db, name)[0] is not None:
            raise AccountError(f"name: a user named {name!r} exists", "name", 409)
        cur = db.execute("insert into users (name, role, password, created, password_changed) values (?, ?, ?, ?, ?)",
                         [name, role, password_hash, now, now])
    return User(int(cur.lastrowid or 0), name, role, now)


def set_password_hash(db: sqlite_utils.Database, user_id: int, password_hash: str) -> None:
    with db.conn:
        db.execute("update users set password = ?, password_changed = ? where id = ?",
                   [password_hash, time.time(), user_id])


def _owners(db: sqlite_utils.Database) -> int:
    return db.execute("select count(*) from users where role = 'owner'").fetchone()[0]


def set_role(db: sqlite_utils.Database, user_id: int, role: Role) -> User:
    if role not in ROLES:
        raise AccountError(f"role: one of {', '.join(ROLES)}", "role")
    with db.conn:
        user = get_user(db, user_id)
        if user is None:
            raise AccountError("no such user", "name", 404)
        if user.role == "owner" and role != "owner" and _owners(db) == 1:
            raise AccountError("role: the hub keeps at least one owner", "role", 409)
        db.execute("update users set role = ? where id = ?", [role, user_id])
    return User(user.id, user.name, role, user.created)


def delete_user(db: sqlite_utils.Database, user_id: int) -> None:
    """Delete a user with their sessions and tokens; the last owner can't be deleted."""
    with db.conn:
        user = get_user(db, user_id)
        if user is None:
            raise AccountError("no such user", "name", 404)
        if user.role == "owner" and _owners(db) == 1:
            raise AccountError("name: the hub keeps at least one owner", "name", 409)
        db.execute("delete from users where id = ?", [user_id])


# -- sessions ---------------------------------------------------------------------------

def insert_session(db: sqlite_utils.Database, user_id: int, secret: str, *, now: float, ttl: float,
                   user_agent: str, address: str) -> str:
    session_id = secrets.token_hex(8)
    with db.conn:
        db.execute("insert into sessions (id, hash, user_id, created, last_seen, expires, user_agent, address) "
                   "values (?, ?, ?, ?, ?, ?, ?, ?)",
                   [session_id, secret_hash(secret), user_id, now, now, now + ttl, user_agent[:300], address[:64]])
    return session_id


def lookup_session(db: sqlite_utils.Database, secret: str, now: float) -> tuple[str, User, float] | None:
    """(session id, its user, expiry) for a live session; expired ones are deleted on sight."""
    row = db.execute(f"select s.id, s.expires, {', '.join('u.' + c for c in _USER_COLS.split(', '))} "
                     "from sessions s join users u on u.id = s.user_id where s.hash = ?",
                     [secret_hash(secret)]).fetchone()
    if row is None:
        return None
    if row[1] <= now:
        with db.conn:
            db.execute("delete from sessions where id = ?", [row[0]])
        return None
    return row[0], _user(row[2:]), row[1]  # type: ignore[return-value]


def touch_session(db: sqlite_utils.Database, session_id: str, now: float, ttl: float) -> None:
    with db.conn:
        db.execute("update sessions set last_seen = ?, expires = ? where id = ?", [now, now + ttl, session_id])


def list_sessions(db: sqlite_utils.Database, user_id: int, now: float) -> list[dict[str, Any]]:
    rows = db.execute("select id, created, last_seen, expires, user_agent, address from sessions "
                      "where user_id = ? and expires > ? order by last_seen desc", [user_id, now]).fetchall()
    return [{"id": r[0], "created": r[1], "last_seen": r[2], "expires": r[3], "user_agent": r[4],
             "address": r[5]} for r in rows]


def delete_sessions(db: sqlite_utils.Database, user_id: int, *, only: str | None = None,
                    keep: str | None = None) -> list[str]:
    """Delete one session (`only`) or all of a user's but `keep`; returns the ids deleted."""
    with db.conn:
        ids = [r[0] for r in db.execute("select id from sessions where user_id = ?", [user_id]).fetchall()
               if (only is None or r[0] == only) and r[0] != keep]
        db.conn.executemany("delete from sessions where id = ?", [(i,) for i in ids])
    return ids


def prune_sessions(db: sqlite_utils.Database, now: float) -> int:
    with db.conn:
        return db.execute("delete from sessions where expires <= ?", [now]).rowcount


# -- API tokens --------------------------------------------------------------------------

def insert_token(db: sqlite_utils.Database, user_id: int, name: str, scope: Scope) -> tuple[str, dict[str, Any]]:
    """Make a token for a user; returns (the token, shown once; its listing row)."""
    if not 1 <= len(name) <= 80:
        raise AccountError("name: 1-80 characters", "name")
    if scope not in ("write", "read"):
        raise AccountError("scope: 'write' or 'read'", "scope")
    token = new_secret(TOKEN_PREFIX)
    row = {"id": secrets.token_hex(8), "hash": secret_hash(token), "user_id": user_id, "name": name,
           "scope": scope, "created": time.time(), "last_used": 0.0}
    with db.conn:
        db["api_tokens"].insert(row)
    return token, {k: v for k, v in row.items() if k != "hash"}


def lookup_token(db: sqlite_utils.Database, token: str) -> tuple[str, User, Scope] | None:
    row = db.execute(f"select t.id, t.scope, {', '.join('u.' + c for c in _USER_COLS.split(', '))} "
                     "from api_tokens t join users u on u.id = t.user_id where t.hash = ?",
                     [secret_hash(token)]).fetchone()
    return None if row is None else (row[0], _user(row[2:]), row[1])  # type: ignore[return-value]


def mark_token_used(db: sqlite_utils.Database, token_id: str, now: float) -> None:
    with db.conn:
        db.execute("update api_tokens set last_used = ? where id = ?", [now, token_id])


def list_tokens(db: sqlite_utils.Database, user_id: int | None = None) -> list[dict[str, Any]]:
    """A user's tokens, or everyone's (user_id None) with the user's name."""
    sql = ("select t.id, t.name, t.scope, t.created, t.last_used, u.name from api_tokens t "
           "join users u on u.id = t.user_id")
    args: list[Any] = []
    if user_id is not None:
        sql += " where t.user_id = ?"
        args.append(user_id)
    rows = db.execute(sql + " order by t.created", args).fetchall()
    return [{"id": r[0], "name": r[1], "scope": r[2], "created": r[3], "last_used": r[4] or None, "user": r[5]}
            for r in rows]


def delete_token(db: sqlite_utils.Database, token_id: str, user_id: int | None = None) -> bool:
    """Revoke a token (only the user's own unless user_id is None); False when there was none."""
    sql, args = "delete from api_tokens where id = ?", [token_id]
    if user_id is not None:
        sql += " and user_id = ?"
        args.append(user_id)
    with db.conn:
        return db.execute(sql, args).rowcount > 0


# -- for the CLI: open hub.db, run, close ------------------------------------------------

def with_db(db_path: Path, fn, *args, **kwargs):
    """Run fn(db, ...) on hub.db (migrated) and close it; for `hub user` and `hub token`."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db = open_database(db_path)
    try:
        migrate(db)
        return fn(db, *args, **kwargs)
    finally:
        db.conn.close()


def create_token(db_path: Path, name: str, *, user: str | None = None, scope: Scope = "write") -> str:
    """A new API token for `user` (default: the hub's only owner); used by the CLI, demo and tests."""

    def make(db: sqlite_utils.Database) -> str:
        if user is None:
            owners = [u for u in list_users(db) if u.role == "owner"]
            if len(owners) != 1:
                raise AccountError("name the user the token is for (--user)" if owners else
                                   "no owner yet: create one first (hub user add NAME --role owner)", "user")
            who = owners[0]
        else:
            who = find_user(db, user)[0]
            if who is None:
                raise AccountError(f"no user {user!r}", "user", 404)
        return insert_token(db, who.id, name, scope)[0]

    return with_db(db_path, make)


def create_user(db_path: Path, name: str, password: str, role: Role = "member") -> User:
    """Add a user to hub.db (hashes the password here); used by the CLI, demo and tests."""
    return with_db(db_path, insert_user, name, hash_password(password), role)
