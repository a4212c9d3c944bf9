"""The embedded default: a whole Mastodon media migration on this machine.

A throwaway PostgreSQL holds a generated small Mastodon; two local S3 servers stand for
the old and the new provider. The source bucket is filled as Mastodon would have filled
it, including a suspended account's private media, users' private archive downloads, the
server's thumbnail, mascot, favicon and app icons, legacy placements and rows whose files
are gone, and a few objects no row references. The CLI then runs the real ``run``,
``verify`` and ``orphans`` against it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pg8000.native
import tomli_w

from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.demo.media import SeedManifest, create_bucket, seed_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.rows import LOCAL_DOMAIN
from mastodon_s3_sync.demo.s3servers import LocalS3Server, MotoS3Server
from mastodon_s3_sync.demo.schema import SchemaVersion, create_schema, has_table
from mastodon_s3_sync.demo.seed import seed_database
from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.mastodon.models import uploaded_private
from mastodon_s3_sync.storage.disk import DiskObjects, disk_client
from mastodon_s3_sync.storage.protocol import PRIVATE, acl_class
from mastodon_s3_sync.storage.s3 import BotoObjects

# One row per site upload the release knows: thumbnail, mascot, and from 4.3 favicon and
# app icon. ``imports`` is seeded on schemas that still have the table (before 4.4).
_OTHER_COUNTS = {"site_uploads": 4, "preview_card_providers": 12, "backups": 5, "imports": 3}
DEMO_COUNTS = {
    "accounts": 200,
    "media_attachments": 400,
    "custom_emojis": 40,
    "preview_cards": 150,
    **_OTHER_COUNTS,
}
QUICK_COUNTS = {
    "accounts": 30,
    "media_attachments": 60,
    "custom_emojis": 8,
    "preview_cards": 20,
    **_OTHER_COUNTS,
}
"""``demo --quick``: the same story in a few seconds (the test suite runs it)."""
SUSPENDED_MEDIA = 12
"""Media rows given to the suspended account: their objects are private."""
MISSING_EVERY = 45
GONE_TYPES = (
    RecordType.ACCOUNTS,
    RecordType.MEDIA_ATTACHMENTS,
    RecordType.CUSTOM_EMOJIS,
    RecordType.PREVIEW_CARDS,
)
"""Where rows outliving their files is common (storage spec §6); the instance's own uploads,
provider icons, archives and imports stay whole, so the demo shows every kind copied."""
LEGACY_EVERY = 60
LEFTOVERS = {
    # What 4.3 left when 4.4 dropped the imports table: no row references them any more.
    "imports/data/000/000/001/original/following_accounts.csv": 812,
    "imports/data/000/000/002/original/blocked_domains.csv": 240,
    # An upload whose row is gone (deleted, or the upload failed half way).
    "media_attachments/files/000/000/999/original/0123456789abcdef.png": 20_480,
    # A file an admin put there by hand, outside Mastodon's folders.
    "by-hand/database-2024-06-01.sql.gz": 4_096,
}
"""Objects in the source bucket that no row references (``orphans`` finds exactly these)."""
DATABASE = "mastodon_production"
SOURCE_BUCKET, DESTINATION_BUCKET = "old-provider-media", "new-provider-media"
NO_ACL_BUCKET = "new-provider-no-acls"
"""A second destination, copied to with ``--acl none`` as to R2: private objects are withheld."""


@dataclass
class Sandbox:
    """What the demo started, and where to find it."""

    postgres: LocalPostgres
    source: LocalS3Server | Path
    """The old provider, or Mastodon's local ``public/system`` (``demo --from-disk``)."""
    destination: LocalS3Server
    config: Path
    rows: dict[str, int]
    manifest: SeedManifest
    leftovers: dict[str, int]
    """Keys (and sizes) in the source bucket that no row references."""

    def describe(self) -> str:
        """Connection details, for ``--keep`` and for the log."""
        source = self.source
        where = (
            source if isinstance(source, Path) else f"s3://{SOURCE_BUCKET} at {source.endpoint_url}"
        )
        return "\n".join(
            [
                f"database:    {self.postgres.url(DATABASE)}",
                f"source:      {where}",
                f"destination: s3://{DESTINATION_BUCKET} at {self.destination.endpoint_url}",
                f"credentials: {self.destination.access_key_id} / "
                f"{self.destination.secret_access_key}",
                f"config:      {self.config}",
            ]
        )

    @property
    def public_url(self) -> str:
        """Where anyone reads the destination bucket (what ``S3_ALIAS_HOST`` would be)."""
        return f"{self.destination.endpoint_url}/{DESTINATION_BUCKET}"

    def private_objects_still_private(self) -> dict[RecordType, tuple[int, int]]:
        """Per type: (private objects at the source, how many are private at the
        destination)."""
        objects = BotoObjects(self.destination.client(), DESTINATION_BUCKET)
        counts: dict[RecordType, tuple[int, int]] = {}
        for seeded in self.manifest.objects.values():
            if seeded.acl == PRIVATE:
                private, kept = counts.get(seeded.ref.record_type, (0, 0))
                kept += acl_class(objects, seeded.key) == PRIVATE
                counts[seeded.ref.record_type] = (private + 1, kept)
        return counts


# Sequential ids repeat across tables (emoji 3, backup 3, ...), and the seeded bucket makes
# every object of a private id private: the suspended account and its media are snowflakes.
_SNOWFLAKES = 2**32


