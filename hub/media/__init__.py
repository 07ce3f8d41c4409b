"""Media sync from the operator cloud, the local library, and its API."""

from typing import TYPE_CHECKING, Any

from .api import add_routes
from .service import MediaService
from .trash import DeletePolicy

if TYPE_CHECKING:
    from .sync import SyncEngine, SyncPolicy

__all__ = ["DeletePolicy", "MediaService", "SyncEngine", "SyncPolicy", "add_routes"]


def __getattr__(name: str) -> Any:
    # The sync engine (downloads, hashing, batches) loads on first use: a hub never linked to a
    # cloud does not carry it.
    if name in ("SyncEngine", "SyncPolicy"):
        from . import sync

        return getattr(sync, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
