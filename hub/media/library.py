"""The media library's SQLite side: what the cloud has, what is on disk, and queries.

Tables (all written on the Store's one DB thread):
- `media_remote`: the cloud's current files as last listed (the desired state);
- `media`: files present under `<data>/media/` and verified (what the UI lists and serves);
- `media_state`: the change-feed cursor and the full-listing generation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from .client import DeletedEntry, FileEntry, FolderEntry

REMOTE_COLUMNS = ("cloud_id", "path", "rev", "size", "content_hash", "server_modified", "media_type", "kind", "width", "height", "duration_ms")
MEDIA_COLUMNS = (
    "id", "cloud_id", "path", "local_path", "size", "content_hash", "rev", "media_type", "kind",
    "width", "height", "duration_ms", "server_modified", "synced_at", "sha256",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS media_remote (
    cloud_id TEXT PRIMARY KEY, path TEXT NOT NULL, rev TEXT, size INTEGER NOT NULL,
    content_hash TEXT NOT NULL, server_modified TEXT, media_type TEXT, kind TEXT,
    width INTEGER, height INTEGER, duration_ms INTEGER, gen INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS media_remote_path ON media_remote(path);
CREATE TABLE IF NOT EXISTS media (
    id INTEGER PRIMARY KEY AUTOINCREMENT, cloud_id TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
    local_path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, content_hash TEXT NOT NULL, rev TEXT,
    media_type TEXT, kind TEXT, width INTEGER, height INTEGER, duration_ms INTEGER,
    server_modified TEXT, synced_at REAL NOT NULL, sha256 TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS media_kind ON media(kind);
CREATE TABLE IF NOT EXISTS media_state (key TEXT PRIMARY KEY, value TEXT);
"""


def ensure_schema(db: sqlite_utils.Database) -> None:
    db.conn.executescript(SCHEMA)


# --- sync state ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedState:
    cursor: str | None
    gen: int  # the generation of the newest full listing
    listing: bool  # a full listing is under way and hasn't finished


def load_state(db: sqlite_utils.Database) -> FeedState:
    ensure_schema(db)
    rows = dict(db.execute("SELECT key, value FROM media_state").fetchall())
    return FeedState(rows.get("cursor") or None, int(rows.get("gen") or 0), rows.get("listing") == "1")


def _save_state(db: sqlite_utils.Database, st: FeedState) -> None:
    db.execute(
        "INSERT OR REPLACE INTO media_state(key, value) VALUES ('cursor', ?), ('gen', ?), ('listing', ?)",
        [st.cursor or "", str(st.gen), "1" if st.listing else "0"],
    )


def begin_listing(db: sqlite_utils.Database) -> FeedState:
    """Start a full listing (first run, or after 410): new generation, no cursor."""
    st = load_state(db)
    new = FeedState(None, st.gen + 1, True)
    with db.conn:
        db.execute("BEGIN")
        _save_state(db, new)
    return new


def apply_page(
    db: sqlite_utils.Database,
    entries: Iterable[FileEntry | FolderEntry | DeletedEntry],
    cursor: str,
    has_more: bool,
) -> FeedState:
    """Apply a page in order (Dropbox list_folder rules) and save the cursor, in one transaction.

    A full listing's sweep (drop remote rows the listing didn't mention) runs only when its
    last page is applied.
    """
    st = load_state(db)
    c = db.conn
    c.execute("BEGIN IMMEDIATE")
    try:
        for e in entries:
            if isinstance(e, FileEntry):
                # a file replaces whatever else was at its path
                c.execute("DELETE FROM media_remote WHERE path = ? AND cloud_id != ?", (e.path, e.id))
                m = e.media
                c.execute(
                    "INSERT OR REPLACE INTO media_remote VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (e.id, e.path, e.rev, e.size, e.content_hash.lower(), e.server_modified, e.media_type,
                     m.kind if m else None, m.width if m else None, m.height if m else None,
                     m.duration_ms if m else None, st.gen),
                )
            elif isinstance(e, DeletedEntry):
                # remove the path and everything under it (by path, not id: a moved file's
                # "deleted" entry for its old path must not delete it at its new one)
                c.execute(
                    "DELETE FROM media_remote WHERE path = ? OR substr(path, 1, ?) = ?",
                    (e.path, len(e.path.rstrip("/")) + 1, e.path.rstrip("/") + "/"),
                )
            # folders: nothing to store; directories appear as files land in them
        new = FeedState(cursor, st.gen, st.listing)
        if st.listing and not has_more:
            c.execute("DELETE FROM media_remote WHERE gen < ?", (st.gen,))
            new = FeedState(cursor, st.gen, False)
        _save_state(db, new)
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
    return new