def _suspend_one_account(conn: pg8000.native.Connection) -> set[int]:
    """Suspend a local account and give it some media: Mastodon made all of it private."""
    run = conn.run
    [[account_id]] = run(
        "SELECT id FROM accounts WHERE domain IS NULL AND avatar_file_name IS NOT NULL "
        "AND id > :floor ORDER BY id LIMIT 1",
        floor=_SNOWFLAKES,
    )
    run("UPDATE accounts SET suspended_at = now() WHERE id = :id", id=account_id)
    media = run(
        "SELECT id FROM media_attachments WHERE remote_url = '' AND file_file_name <> '' "
        "AND id > :floor ORDER BY id LIMIT :n",
        floor=_SNOWFLAKES,
        n=SUSPENDED_MEDIA,
    )
    media_ids = [row[0] for row in media]
    run(
        "UPDATE media_attachments SET account_id = :a WHERE id = ANY(:ids)",
        a=account_id,
        ids=media_ids,
    )
    return {int(account_id), *(int(media_id) for media_id in media_ids)}


def _refs(catalog: Catalog) -> list[ObjectRef]:
    return [
        ref
        for record_type in RecordType
        for row in catalog.walk(record_type, CatalogFilter())
        for ref in row.objects
    ]


def _align_file_sizes(conn: pg8000.native.Connection, manifest: SeedManifest) -> None:
    """Set each row's ``*_file_size`` to the original object actually seeded (small ones,
    to keep the demo quick), so that ``plan``'s bytes and ``run``'s agree."""
    try:
        for seeded in manifest.objects.values():
            ref = seeded.ref
            if ref.style != "original":
                continue
            # Table and column come from the layout's own names, never from input.
            conn.run(
                f"UPDATE {ref.record_type} SET {ref.attachment}_file_size = :size WHERE id = :id",
                size=seeded.size,
                id=ref.record_id,
            )
    finally:
        conn.close()


@contextlib.contextmanager
def sandbox(
    work_dir: Path,
    counts: dict[str, int] = DEMO_COUNTS,
    version: SchemaVersion = SchemaVersion.CURRENT,
    *,
    from_disk: bool = False,
) -> Iterator[Sandbox]:
    """Start and fill everything (``counts`` rows per table, a database shaped as in
    ``version``; the media in a bucket, or ``from_disk`` in a Mastodon's local
    ``public/system`` found through its ``.env.production``); stop it all on exit."""
    with contextlib.ExitStack() as running:
        postgres = running.enter_context(LocalPostgres())
        destination = running.enter_context(MotoS3Server())
        source: LocalS3Server | Path
        if from_disk:
            source = work_dir / "live" / "public" / "system"
            source.mkdir(parents=True)
            target, name = disk_client(DiskObjects(source)), str(source)
        else:
            source = running.enter_context(MotoS3Server())
            target, name = source.client(), SOURCE_BUCKET
            create_bucket(target, SOURCE_BUCKET)
        postgres.create_database(DATABASE)
        conn = postgres.connect(DATABASE)
        try:
            create_schema(conn, version)
            rows = dict(seed_database(conn, version, counts, seed=2026))
            private = _suspend_one_account(conn)
            catalog = Catalog(conn, page_size=1000)
            refs = _refs(catalog)
            # Backups are uploaded private from 4.2 (storage spec §5).
            private_types = {t for t in RecordType if uploaded_private(t, catalog.release())}
        finally:
            conn.close()
        create_bucket(destination.client(), DESTINATION_BUCKET)
        create_bucket(destination.client(), NO_ACL_BUCKET)
        manifest = seed_bucket(
            target,
            name,
            refs,
            seed=2026,
            private_record_ids=private,
            private_types=private_types,
            missing_every=MISSING_EVERY,
            gone_types=GONE_TYPES,
            legacy_every=LEGACY_EVERY,
        )
        # A release with an imports table references what is under imports/: not leftovers.
        leftovers = {
            key: size
            for key, size in LEFTOVERS.items()
            if not (key.startswith("imports/") and has_table("imports", version))
        }
        for key, size in leftovers.items():
            target.put_object(Bucket=name, Key=key, Body=b"\0" * size)
        _align_file_sizes(postgres.connect(DATABASE), manifest)
        config = work_dir / "mastodon-s3-sync.toml"
        new = destination.bucket_settings(DESTINATION_BUCKET)
        if isinstance(source, Path):
            config.write_text(_local_storage_config(work_dir, postgres, new))
        else:
            config.write_text(
                config_toml(postgres.url(DATABASE), source.bucket_settings(SOURCE_BUCKET), new)
            )
        yield Sandbox(postgres, source, destination, config, rows, manifest, leftovers)


def _local_storage_config(work_dir: Path, postgres: LocalPostgres, new: BucketSettings) -> str:
    """A Mastodon on local storage: its ``.env.production`` (no S3) beside ``public/system``,
    and a config file that names it and the new bucket."""
    env = work_dir / "live" / ".env.production"
    env.write_text(
        f"LOCAL_DOMAIN={LOCAL_DOMAIN}\nDB_HOST={postgres.host}\nDB_PORT={postgres.port}\n"
        f'DB_NAME={DATABASE}\nDB_USER={postgres.user}\nDB_PASS="{postgres.password}"\n'
    )
    destination = {key: value for key, value in asdict(new).items() if value not in (None, "")}
    return tomli_w.dumps({"mastodon_env": str(env), "destination": destination})
