"""The registry on a real SQLite file: a burst of discoveries is saved whole, once per device."""

from __future__ import annotations

from pathlib import Path

from hub.model import Access, Binary, DeviceInfo
from hub.registry import Registry
from hub.store import Store

ON = (Binary(name="on", label="On", access=Access.STATE | Access.SET),)


def plug(i: int, address: str = "10.0.0.1") -> DeviceInfo:
    return DeviceInfo(id=f"plug-{i:04d}", name=f"Plug {i}", driver="homie", exposes=ON, address=address)


async def open_registry(path: Path) -> tuple[Store, Registry]:
    store = Store(path)
    await store.start()
    registry = Registry(store)
    await registry.start()
    return store, registry


async def test_a_thousand_discoveries_in_one_tick_are_all_saved_once(tmp_path: Path) -> None:
    store, registry = await open_registry(tmp_path / "hub.db")
    try:
        for i in range(1000):
            registry.upsert(plug(i), now=100.0)
        for i in range(0, 1000, 2):  # found again at a new address before anything was written
            registry.upsert(plug(i, "10.0.0.2"), now=101.0)
        await registry.flush()
        await registry.rename("plug-0007", "Kettle", "Kitchen")
        registry.upsert(plug(7, "10.0.0.3"), now=200.0)  # rediscovered later: first seen stays
    finally:
        await registry.stop()
        await store.stop()

    store, registry = await open_registry(tmp_path / "hub.db")
    try:
        rows = await store.call(lambda db: list(db.query("select id, address, first_seen from devices")))
    finally:
        await registry.stop()
        await store.stop()
    assert len(rows) == 1000 and len({r["id"] for r in rows}) == 1000
    by_id = {r["id"]: r for r in rows}
    assert by_id["plug-0002"]["address"] == "10.0.0.2" and by_id["plug-0003"]["address"] == "10.0.0.1"
    assert by_id["plug-0007"]["address"] == "10.0.0.3" and by_id["plug-0007"]["first_seen"] == 100.0
    kettle = registry.devices["plug-0007"]
    assert (kettle.name, kettle.room) == ("Kettle", "Kitchen")
