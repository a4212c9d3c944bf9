"""Mastodon databases for the server tiers: one throwaway PostgreSQL cluster per session,
fresh Mastodon-shaped databases per test, and what the catalog finds in them.

A pytest plugin (``pytest_plugins`` in tests/conftest.py): its fixtures are everyone's.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import pg8000.native
import pytest

from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.schema import SchemaVersion, create_schema
from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType

UNSAFE_MEDIA_ID = 10**15
UNSAFE_FILE_NAME = "../../etc/passwd.png"


@dataclass(frozen=True)
class MastodonDb:
    """An empty database with Mastodon's media tables, and an open connection to it."""

    url: str
    conn: pg8000.native.Connection
    name: str
    version: SchemaVersion


class MastodonDbFactory(Protocol):
    """The ``mastodon_db`` fixture: call it to get a fresh database."""

    def __call__(self, version: SchemaVersion = SchemaVersion.CURRENT) -> MastodonDb: ...


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A PostgreSQL cluster on 127.0.0.1, started once per test session."""
    with LocalPostgres() as cluster:
        yield cluster


@pytest.fixture
def mastodon_db(postgres: LocalPostgres) -> Iterator[MastodonDbFactory]:
    """Create uniquely named databases with the schema of a given Mastodon version."""
    created: list[MastodonDb] = []

    def make(version: SchemaVersion = SchemaVersion.CURRENT) -> MastodonDb:
        name = f"mastodon_{uuid.uuid4().hex[:12]}"
        url = postgres.create_database(name)
        db = MastodonDb(url=url, conn=postgres.connect(name), name=name, version=version)
        created.append(db)
        create_schema(db.conn, version)
        return db

    yield make
    for db in created:
        # A test may leave its connection broken; the drop below disconnects it anyway.
        with contextlib.suppress(Exception):
            db.conn.close()
        postgres.drop_database(db.name)


def all_refs(db: MastodonDb) -> list[ObjectRef]:
    """Every object reference the catalog finds in ``db``, type by type."""
    catalog = Catalog(db.conn, page_size=100)
    return [
        ref
        for record_type in RecordType
        for row in catalog.walk(record_type, CatalogFilter())
        for ref in row.objects
    ]


def expected_keys(db: MastodonDb) -> Counter[str]:
    """How often each key is referenced in ``db``."""
    return Counter(ref.key for ref in all_refs(db))


def insert_unsafe_media(db: MastodonDb) -> None:
    """A media attachment whose file name makes keys with ``..`` segments."""
    db.conn.run(
        "INSERT INTO media_attachments (id, type, file_file_name, file_content_type, "
        "file_file_size, created_at, updated_at) VALUES (:id, 0, :name, 'image/png', 100, "
        ":now, :now)",
        id=UNSAFE_MEDIA_ID,
        name=UNSAFE_FILE_NAME,
        now=datetime(2026, 1, 1),
    )


def insert_videos(conn: pg8000.native.Connection, ids: Iterable[int], size: int) -> None:
    """Video media rows (``<id as 16 hex digits>.mp4``) of ``size`` bytes: large enough,
    as the tests choose it, for the multipart path."""
    for media_id in ids:
        conn.run(
            "INSERT INTO media_attachments (id, type, file_file_name, file_content_type, "
            "file_file_size, created_at, updated_at) VALUES (:id, 2, :name, 'video/mp4', "
            ":size, :now, :now)",
            id=media_id,
            name=f"{media_id:016x}.mp4",
            size=size,
            now=datetime(2026, 1, 1),
        )
