"""The change journal behind `/v1/changes`: live entries and tombstones ordered by sequence.

Pure code (no disk, no clock). Every change gives the item a new, higher `seq`; a changes
query is "items with seq > cursor, in seq order" (cloudsync research §7). Tombstones are
kept up to a bound; dropping the oldest raises the floor, and a cursor below the floor gets
410 reset (Microsoft Graph's resync semantics), because its deletions are no longer known.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timezone


@dataclass(frozen=True)
class Entry:
    """One item as the change feed shows it: a file, a folder, or a deletion."""

    tag: str  # file | folder | deleted
    id: str
    path: str  # cloud path, e.g. "/Films/Holiday 2025.mp4"
    seq: int = 0
    rev: str = ""
    size: int = 0
    content_hash: str = ""
    mtime_ns: int = 0
    ino: int = 0  # with size and mtime_ns, identifies the version on disk (not sent)
    media_type: str = ""
    media: dict[str, object] | None = None

    @property
    def server_modified(self) -> datetime:
        return datetime.fromtimestamp(self.mtime_ns // 1_000_000_000, tz=timezone.utc)

    def as_json(self) -> dict[str, object]:
        """The wire form of the entry (shape: cloudsync research §7)."""
        if self.tag != "file":
            return {"tag": self.tag, "id": self.id, "path": self.path}
        return {"tag": "file", "id": self.id, "path": self.path, "rev": self.rev,
                "size": self.size, "content_hash": self.content_hash,
                "server_modified": self.server_modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "media_type": self.media_type, "media": self.media}


class CursorReset(Exception):
    """The cursor is from another epoch or older than the journal: the client must relist."""


class CursorInvalid(ValueError):
    """The cursor is not something this server ever handed out."""


class CursorCodec:
    """Opaque cursors: base64url("epoch.seq.known") plus an HMAC so clients can't forge one.

    `seq` is the last entry the client has; `known` is the point from which it needs
    deletions: equal to seq normally, the listing's start while a full listing is paged.
    """

    def __init__(self, epoch: str | None = None, secret: bytes | None = None) -> None:
        self.epoch = epoch or secrets.token_hex(4)
        self._secret = secret or secrets.token_bytes(32)

    def encode(self, seq: int, known: int | None = None) -> str:
        body = f"{self.epoch}.{seq}.{seq if known is None else known}".encode()
        mac = hmac.new(self._secret, body, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(body + b"." + mac).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple[int, int]:
        """The (seq, known) a cursor stands for."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            body, dot, mac = raw[:-13], raw[-13:-12], raw[-12:]
            epoch, seq_text, known_text = body.decode("ascii").split(".")
            seq, known = int(seq_text), int(known_text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CursorInvalid("malformed cursor") from exc
        if dot != b"." or seq < 0 or known < 0:
            raise CursorInvalid("malformed cursor")
        good = hmac.new(self._secret, body, hashlib.sha256).digest()[:12]
        # a well-formed cursor with a foreign MAC most likely comes from an earlier run of
        # this server (new secret): treat it as stale, not as garbage
        if epoch != self.epoch or not hmac.compare_digest(mac, good):
            raise CursorReset("cursor from another epoch")
        return seq, known


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    next_seq: int
    next_known: int
    has_more: bool


class ChangeJournal:
    """Current items and bounded tombstones, in sequence order."""

    def __init__(self, max_tombstones: int = 1000) -> None:
        self.max_tombstones = max_tombstones
        self.seq = 0
        self.floor = 0  # cursors with 0 < seq < floor have lost deletions: reset
        self._live: dict[str, Entry] = {}  # path -> entry
        self._dead: dict[str, Entry] = {}  # path -> tombstone, insertion = seq order
        self._order: dict[int, str] = {}  # seq -> path, insertion = seq order
        self._by_id: dict[str, str] = {}  # id -> path of live entries

    def get(self, path: str) -> Entry | None:
        return self._live.get(path)

    def by_id(self, item_id: str) -> Entry | None:
        path = self._by_id.get(item_id)
        return self._live.get(path) if path is not None else None

    def live(self) -> list[Entry]:
        return list(self._live.values())

    def upsert(self, entry: Entry) -> Entry:
        """Record a new or changed file or folder; returns it with its new seq."""
        old = self._live.get(entry.path) or self._dead.pop(entry.path, None)
        if old is not None:
            self._order.pop(old.seq, None)
        self.seq += 1
        entry = replace(entry, seq=self.seq)
        self._live[entry.path] = entry
        self._by_id[entry.id] = entry.path
        self._order[entry.seq] = entry.path
        return entry

    def delete(self, path: str) -> Entry | None:
        """Replace a live item by a tombstone that keeps its id."""
        old = self._live.pop(path, None)
        if old is None:
            return None
        self._order.pop(old.seq, None)
        self._by_id.pop(old.id, None)
        self.seq += 1
        tomb = Entry("deleted", old.id, path, seq=self.seq)
        self._dead[path] = tomb
        self._order[tomb.seq] = path
        while len(self._dead) > self.max_tombstones:
            oldest = next(iter(self._dead.values()))
            del self._dead[oldest.path]
            self._order.pop(oldest.seq, None)
            self.floor = max(self.floor, oldest.seq)
        return tomb

    def forget_history(self) -> None:
        """Drop every tombstone and raise the floor to now: all older cursors get 410."""
        for tomb in self._dead.values():
            self._order.pop(tomb.seq, None)
        self._dead.clear()
        self.floor = self.seq

    def check(self, after: int, known: int) -> None:
        """Raise CursorReset unless a cursor (after, known) can still be served."""
        if after > self.seq or known > self.seq:
            raise CursorReset("cursor from the future")
        if known < self.floor:
            raise CursorReset("cursor older than the change journal")

    def changes(self, after: int, known: int | None, limit: int) -> Page:
        """Live entries with seq > after and tombstones with seq > known, oldest first.

        known=None starts a full listing (tombstones up to now are irrelevant). Raises
        CursorReset when deletions after `known` may have been dropped from the journal.
        """
        if known is None:
            known = self.seq
        self.check(after, known)
        entries: list[Entry] = []
        has_more = False
        for seq, path in self._order.items():
            if seq <= after:
                continue
            entry = self._live.get(path)
            if entry is None or entry.seq != seq:
                entry = self._dead.get(path)
                if entry is None or entry.seq != seq or seq <= known:
                    continue  # deleted before the client's view began: irrelevant
            if len(entries) >= limit:
                has_more = True
                break
            entries.append(entry)
        if has_more:
            return Page(entries, entries[-1].seq, known, True)
        return Page(entries, self.seq, self.seq, False)
