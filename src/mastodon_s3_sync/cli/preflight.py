"""Before the work starts: the buckets and the database checked, so that a wrong setting
fails at once with a message that names it, not an hour into a run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from mastodon_s3_sync.config.settings import AclMode, BucketSettings, Settings
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.catalog import Catalog
from mastodon_s3_sync.mastodon.database import open_database
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.storage.disk import check_directory
from mastodon_s3_sync.storage.s3 import check_bucket, check_source_acls


def _side(settings: Settings, side: str) -> BucketSettings:
    bucket: BucketSettings | None = getattr(settings, side)
    if bucket is None:
        raise SettingsError(
            f"no {side} bucket: pass --{side} s3://BUCKET[/PREFIX] (or a directory, "
            f"file:///PATH) or set [{side}] bucket (or path) in the config file (--config)"
            + (" or S3_BUCKET in Mastodon's .env (--mastodon-env)" if side == "source" else "")
        )
    return bucket


def checked_source(settings: Settings) -> BucketSettings:
    """The source bucket, answering (``orphans`` reads nothing else)."""
    source = _side(settings, "source")
    source.require_bucket("source")
    check_bucket(source, "source")
    return source


def check_side(settings: BucketSettings, side: str) -> None:
    """The bucket answers, or the directory is there (and writable as a destination)."""
    if settings.path is not None:
        check_directory(settings, side)
    else:
        check_bucket(settings, side)


def checked_buckets(settings: Settings) -> tuple[BucketSettings, BucketSettings]:
    """Both sides, distinct, answering, and source ACLs readable if they are copied."""
    source, destination = _side(settings, "source"), _side(settings, "destination")
    if (source.name, source.key_prefix, source.endpoint_url) == (
        destination.name,
        destination.key_prefix,
        destination.endpoint_url,
    ):
        raise SettingsError("--source and --destination are the same bucket and key prefix")
    if destination.path is not None and settings.copy.acl == AclMode.NONE:
        raise SettingsError(
            "--acl none with a directory as the destination: a file's privacy is its mode, "
            "so use --acl copy (private objects become 0600), private or public-read"
        )
    check_side(source, "source")
    check_side(destination, "destination")
    if settings.copy.acl == AclMode.COPY and source.path is None:
        check_source_acls(source)
    return source, destination


@contextlib.contextmanager
def open_catalog(
    settings: Settings, record_types: Iterable[RecordType], key_prefix: str | None = None
) -> Iterator[Catalog]:
    """The database's catalog, its tables checked; ``key_prefix`` defaults to the source's."""
    database = settings.require_database()
    if key_prefix is None:
        key_prefix = settings.source.key_prefix if settings.source else ""
    with open_database(database, settings.bastion) as conn:
        catalog = Catalog(conn, page_size=database.page_size, key_prefix=key_prefix)
        for record_type in record_types:  # a table that is not there fails before any work
            catalog.table_columns(record_type)
        yield catalog
