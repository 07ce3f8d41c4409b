"""SQLite on disk (WAL) through sqlite-utils, on one worker thread so the event loop never blocks."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import sqlite_utils

T = TypeVar("T")


def open_database(path: Path) -> sqlite_utils.Database:
    """Open hub.db with the settings every user of it relies on."""
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10.0)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes, fast
    db.execute("PRAGMA foreign_keys=ON")
    return db


class Store:
    """One connection, one thread; `call(fn)` runs `fn(db)` there and awaits the result."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite_utils.Database | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self._db = await asyncio.get_running_loop().run_in_executor(self._executor, open_database, self.path)

    async def call(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        if self._executor is None or self._db is None:
            raise RuntimeError("store not started")
        db = self._db
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, db)

    async def stop(self) -> None:
        if self._executor is None:
            return
        db, self._db = self._db, None
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, db.conn.close)
        self._executor.shutdown(wait=True)
        self._executor = None