# --- planning ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    downloads: list[dict[str, Any]]  # media_remote rows needing bytes
    moves: list[tuple[dict[str, Any], dict[str, Any]]]  # (media row, remote row): same bytes, new path
    deletions: list[dict[str, Any]]  # media rows the cloud no longer has
    library_size: int
    listing_complete: bool
    updated: int = 0  # rows whose metadata changed without new bytes


def plan(db: sqlite_utils.Database) -> Plan:
    """Compare the desired state with the library; metadata-only changes are applied here."""
    st = load_state(db)
    c = db.conn
    c.execute("BEGIN IMMEDIATE")
    try:
        # same bytes, new rev or media info: just update the row
        updated = c.execute(
            """UPDATE media SET (rev, media_type, kind, width, height, duration_ms, server_modified) =
                 (SELECT r.rev, r.media_type, r.kind, r.width, r.height, r.duration_ms, r.server_modified
                  FROM media_remote r WHERE r.cloud_id = media.cloud_id)
               WHERE EXISTS (SELECT 1 FROM media_remote r WHERE r.cloud_id = media.cloud_id
                 AND r.content_hash = media.content_hash AND r.size = media.size
                 AND (r.rev IS NOT media.rev OR r.kind IS NOT media.kind OR r.width IS NOT media.width
                      OR r.height IS NOT media.height OR r.duration_ms IS NOT media.duration_ms
                      OR r.media_type IS NOT media.media_type OR r.server_modified IS NOT media.server_modified))"""
        ).rowcount
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
    c.row_factory = _dict_row
    try:
        downloads = c.execute(
            """SELECT r.*, m.local_path AS old_local_path, m.id AS old_id FROM media_remote r LEFT JOIN media m ON m.cloud_id = r.cloud_id
               WHERE m.cloud_id IS NULL OR m.content_hash != r.content_hash OR m.size != r.size
               ORDER BY r.server_modified DESC, r.size ASC"""  # newest first: something playable soon
        ).fetchall()
        moved = c.execute(
            """SELECT m.id AS m_id, r.* FROM media m JOIN media_remote r ON m.cloud_id = r.cloud_id
               WHERE m.content_hash = r.content_hash AND m.size = r.size AND m.path != r.path"""
        ).fetchall()
        deletions = c.execute(
            "SELECT m.* FROM media m LEFT JOIN media_remote r ON r.cloud_id = m.cloud_id WHERE r.cloud_id IS NULL"
        ).fetchall()
        total = c.execute("SELECT count(*) AS n FROM media").fetchone()["n"]
        media_by_id = {}
        if moved:
            ids = [row["m_id"] for row in moved]
            for row in c.execute(f"SELECT * FROM media WHERE id IN ({','.join('?' * len(ids))})", ids):
                media_by_id[row["id"]] = row
    finally:
        c.row_factory = None
    moves = [(media_by_id[r["m_id"]], {k: v for k, v in r.items() if k != "m_id"}) for r in moved]
    return Plan(downloads, moves, deletions, total, not st.listing, updated)


def _dict_row(cursor: Any, row: tuple) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, row)}


