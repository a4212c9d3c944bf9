"""The sandbox against a real PostgreSQL: cluster, schema per Mastodon version, seed data."""

from __future__ import annotations

import itertools
import shutil
import socket
import sys
import types
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pg8000.exceptions
import pg8000.native
import pytest

from mastodon_s3_sync.demo import pg_binaries
from mastodon_s3_sync.demo.loader import insert_rows
from mastodon_s3_sync.demo.pg_binaries import LocalPostgresError, find_postgres_binaries
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.schema import TABLES, SchemaVersion, has_table, table_columns
from mastodon_s3_sync.demo.seed import generate_rows, seed_database
from tests.support.mastodon_db import MastodonDbFactory

pytestmark = pytest.mark.integration

V3_1, V3_5, V4_2, V4_3, V4_5, CURRENT = SchemaVersion
ALL = set(SchemaVersion)
INT4_MAX = 2**31 - 1


def int_of(value: object) -> int:
    assert isinstance(value, int)
    return value


def text_of(value: object) -> str:
    assert isinstance(value, str)
    return value


def columns_in_db(conn: pg8000.native.Connection, table: str) -> list[str]:
    rows = conn.run(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = :table ORDER BY ordinal_position",
        table=table,
    )
    return [r[0] for r in rows]


# -- the cluster ---------------------------------------------------------------------------


def test_cluster_accepts_connections_as_the_mastodon_superuser(postgres: LocalPostgres) -> None:
    conn = postgres.connect()
    try:
        [[user, is_superuser]] = conn.run(
            "SELECT current_user, usesuper FROM pg_user WHERE usename = current_user"
        )
        [[listen]] = conn.run("SHOW listen_addresses")
        [[port]] = conn.run("SHOW port")
    finally:
        conn.close()
    assert (user, is_superuser) == ("mastodon", True)
    assert listen == "127.0.0.1"
    assert int(port) == postgres.port


def test_url_carries_working_credentials(postgres: LocalPostgres) -> None:
    # given
    parts = urlsplit(postgres.url("postgres"))
    # when
    conn = pg8000.native.Connection(
        unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        host=parts.hostname,
        port=parts.port,
        database=parts.path.lstrip("/"),
    )
    # then
    try:
        assert conn.run("SELECT 1") == [[1]]
    finally:
        conn.close()
    assert parts.scheme == "postgresql"
    assert (parts.hostname, parts.port) == ("127.0.0.1", postgres.port)


def test_wrong_password_is_rejected(postgres: LocalPostgres) -> None:
    with pytest.raises(pg8000.exceptions.DatabaseError) as excinfo:
        pg8000.native.Connection(
            postgres.user,
            password=postgres.password + "x",
            host=postgres.host,
            port=postgres.port,
            database="postgres",
        )
    assert excinfo.value.args[0]["C"] == "28P01"  # invalid_password


def test_create_and_drop_database(postgres: LocalPostgres) -> None:
    def exists(name: str) -> bool:
        conn = postgres.connect()
        try:
            return bool(conn.run("SELECT 1 FROM pg_database WHERE datname = :n", n=name))
        finally:
            conn.close()

    url = postgres.create_database("sandbox_scratch")
    assert url.endswith(f"@127.0.0.1:{postgres.port}/sandbox_scratch")
    assert exists("sandbox_scratch")

    postgres.drop_database("sandbox_scratch")
    postgres.drop_database("sandbox_scratch")  # dropping twice is fine

    assert not exists("sandbox_scratch")


def test_stop_is_idempotent_and_removes_the_temporary_directory() -> None:
    # given
    cluster = LocalPostgres().start()
    log_dir = cluster.log_path.parent
    port = cluster.port
    # when
    cluster.stop()
    cluster.stop()
    # then
    assert not cluster.running
    assert not log_dir.exists()
    with pytest.raises(pg8000.exceptions.InterfaceError, match="Can't create a connection"):
        pg8000.native.Connection(
            cluster.user, password=cluster.password, host=cluster.host, port=port, timeout=2
        )


def test_a_busy_port_fails_with_the_server_log() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cluster = LocalPostgres(port=busy.getsockname()[1])

        with pytest.raises(LocalPostgresError, match=r"(?s)did not start.*Address already in use"):
            cluster.start()

    assert not cluster.running
    cluster.stop()


def test_without_postgresql_the_error_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(pg_binaries, "_DEBIAN_BINDIR_GLOB", "/nonexistent/*/bin")
    monkeypatch.setitem(sys.modules, "pgserver", None)  # makes `import pgserver` fail

    with pytest.raises(LocalPostgresError, match="pip install pgserver"):
        find_postgres_binaries()


