"""A Mastodon instance on local file storage: a seeded database and its ``public/system``.

The tree is written through the disk side itself, as :func:`seed_bucket` writes a bucket:
private objects get mode ``0600`` (what Mastodon's ``chmod`` gives a suspended account's
media), the others ``0644``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from mastodon_s3_sync.demo.media import SeedManifest, seed_bucket
from mastodon_s3_sync.demo.schema import SchemaVersion
from mastodon_s3_sync.demo.seed import seed_database
from mastodon_s3_sync.mastodon.layout import ObjectRef
from mastodon_s3_sync.storage.disk import DiskObjects, disk_client
from tests.support.mastodon_db import MastodonDb, MastodonDbFactory, all_refs
from tests.support.migration import COUNTS


@dataclass
class DiskInstance:
    """The database, its media directory, and what was written there."""

    db: MastodonDb
    root: Path
    refs: list[ObjectRef]
    manifest: SeedManifest


def seed_directory(
    root: Path,
    refs: list[ObjectRef],
    *,
    private_record_ids: Collection[int] = (),
    missing_every: int = 0,
    legacy_every: int = 0,
    large_sizes: bool = False,
) -> SeedManifest:
    """:func:`seed_bucket` into ``root`` (the options as there)."""
    root.mkdir(parents=True, exist_ok=True)
    return seed_bucket(
        disk_client(DiskObjects(root)),
        str(root),
        refs,
        private_record_ids=private_record_ids,
        missing_every=missing_every,
        legacy_every=legacy_every,
        large_sizes=large_sizes,
    )


def prepare_disk(
    mastodon_db: MastodonDbFactory, root: Path, counts: Mapping[str, int] = COUNTS
) -> DiskInstance:
    """Seed ``counts`` rows and their files, some private, some missing or legacy."""
    db = mastodon_db()
    seed_database(db.conn, SchemaVersion.CURRENT, counts, seed=5)
    refs = all_refs(db)
    private = {ref.record_id for ref in refs[::7]}
    manifest = seed_directory(
        root, refs, private_record_ids=private, missing_every=17, legacy_every=13
    )
    return DiskInstance(db, root, refs, manifest)
