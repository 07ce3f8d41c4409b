"""Long-lived API tokens (`hub token create`): only a SHA-256 of each is stored."""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path

import sqlite_utils

from .store import Store, open_database

PREFIX = "hub_"


def _hash(token: str) -> str:
    # Tokens are 256 random bits, so a plain hash is enough; passwords get argon2.
    return hashlib.sha256(token.encode()).hexdigest()


def _migrate(db: sqlite_utils.Database) -> None:
    db["tokens"].create({"hash": str, "name": str, "created": float, "last_used": float},
                        pk="hash", if_not_exists=True)


def create_token(db_path: Path, name: str) -> str:
    """Make a token, store its hash, return the token (shown once). Used by the CLI."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db = open_database(db_path)
    try:
        _migrate(db)
        token = PREFIX + secrets.token_urlsafe(32)
        with db.conn:
            db["tokens"].insert({"hash": _hash(token), "name": name, "created": time.time(), "last_used": 0.0})
        return token
    finally:
        db.conn.close()


class TokenChecker:
    """Checks bearer tokens against the database (tokens made while the hub runs work at once)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._known: dict[str, str] = {}  # hash -> name

    async def start(self) -> None:
        await self.store.call(_migrate)

    async def check(self, token: str) -> str | None:
        """The token's name, or None."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        h = _hash(token)
        if h in self._known:
            return self._known[h]

        def lookup(db: sqlite_utils.Database) -> str | None:
            row = db.execute("select name from tokens where hash = ?", [h]).fetchone()
            if row is None:
                return None
            with db.conn:
                db["tokens"].update(h, {"last_used": time.time()})
            return row[0]

        name = await self.store.call(lookup)
        if name is not None:
            self._known[h] = name
        return name
