"""The device registry: identities, definitions and live state in memory, persisted to SQLite."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import sqlite_utils

from .model import DeviceInfo, DeviceState, expose_from_json, shared
from .store import Store

log = logging.getLogger(__name__)


@dataclass(slots=True)  # one per device: no __dict__ each
class Device:
    info: DeviceInfo
    state: DeviceState = field(default_factory=DeviceState)
    user_name: str = ""  # set by the household; wins over the driver's name
    user_room: str = ""
    inbox: bool = False  # seen for the first time; waits until the household names, places or ignores it
    ignored: bool = False  # the household said "not mine": kept, but off Home and out of the inbox

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def name(self) -> str:
        return self.user_name or self.info.name

    @property
    def room(self) -> str:
        return self.user_room or self.info.room

    def to_json(self) -> dict[str, Any]:
        d = self.info.definition()
        d.update(name=self.name, room=self.room, online=self.state.online,
                 state=dict(self.state.values), last_seen=self.state.last_seen or None,
                 inbox=self.inbox, ignored=self.ignored)
        return d


def _migrate(db: sqlite_utils.Database) -> None:
    db["devices"].create({
        "id": str, "driver": str, "name": str, "model": str, "manufacturer": str, "room": str,
        "address": str, "exposes": str, "error": str, "user_name": str, "user_room": str,
        "first_seen": float, "last_seen": float,
    }, pk="id", if_not_exists=True)
    db["device_state"].create({"id": str, "state": str, "updated": float}, pk="id", if_not_exists=True)
    # Devices already known when these columns arrive were accepted before the inbox existed.
    columns = db["devices"].columns_dict
    for column in ("inbox", "ignored"):
        if column not in columns:
            db["devices"].add_column(column, int, not_null_default=0)


def _same(a: Any, b: Any) -> bool:
    if type(a) is type(b) and type(a) is not float:
        return a == b  # the common case first: a report repeats a value of the same type
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=0, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return a == b and type(a) is type(b)


class Registry:
    """Never deletes a device on its own: one that disappears is marked offline and kept."""

    def __init__(self, store: Store, flush_interval: float = 0.5, *, inbox: bool = True) -> None:
        self.store = store
        self.inbox = inbox  # whether a device seen for the first time waits in the inbox
        self.flush_interval = flush_interval
        self.devices: dict[str, Device] = {}
        self._dirty_state: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._dirty_defs: set[str] = set()
        self._def_writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        rows = await self.store.call(self._load)
        for row, state, updated in rows:
            try:
                info = DeviceInfo(
                    id=row["id"], name=row["name"], driver=row["driver"], model=row["model"] or "",
                    manufacturer=row["manufacturer"] or "", room=row["room"] or "",
                    address=row["address"] or "", error=row["error"] or "",
                    exposes=shared(tuple(expose_from_json(e) for e in json.loads(row["exposes"] or "[]"))),
                )
                values = json.loads(state) if state else {}
            except (ValueError, KeyError, TypeError):
                log.exception("registry row %s unreadable; skipped (left in the database)", row.get("id"))
                continue
            last_seen = max(row["last_seen"] or 0.0, updated or 0.0)
            self.devices[info.id] = Device(
                info, DeviceState(values=values, online=False, last_seen=last_seen),
                user_name=row["user_name"] or "", user_room=row["user_room"] or "",
                inbox=bool(row["inbox"]), ignored=bool(row["ignored"]))
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="registry-flush")

    @staticmethod
    def _load(db: sqlite_utils.Database) -> list[tuple[dict[str, Any], str | None, float | None]]:
        _migrate(db)
        states = {r["id"]: (r["state"], r["updated"]) for r in db["device_state"].rows}
        return [(r, *states.get(r["id"], (None, None))) for r in db["devices"].rows]

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
            self._flusher = None
        await self.flush()

    def get(self, device_id: str) -> Device | None:
        return self.devices.get(device_id)

    def upsert(self, info: DeviceInfo, now: float) -> tuple[Device, bool, bool]:
        """Add or update a definition in memory; returns (device, added, changed).

        The row is written on the store's one thread in submission order; `flush()` waits for it.
        """
        dev = self.devices.get(info.id)
        added = dev is None
        if dev is None:
            dev = Device(info, inbox=self.inbox)
            self.devices[info.id] = dev
            changed = True
        else:
            # An address change is an update of the same device, never a new one.
            changed = dev.info != info
            dev.info = info
        if changed:
            dev.state.last_seen = max(dev.state.last_seen, now)
            self._dirty_defs.add(info.id)
            if self._def_writer is None:
                # one writer at a time: a burst of discoveries becomes one transaction
                self._def_writer = asyncio.get_running_loop().create_task(self._write_definitions())
        return dev, added, changed

    def _definition_row(self, dev: Device) -> dict[str, Any]:
        info = dev.info
        return {
            "id": info.id, "driver": info.driver, "name": info.name, "model": info.model,
            "manufacturer": info.manufacturer, "room": info.room, "address": info.address,
            "exposes": json.dumps([e.to_json() for e in info.exposes]), "error": info.error,
            "user_name": dev.user_name, "user_room": dev.user_room, "last_seen": dev.state.last_seen,
            "inbox": int(dev.inbox), "ignored": int(dev.ignored),
        }

    async def _write_definitions(self) -> None:
        """Save every changed definition, as of now, in one transaction per round."""
        try:
            while self._dirty_defs:
                ids, self._dirty_defs = self._dirty_defs, set()
                # rows are built here, on the loop, from the latest in memory (a rename included)
                rows = [self._definition_row(self.devices[i]) for i in ids if i in self.devices]

                def write(db: sqlite_utils.Database) -> None:
                    with db.conn:
                        db["devices"].upsert_all(rows, pk="id")  # columns left out (first_seen) are kept
                        db.execute("update devices set first_seen = last_seen where first_seen is null")

                try:
                    await self.store.call(write)
                except Exception as e:
                    self._dirty_defs |= ids  # kept for the next round or flush()
                    log.error("saving %d device definitions failed: %s", len(ids), e)
                    return
        finally:
            if self._def_writer is asyncio.current_task():
                self._def_writer = None

    async def rename(self, device_id: str, name: str | None, room: str | None, *,
                     ignored: bool | None = None, inbox: bool | None = None) -> Device:
        """The household's choices for a device; naming, placing or ignoring it empties its inbox slot."""
        dev = self.devices[device_id]
        if name is not None:
            dev.user_name = name
        if room is not None:
            dev.user_room = room
        if ignored is not None:
            dev.ignored = ignored
        if name is not None or room is not None or ignored or inbox is False:
            dev.inbox = False
        self._dirty_defs.add(device_id)  # saved with the whole row: never before the row exists
        await self.flush_definitions()
        if device_id in self._dirty_defs:
            raise RuntimeError(f"could not save the name and room of {device_id}")
        return dev

    async def forget(self, device_id: str) -> None:
        """Delete a device and its stored state (the household asked; nothing else deletes)."""
        self.devices.pop(device_id, None)
        self._dirty_state.discard(device_id)
        self._dirty_defs.discard(device_id)
        await self.flush_definitions()  # a save of this device in flight must not land after the delete

        def write(db: sqlite_utils.Database) -> None:
            with db.conn:
                db.execute("delete from devices where id = ?", [device_id])
                db.execute("delete from device_state where id = ?", [device_id])

        await self.store.call(write)

    def update_state(self, device_id: str, values: Mapping[str, Any], now: float) -> dict[str, Any]:
        """Merge reported values; returns those that changed (written to SQLite shortly after)."""
        dev = self.devices.get(device_id)
        if dev is None:
            return {}
        state = dev.state
        known = state.values
        changed = {k: v for k, v in values.items() if k not in known or not _same(known[k], v)}
        state.last_seen = now
        if changed:
            known.update(changed)
            self._dirty_state.add(device_id)
            self._wake.set()
        return changed

    def set_online(self, device_id: str, online: bool, now: float) -> bool:
        dev = self.devices.get(device_id)
        if dev is None or dev.state.online == online:
            return False
        dev.state.online = online
        if online:
            dev.state.last_seen = now
        return True

    def set_error(self, device_id: str, message: str) -> bool:
        dev = self.devices.get(device_id)
        if dev is None or dev.info.error == message:
            return False
        dev.info = replace(dev.info, error=message)
        return True

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_interval)  # coalesce bursts into one transaction
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("saving device state failed; will retry")
                self._wake.set()

    async def flush_definitions(self) -> None:
        """Until every changed definition so far is saved (or its save failed and was logged)."""
        if self._def_writer is not None:
            await asyncio.shield(self._def_writer)
        if self._dirty_defs:  # changed since, or a failed round: once more, here
            await self._write_definitions()

    async def flush(self) -> None:
        await self.flush_definitions()
        if not self._dirty_state:
            return
        ids, self._dirty_state = self._dirty_state, set()
        rows = [{"id": i, "state": json.dumps(self.devices[i].state.values), "updated": self.devices[i].state.last_seen}
                for i in ids if i in self.devices]

        def write(db: sqlite_utils.Database) -> None:
            with db.conn:
                db["device_state"].upsert_all(rows, pk="id")

        try:
            await self.store.call(write)
        except Exception:
            self._dirty_state |= ids
            raise
