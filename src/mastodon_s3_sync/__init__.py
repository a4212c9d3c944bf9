"""mastodon-s3-sync: copy the media a Mastodon instance references, from its database.

The public names below are imported on first use, so that importing the package (as the
copier Lambda does) pulls in neither pg8000 nor paramiko.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "BucketSettings": "mastodon_s3_sync.config.settings",
    "DatabaseSettings": "mastodon_s3_sync.config.settings",
    "Settings": "mastodon_s3_sync.config.settings",
    "Catalog": "mastodon_s3_sync.mastodon.catalog",
    "CatalogFilter": "mastodon_s3_sync.mastodon.catalog",
    "RowObjects": "mastodon_s3_sync.mastodon.catalog",
    "DatabaseError": "mastodon_s3_sync.errors",
    "SettingsError": "mastodon_s3_sync.errors",
    "SyncError": "mastodon_s3_sync.errors",
    "ObjectRef": "mastodon_s3_sync.mastodon.layout",
    "RecordType": "mastodon_s3_sync.mastodon.layout",
    "id_partition": "mastodon_s3_sync.mastodon.layout",
    "objects_for_row": "mastodon_s3_sync.mastodon.layout",
    "Outcome": "mastodon_s3_sync.outcomes",
}

__all__ = [
    "BucketSettings",
    "Catalog",
    "CatalogFilter",
    "DatabaseError",
    "DatabaseSettings",
    "ObjectRef",
    "Outcome",
    "RecordType",
    "RowObjects",
    "Settings",
    "SettingsError",
    "SyncError",
    "__version__",
    "id_partition",
    "objects_for_row",
]

if TYPE_CHECKING:
    from mastodon_s3_sync.config.settings import BucketSettings, DatabaseSettings, Settings
    from mastodon_s3_sync.errors import DatabaseError, SettingsError, SyncError
    from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter, RowObjects
    from mastodon_s3_sync.mastodon.layout import (
        ObjectRef,
        RecordType,
        id_partition,
        objects_for_row,
    )
    from mastodon_s3_sync.outcomes import Outcome


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