def all_files(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every library row, for verification."""
    ensure_schema(db)
    cur = db.execute("SELECT id, path, local_path, size, content_hash, sha256 FROM media ORDER BY local_path")
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def local_files(db: sqlite_utils.Database) -> list[tuple[int, str, int]]:
    """(id, local_path, size) of every library file."""
    ensure_schema(db)
    return [tuple(r) for r in db.execute("SELECT id, local_path, size FROM media")]


def install(db: sqlite_utils.Database, remote: dict[str, Any], local_path: str, sha256: str | None, now: float) -> int:
    """Record one verified file (new or replacing its previous version); keeps the row's id."""
    install_many(db, [(remote, local_path, sha256)], now)
    return db.execute("SELECT id FROM media WHERE cloud_id = ?", [remote["cloud_id"]]).fetchone()[0]


def install_many(db: sqlite_utils.Database, files: list[tuple[dict[str, Any], str, str | None]], now: float) -> None:
    """Record verified files (remote row, local path, SHA-256 or None) in one transaction."""
    ensure_schema(db)
    rows = [
        [remote["cloud_id"], remote["path"], local_path, remote["size"], remote["content_hash"], remote["rev"],
         remote["media_type"], remote["kind"], remote["width"], remote["height"], remote["duration_ms"],
         remote["server_modified"], now, sha256 or ""]
        for remote, local_path, sha256 in files
    ]
    with db.conn:
        db.execute("BEGIN IMMEDIATE")
        db.conn.executemany(
            """INSERT INTO media (cloud_id, path, local_path, size, content_hash, rev, media_type, kind,
                                  width, height, duration_ms, server_modified, synced_at, sha256)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT(cloud_id) DO UPDATE SET path=excluded.path, local_path=excluded.local_path,
                 size=excluded.size, content_hash=excluded.content_hash, rev=excluded.rev,
                 media_type=excluded.media_type, kind=excluded.kind, width=excluded.width,
                 height=excluded.height, duration_ms=excluded.duration_ms,
                 server_modified=excluded.server_modified, synced_at=excluded.synced_at, sha256=excluded.sha256""",
            rows,
        )


def set_sha256(db: sqlite_utils.Database, digests: list[tuple[int, str]]) -> None:
    """(media id, plain SHA-256) for rows that had none, in one transaction."""
    with db.conn:
        db.execute("BEGIN IMMEDIATE")
        db.conn.executemany("UPDATE media SET sha256 = ? WHERE id = ?", [(h, i) for i, h in digests])


def relocate(db: sqlite_utils.Database, moves: list[tuple[int, str, str]]) -> None:
    """(media id, cloud path, local path) of moved files, in one transaction."""
    with db.conn:
        db.execute("BEGIN IMMEDIATE")
        db.conn.executemany("UPDATE media SET path = ?, local_path = ? WHERE id = ?", [(p, lp, i) for i, p, lp in moves])


def remove(db: sqlite_utils.Database, media_ids: list[int]) -> None:
    with db.conn:
        db.execute("BEGIN IMMEDIATE")
        db.conn.executemany("DELETE FROM media WHERE id = ?", [(i,) for i in media_ids])


# --- queries for the API -------------------------------------------------------------------


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "path": row["path"], "name": row["path"].rsplit("/", 1)[-1], "size": row["size"],
        "kind": row["kind"], "media_type": row["media_type"], "width": row["width"], "height": row["height"],
        "duration_ms": row["duration_ms"], "content_hash": row["content_hash"], "rev": row["rev"],
        "server_modified": row["server_modified"], "synced_at": row["synced_at"],
    }


def query(db: sqlite_utils.Database, kind: str | None, q: str | None, limit: int, offset: int) -> dict[str, Any]:
    """A page of the library, newest first; `q` matches the file name (case-insensitive)."""
    ensure_schema(db)
    where, args = [], []
    if kind:
        where.append("kind = ?")
        args.append(kind)
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("path LIKE ? ESCAPE '\\'")
        args.append(f"%{escaped}%")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    total = db.execute(f"SELECT count(*) FROM media {clause}", args).fetchone()[0]
    cur = db.execute(
        f"SELECT * FROM media {clause} ORDER BY server_modified DESC, local_path ASC LIMIT ? OFFSET ?", [*args, limit, offset]
    )
    cols = [d[0] for d in cur.description]
    items = [_public(dict(zip(cols, r))) for r in cur.fetchall()]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def get(db: sqlite_utils.Database, media_id: int) -> dict[str, Any] | None:
    ensure_schema(db)
    cur = db.execute("SELECT * FROM media WHERE id = ?", [media_id])
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None


def manifest(db: sqlite_utils.Database) -> list[str]:
    """`<content_hash>  <local path>` lines (the format `rclone check --checkfile dropbox` reads)."""
    return [f"{h}  {p}" for h, p in db.execute("SELECT content_hash, local_path FROM media ORDER BY local_path")]


def resolve(media_dir: Path, local_path: str) -> Path | None:
    """The file for a stored local path, if it is still inside the library."""
    p = (media_dir / local_path).resolve()
    root = media_dir.resolve()
    if root not in p.parents or not p.is_file():
        return None
    return p


