"""mastodon-s3-sync: copy the media a Mastodon instance references, from its database."""

from .catalog import Catalog, CatalogFilter, RowObjects
from .errors import DatabaseError, SettingsError, SyncError
from .layout import ObjectRef, RecordType, id_partition, objects_for_row
from .settings import BucketSettings, DatabaseSettings, Settings

__version__ = "0.1.0"

__all__ = [
    "BucketSettings",
    "Catalog",
    "CatalogFilter",
    "DatabaseError",
    "DatabaseSettings",
    "ObjectRef",
    "RecordType",
    "RowObjects",
    "Settings",
    "SettingsError",
    "SyncError",
    "__version__",
    "id_partition",
    "objects_for_row",
]
