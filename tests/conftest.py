"""Shared fixtures: one throwaway PostgreSQL cluster, and fresh Mastodon-shaped databases."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import pg8000.native
import pytest

from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.schema import SchemaVersion, create_schema


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
