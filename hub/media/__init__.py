"""Media sync from the operator cloud, the local library, and its API."""

from .api import add_routes
from .service import MediaService
from .sync import SyncEngine, SyncPolicy
from .trash import DeletePolicy

__all__ = ["DeletePolicy", "MediaService", "SyncEngine", "SyncPolicy", "add_routes"]
