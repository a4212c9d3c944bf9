"""A migration to run: a seeded Mastodon database and source bucket, an empty destination
bucket (the ``migration`` fixture: between the two moto servers), and ``mastodon-s3-sync run``
as a child process."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import CopySettings
from mastodon_s3_sync.demo.media import SeedManifest, create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import LocalS3Server, MotoS3Server
from mastodon_s3_sync.demo.schema import SchemaVersion
from mastodon_s3_sync.demo.seed import seed_database
from mastodon_s3_sync.mastodon.layout import ObjectRef
from tests.support.mastodon_db import MastodonDb, MastodonDbFactory, all_refs
from tests.support.processes import run_cli
from tests.support.s3_servers import BucketNames

COUNTS = {"accounts": 40, "media_attachments": 80, "custom_emojis": 12, "preview_cards": 30}
SMALL_COUNTS = {"accounts": 10, "media_attachments": 20, "custom_emojis": 4, "preview_cards": 20}
"""A quarter of :data:`COUNTS`'s objects, still with private, missing and legacy ones and a
preview card's ``.gif`` of JPEG bytes: for tests that read every object more than once (``verify
--full``, a check per object) and whose point is not the size."""


@dataclass
class Migration:
    """A database, a seeded source bucket and an empty destination bucket."""

    db: MastodonDb
    source: LocalS3Server
    destination: LocalS3Server
    source_bucket: str
    destination_bucket: str
    refs: list[ObjectRef]
    manifest: SeedManifest

    def config(
        self,
        tmp_path: Path,
        *,
        destination_secret: str | None = None,
        copy: CopySettings | None = None,
    ) -> Path:
        """A config file for this migration in ``tmp_path``."""
        destination = self.destination.bucket_settings(self.destination_bucket)
        if destination_secret is not None:
            destination = replace(destination, secret_access_key=destination_secret)
        path = tmp_path / "sync.toml"
        source = self.source.bucket_settings(self.source_bucket)
        path.write_text(config_toml(self.db.url, source, destination, copy))
        return path


def prepare(
    mastodon_db: MastodonDbFactory,
    servers: tuple[LocalS3Server, LocalS3Server],
    names: BucketNames,
    *,
    acl_supported: bool = True,
    counts: Mapping[str, int] = COUNTS,
) -> Migration:
    """Seed ``counts`` rows and their objects, some private, some missing or legacy."""
    db = mastodon_db()
    seed_database(db.conn, SchemaVersion.CURRENT, counts, seed=5)
    refs = all_refs(db)
    source, destination = servers
    source_bucket, destination_bucket = names(), names()
    create_bucket(source.client(), source_bucket)
    create_bucket(destination.client(), destination_bucket)
    private = {ref.record_id for ref in refs[::7]}  # e.g. a suspended account's media
    manifest = seed_bucket(
        source.client(),
        source_bucket,
        refs,
        private_record_ids=private,
        missing_every=17,
        legacy_every=13,
        acl_supported=acl_supported,
    )
    return Migration(db, source, destination, source_bucket, destination_bucket, refs, manifest)


@pytest.fixture
def migration(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
) -> Migration:
    """A migration between the two moto servers, made by :func:`prepare`."""
    return prepare(mastodon_db, moto_servers, fresh_bucket_name)


@pytest.fixture
def small_migration(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
) -> Migration:
    """:func:`migration` of :data:`SMALL_COUNTS` rows."""
    return prepare(mastodon_db, moto_servers, fresh_bucket_name, counts=SMALL_COUNTS)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``mastodon-s3-sync run ARGS`` to completion, its output captured."""
    return run_cli("run", *args, env=env)