def test_falls_back_to_the_binaries_bundled_with_pgserver(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bindir = tmp_path / "pgserver" / "pginstall" / "bin"
    bindir.mkdir(parents=True)
    for name in ("initdb", "pg_ctl"):
        (bindir / name).write_text("#!/bin/sh\n")
        (bindir / name).chmod(0o755)
    fake = types.ModuleType("pgserver")
    fake.__file__ = str(tmp_path / "pgserver" / "__init__.py")
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(pg_binaries, "_DEBIAN_BINDIR_GLOB", "/nonexistent/*/bin")
    monkeypatch.setitem(sys.modules, "pgserver", fake)

    found = find_postgres_binaries()

    assert (found.initdb, found.pg_ctl) == (bindir / "initdb", bindir / "pg_ctl")


# -- the schema ----------------------------------------------------------------------------

# Columns whose presence depends on the Mastodon version (docs/mastodon-storage.md §1.5, §3,
# §2.7; the catalog's release markers).
VERSIONED_COLUMNS = {
    ("media_attachments", "thumbnail_storage_schema_version"): {CURRENT},
    ("media_attachments", "thumbnail_file_name"): ALL - {V3_1},
    ("media_attachments", "thumbnail_remote_url"): ALL - {V3_1},
    ("media_attachments", "file_storage_schema_version"): ALL - {V3_1},
    ("accounts", "avatar_storage_schema_version"): ALL - {V3_1},
    ("accounts", "header_storage_schema_version"): ALL - {V3_1},
    ("custom_emojis", "image_storage_schema_version"): ALL - {V3_1},
    ("preview_cards", "image_storage_schema_version"): ALL - {V3_1},
    ("accounts", "indexable"): {V4_2, V4_3, V4_5, CURRENT},
    ("site_uploads", "blurhash"): {V4_2, V4_3, V4_5, CURRENT},
    ("preview_cards", "author_account_id"): {V4_3, V4_5, CURRENT},
    ("preview_cards", "unverified_author_account_id"): {CURRENT},
    ("preview_card_providers", "icon_file_name"): ALL - {V3_1},
    ("imports", "data_file_name"): {V3_1, V3_5, V4_2, V4_3},
    ("site_uploads", "file_file_name"): ALL,
    ("backups", "dump_file_name"): ALL,
    ("media_attachments", "remote_url"): ALL,
    ("media_attachments", "file_file_name"): ALL,
    ("media_attachments", "processing"): ALL,
    ("accounts", "avatar_remote_url"): ALL,
    ("custom_emojis", "image_remote_url"): ALL,
    ("media_attachments", "file_remote_url"): set(),
    ("preview_cards", "image_remote_url"): set(),
}


@pytest.mark.parametrize("version", list(SchemaVersion), ids=lambda v: v.name)
def test_schema_columns_match_the_mastodon_version(
    mastodon_db: MastodonDbFactory, version: SchemaVersion
) -> None:
    db = mastodon_db(version)

    actual = {table: columns_in_db(db.conn, table) for table in TABLES}

    for (table, column), versions in VERSIONED_COLUMNS.items():
        assert (column in actual[table]) == (version in versions), (table, column)
    for table in TABLES:
        assert tuple(actual[table]) == table_columns(table, version)
        assert bool(actual[table]) == has_table(table, version)


COLUMN_TYPES = [
    # table, column, data_type, nullable, default
    ("media_attachments", "id", "bigint", "NO", None),
    ("media_attachments", "type", "integer", "NO", "0"),
    ("media_attachments", "remote_url", "character varying", "NO", "''::character varying"),
    ("media_attachments", "file_file_size", "integer", "YES", None),
    ("media_attachments", "file_updated_at", "timestamp without time zone", "YES", None),
    ("media_attachments", "file_meta", "json", "YES", None),
    ("media_attachments", "processing", "integer", "YES", None),
    ("media_attachments", "status_id", "bigint", "YES", None),
    ("media_attachments", "scheduled_status_id", "bigint", "YES", None),
    ("media_attachments", "account_id", "bigint", "YES", None),
    ("media_attachments", "thumbnail_storage_schema_version", "integer", "YES", None),
    ("media_attachments", "created_at", "timestamp without time zone", "NO", None),
    ("accounts", "id", "bigint", "NO", None),
    ("accounts", "username", "character varying", "NO", "''::character varying"),
    ("accounts", "header_remote_url", "character varying", "NO", "''::character varying"),
    ("accounts", "avatar_remote_url", "character varying", "YES", None),
    ("accounts", "avatar_file_size", "integer", "YES", None),
    ("accounts", "suspended_at", "timestamp without time zone", "YES", None),
    ("custom_emojis", "id", "bigint", "NO", "nextval('custom_emojis_id_seq'::regclass)"),
    ("custom_emojis", "shortcode", "character varying", "NO", "''::character varying"),
    ("preview_cards", "id", "bigint", "NO", "nextval('preview_cards_id_seq'::regclass)"),
    ("preview_cards", "url", "character varying", "NO", "''::character varying"),
    ("preview_cards", "type", "integer", "NO", "0"),
    ("site_uploads", "var", "character varying", "NO", "''::character varying"),
    ("site_uploads", "file_file_size", "integer", "YES", None),
    ("preview_card_providers", "icon_file_size", "bigint", "YES", None),
    ("backups", "dump_file_size", "bigint", "YES", None),
    ("backups", "processed", "boolean", "NO", "false"),
]


def test_schema_column_types_match_mastodon(mastodon_db: MastodonDbFactory) -> None:
    db = mastodon_db(CURRENT)
    rows = db.conn.run(
        "SELECT table_name, column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_schema = current_schema()"
    )
    actual = {(r[0], r[1]): tuple(r[2:]) for r in rows}

    for table, column, *expected in COLUMN_TYPES:
        assert actual[(table, column)] == tuple(expected), (table, column)


@pytest.mark.parametrize("version", list(SchemaVersion), ids=lambda v: v.name)
def test_schema_indexes(mastodon_db: MastodonDbFactory, version: SchemaVersion) -> None:
    db = mastodon_db(version)

    rows = db.conn.run("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
    names = {r[0] for r in rows}

    assert {f"{table}_pkey" for table in TABLES if has_table(table, version)} <= names
    assert {
        "index_media_attachments_on_account_id_and_status_id",
        "index_media_attachments_on_status_id",
        "index_media_attachments_on_scheduled_status_id",
        "index_media_attachments_on_shortcode",
        "index_custom_emojis_on_shortcode_and_domain",
        "index_preview_cards_on_url",
    } <= names
    # (domain, id) arrived in 4.2.0.
    assert ("index_accounts_on_domain_and_id" in names) == version.has(V4_2)
    assert "index_site_uploads_on_var" in names


# -- generated rows ------------------------------------------------------------------------


# site_uploads has one row per `var` (a unique column): thumbnail, mascot, favicon, app_icon.
ROWS = {"site_uploads": 2}


@pytest.mark.parametrize("table", TABLES)
def test_generate_rows_is_deterministic_per_seed(table: str) -> None:
    first = list(generate_rows(table, ROWS.get(table, 300), seed=5))

    assert list(generate_rows(table, ROWS.get(table, 300), seed=5)) == first
    assert list(generate_rows(table, ROWS.get(table, 300), seed=6)) != first


@pytest.mark.parametrize("version", list(SchemaVersion), ids=lambda v: v.name)
@pytest.mark.parametrize("table", TABLES)
def test_generate_rows_yields_exactly_the_versions_columns(
    table: str, version: SchemaVersion
) -> None:
    count = ROWS.get(table, 500)
    rows = list(generate_rows(table, count, seed=1, version=version))

    assert len(rows) == count
    # a version without the table gets the newest version's columns
    columns = table_columns(table, version) or table_columns(table, V4_3)
    assert {frozenset(row) for row in rows} == {frozenset(columns)}
    ids = [int_of(row["id"]) for row in rows]
    assert all(a < b for a, b in itertools.pairwise(ids))


def test_generated_media_looks_like_production() -> None:
    rows = list(generate_rows("media_attachments", 5_000, seed=2))

    ids = [int_of(row["id"]) for row in rows]
    assert any(len(str(i)) == 18 for i in ids)  # snowflakes
    assert any(i < 1_000_000 for i in ids)  # legacy sequential ids
    assert {row["type"] for row in rows} == {0, 1, 2, 3, 4}
    remote = [row for row in rows if text_of(row["remote_url"]).strip()]
    assert 0 < len(remote) < len(rows)
    assert any(row["file_storage_schema_version"] is None for row in remote)
    assert any(row["file_file_name"] is None and row["type"] == 3 for row in remote)
    assert any(row["thumbnail_storage_schema_version"] == 1 for row in remote)
    assert all(int_of(row["file_file_size"] or 0) <= INT4_MAX for row in rows)
    # the deliberately odd rows
    assert any(row["file_file_name"] == "" for row in rows)
    assert any(text_of(row["remote_url"]).isspace() for row in rows)
    assert any(row["file_file_name"] and "." not in text_of(row["file_file_name"]) for row in rows)


def test_mastodon_3_1_data_has_only_sequential_ids() -> None:
    for table in TABLES:
        rows = generate_rows(table, ROWS.get(table, 1_000), seed=3, version=V3_1)
        assert all(int_of(row["id"]) < 1_000_000_000 for row in rows), table


def test_start_id_appends_after_existing_rows() -> None:
    existing = list(generate_rows("media_attachments", 200, seed=4))
    start = int_of(existing[-1]["id"]) + 1

    more = list(generate_rows("media_attachments", 200, seed=4, start_id=start))

    assert int_of(more[0]["id"]) >= start


# -- loading rows --------------------------------------------------------------------------


def test_insert_rows_round_trips_generated_media(mastodon_db: MastodonDbFactory) -> None:
    # given
    db = mastodon_db()
    rows = list(generate_rows("media_attachments", 2_000, seed=11))
    # when
    inserted = insert_rows(db.conn, "media_attachments", rows)
    # then
    assert inserted == 2_000
    assert db.conn.run("SELECT count(*) FROM media_attachments") == [[2_000]]
    assert db.conn.run("SELECT max(id)::text FROM media_attachments") == [[str(rows[-1]["id"])]]
    odd = [r for r in rows if r["file_file_name"] == "" or text_of(r["remote_url"]).isspace()]
    columns = (
        "file_file_name",
        "remote_url",
        "file_content_type",
        "file_file_size",
        "file_updated_at",
        "file_meta",
        "file_storage_schema_version",
        "thumbnail_storage_schema_version",
        "type",
    )
    for expected in [rows[0], rows[1_000], rows[-1], *odd]:
        [[id_text, *values]] = db.conn.run(
            f"SELECT id::text, {', '.join(columns)} FROM media_attachments WHERE id = :id",
            id=expected["id"],
        )
        assert id_text == str(expected["id"])
        assert dict(zip(columns, values, strict=True)) == {c: expected[c] for c in columns}


@pytest.mark.parametrize("version", list(SchemaVersion), ids=lambda v: v.name)
def test_seed_database_fills_every_table(
    mastodon_db: MastodonDbFactory, version: SchemaVersion
) -> None:
    db = mastodon_db(version)
    counts = {
        "accounts": 300,
        "media_attachments": 1_000,
        "custom_emojis": 50,
        "preview_cards": 200,
        "site_uploads": 2,
        "preview_card_providers": 20,
        "backups": 10,
        "imports": 5,
    }

    inserted = seed_database(db.conn, version, counts, seed=9)

    # tables the version lacks are left out (providers before 3.5, imports from 4.4)
    expected = {table: n for table, n in counts.items() if has_table(table, version)}
    assert inserted == expected
    assert ("imports" in inserted) == (version in {V3_1, V3_5, V4_2, V4_3})
    assert ("preview_card_providers" in inserted) == (version is not V3_1)
    for table, count in expected.items():
        assert db.conn.run(f"SELECT count(*) FROM {table}") == [[count]]


def test_insert_rows_escapes_text_and_applies_defaults(mastodon_db: MastodonDbFactory) -> None:
    db = mastodon_db()
    when = datetime(2024, 2, 29, 12, 30, 15, 123456)
    tricky = "tab\there\\back\nnew\rline \\N"
    row = {
        "id": 109348123456789012,
        "file_file_name": tricky,
        "created_at": when,
        "updated_at": when,
        "file_meta": {"original": {"note": tricky}},
    }

    insert_rows(db.conn, "media_attachments", [row])

    [[name, meta, created, type_, remote_url]] = db.conn.run(
        "SELECT file_file_name, file_meta, created_at, type, remote_url FROM media_attachments"
    )
    assert (name, meta, created) == (tricky, row["file_meta"], when)
    assert (type_, remote_url) == (0, "")  # column defaults


def test_insert_rows_rejects_columns_the_version_lacks(mastodon_db: MastodonDbFactory) -> None:
    db = mastodon_db(V4_5)
    row = {"id": 1, "thumbnail_storage_schema_version": 1}

    with pytest.raises(ValueError, match="thumbnail_storage_schema_version"):
        insert_rows(db.conn, "media_attachments", [row], V4_5)


def test_insert_rows_bad_row_mid_stream_rolls_back_and_keeps_connection(
    mastodon_db: MastodonDbFactory,
) -> None:
    # given: enough good rows that some were already sent before the bad one
    db = mastodon_db()

    def rows() -> Iterator[dict[str, object]]:
        yield from generate_rows("custom_emojis", 7_000, seed=1)
        yield {"id": 10_000_000}

    # when
    with pytest.raises(ValueError, match="row 7001"):
        insert_rows(db.conn, "custom_emojis", rows())
    # then
    assert db.conn.run("SELECT count(*) FROM custom_emojis") == [[0]]


def test_insert_rows_advances_bigserial_sequences(mastodon_db: MastodonDbFactory) -> None:
    db = mastodon_db()
    insert_rows(db.conn, "custom_emojis", generate_rows("custom_emojis", 20, seed=1))

    [[new_id]] = db.conn.run(
        "INSERT INTO custom_emojis (shortcode, created_at, updated_at) "
        "VALUES ('new', now(), now()) RETURNING id"
    )

    assert new_id == 21
