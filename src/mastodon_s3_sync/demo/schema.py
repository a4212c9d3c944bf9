"""Mastodon-shaped tables for the sandbox database.

Only the tables whose attachments live in object storage are created (and ``statuses``,
whose removals make media private), with Mastodon's
real column names and types (``db/schema.rb``) and the indexes keyset scans rely on. Columns
and tables that appeared (or went) in later Mastodon releases are tagged with the first
:class:`SchemaVersion` that has them (or no longer has them), so one definition serves every
supported version.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pg8000.native import Connection, identifier

__all__ = [
    "STORAGE_SCHEMA",
    "TABLES",
    "SchemaVersion",
    "create_schema",
    "drop_schema",
    "has_table",
    "table_columns",
]


class SchemaVersion(enum.Enum):
    """Database shapes of the Mastodon releases the copier supports, oldest first."""

    #: Mastodon 3.1.0 to 3.1.3: no ``*_storage_schema_version`` and no ``thumbnail_*`` columns.
    V3_1 = "3.1"
    #: Mastodon 3.5: thumbnails, ``*_storage_schema_version``, ``preview_card_providers``.
    V3_5 = "3.5"
    #: Mastodon 4.2: ``accounts.indexable``, ``site_uploads.blurhash`` (4.0), private backups.
    V4_2 = "4.2"
    #: Mastodon 4.3: ``preview_cards.author_account_id``, favicon and app icons; the last
    #: release with ``imports``.
    V4_3 = "4.3"
    #: Mastodon 4.4 to 4.5: ``imports`` dropped, no thumbnail schema version yet.
    V4_5 = "4.5"
    #: Mastodon 4.6 and later: ``media_attachments.thumbnail_storage_schema_version`` exists.
    CURRENT = "4.6"

    def has(self, since: SchemaVersion) -> bool:
        """Whether this version includes what was introduced in ``since``."""
        return _RANK[self] >= _RANK[since]


_RANK = {version: rank for rank, version in enumerate(SchemaVersion)}

_OLDEST = SchemaVersion.V3_1
STORAGE_SCHEMA = SchemaVersion.V3_5
"""The first shape with ``*_storage_schema_version`` (3.1.4), thumbnails (3.2.0) and snowflake
ids (3.2.0, 3.4.0): generated rows of older shapes have none of them."""
# Added in 4.6.0 (migration 20251117023614).
_THUMBNAIL_SCHEMA = SchemaVersion.CURRENT


@dataclass(frozen=True)
class _Column:
    name: str
    sql_type: str
    since: SchemaVersion = _OLDEST


@dataclass(frozen=True)
class _Index:
    name: str
    definition: str
    since: SchemaVersion = _OLDEST


@dataclass(frozen=True)
class _Table:
    columns: tuple[_Column, ...]
    indexes: tuple[_Index, ...]
    since: SchemaVersion = _OLDEST
    until: SchemaVersion | None = None
    """The first version without the table (None: every version since ``since`` has it)."""

    def in_version(self, version: SchemaVersion) -> bool:
        return version.has(self.since) and (self.until is None or not version.has(self.until))


_TS = "timestamp without time zone"
_TS_NOT_NULL = f"{_TS} NOT NULL"
_STRING = "character varying"
_STRING_NOT_NULL = "character varying NOT NULL DEFAULT ''"


def _attachment(
    prefix: str, *, remote_url: str | None, since: SchemaVersion, size_type: str = "integer"
) -> list[_Column]:
    """Paperclip's four columns for one attachment, plus Mastodon's companions."""
    columns = [
        _Column(f"{prefix}_file_name", _STRING, since),
        _Column(f"{prefix}_content_type", _STRING, since),
        _Column(f"{prefix}_file_size", size_type, since),
        _Column(f"{prefix}_updated_at", _TS, since),
    ]
    if remote_url is not None:
        columns.append(_Column(f"{prefix}_remote_url", remote_url, since))
    return columns


# Column order follows Mastodon's db/schema.rb so that `SELECT *` looks familiar.
_TABLES: dict[str, _Table] = {
    "accounts": _Table(
        columns=(
            _Column("id", "bigint NOT NULL"),
            _Column("username", _STRING_NOT_NULL),
            _Column("domain", _STRING),
            _Column("created_at", _TS_NOT_NULL),
            _Column("updated_at", _TS_NOT_NULL),
            _Column("note", "text NOT NULL DEFAULT ''"),
            _Column("display_name", _STRING_NOT_NULL),
            _Column("uri", _STRING_NOT_NULL),
            _Column("url", _STRING),
            *_attachment("avatar", remote_url=None, since=_OLDEST),
            *_attachment("header", remote_url=None, since=_OLDEST),
            _Column("avatar_remote_url", _STRING),
            _Column("locked", "boolean NOT NULL DEFAULT false"),
            _Column("header_remote_url", _STRING_NOT_NULL),
            _Column("actor_type", _STRING),
            _Column("silenced_at", _TS),
            _Column("suspended_at", _TS),
            # Migration 20201017233919 (3.3.0): the catalog's 3.3 marker.
            _Column("suspension_origin", "integer", SchemaVersion.V3_5),
            _Column("avatar_storage_schema_version", "integer", STORAGE_SCHEMA),
            _Column("header_storage_schema_version", "integer", STORAGE_SCHEMA),
            # Migration 20230814223300 (4.2.0): the catalog's 4.2 marker.
            _Column("indexable", "boolean NOT NULL DEFAULT false", SchemaVersion.V4_2),
        ),
        indexes=(
            # Migration 20230524190515 (4.2.0).
            _Index(
                "index_accounts_on_domain_and_id",
                "INDEX {name} ON accounts (domain, id)",
                SchemaVersion.V4_2,
            ),
        ),
    ),
    "media_attachments": _Table(
        columns=(
            _Column("id", "bigint NOT NULL"),
            _Column("status_id", "bigint"),
            *_attachment("file", remote_url=None, since=_OLDEST),
            _Column("remote_url", _STRING_NOT_NULL),
            _Column("created_at", _TS_NOT_NULL),
            _Column("updated_at", _TS_NOT_NULL),
            _Column("shortcode", _STRING),
            _Column("type", "integer NOT NULL DEFAULT 0"),
            _Column("file_meta", "json"),
            _Column("account_id", "bigint"),
            _Column("description", "text"),
            _Column("scheduled_status_id", "bigint"),
            _Column("blurhash", _STRING),
            _Column("processing", "integer"),
            _Column("file_storage_schema_version", "integer", STORAGE_SCHEMA),
            *_attachment("thumbnail", remote_url=_STRING, since=STORAGE_SCHEMA),
            _Column("thumbnail_storage_schema_version", "integer", _THUMBNAIL_SCHEMA),
        ),
        indexes=(
            _Index(
                "index_media_attachments_on_account_id_and_status_id",
                "INDEX {name} ON media_attachments (account_id, status_id DESC)",
            ),
            _Index(
                "index_media_attachments_on_scheduled_status_id",
                "INDEX {name} ON media_attachments (scheduled_status_id) "
                "WHERE (scheduled_status_id IS NOT NULL)",
            ),
            _Index(
                "index_media_attachments_on_shortcode",
                "UNIQUE INDEX {name} ON media_attachments (shortcode text_pattern_ops) "
                "WHERE (shortcode IS NOT NULL)",
            ),
            _Index(
                "index_media_attachments_on_status_id",
                "INDEX {name} ON media_attachments (status_id)",
            ),
        ),
    ),
    "custom_emojis": _Table(
        columns=(
            _Column("id", "bigserial NOT NULL"),
            _Column("shortcode", _STRING_NOT_NULL),
            _Column("domain", _STRING),
            *_attachment("image", remote_url=None, since=_OLDEST),
            _Column("created_at", _TS_NOT_NULL),
            _Column("updated_at", _TS_NOT_NULL),
            _Column("disabled", "boolean NOT NULL DEFAULT false"),
            _Column("uri", _STRING),
            _Column("image_remote_url", _STRING),
            _Column("visible_in_picker", "boolean NOT NULL DEFAULT true"),
            _Column("category_id", "bigint"),
            _Column("image_storage_schema_version", "integer", STORAGE_SCHEMA),
        ),
        indexes=(
            _Index(
                "index_custom_emojis_on_shortcode_and_domain",
                "UNIQUE INDEX {name} ON custom_emojis (shortcode, domain)",
            ),
        ),
    ),
    "preview_cards": _Table(
        columns=(
            _Column("id", "bigserial NOT NULL"),
            _Column("url", _STRING_NOT_NULL),
            _Column("title", _STRING_NOT_NULL),
            _Column("description", _STRING_NOT_NULL),
            *_attachment("image", remote_url=None, since=_OLDEST),
            _Column("type", "integer NOT NULL DEFAULT 0"),
            _Column("html", "text NOT NULL DEFAULT ''"),
            _Column("author_name", _STRING_NOT_NULL),
            _Column("author_url", _STRING_NOT_NULL),
            _Column("provider_name", _STRING_NOT_NULL),
            _Column("provider_url", _STRING_NOT_NULL),
            _Column("width", "integer NOT NULL DEFAULT 0"),
            _Column("height", "integer NOT NULL DEFAULT 0"),
            _Column("created_at", _TS_NOT_NULL),
            _Column("updated_at", _TS_NOT_NULL),
            _Column("embed_url", _STRING_NOT_NULL),
            _Column("image_storage_schema_version", "integer", STORAGE_SCHEMA),
            _Column("blurhash", _STRING),
            # Migration 20240522041528 (4.3.0): the catalog's 4.3 marker.
            _Column("author_account_id", "bigint", SchemaVersion.V4_3),
            # Migration 20260303144409 (4.6.0).
            _Column("unverified_author_account_id", "bigint", SchemaVersion.CURRENT),
        ),
        indexes=(
            _Index("index_preview_cards_on_url", "UNIQUE INDEX {name} ON preview_cards (url)"),
            _Index(
                "index_preview_cards_on_author_account_id",
                "INDEX {name} ON preview_cards (author_account_id) "
                "WHERE (author_account_id IS NOT NULL)",
                SchemaVersion.V4_3,
            ),
            _Index(
                "index_preview_cards_on_unverified_author_account_id_and_id",
                "INDEX {name} ON preview_cards (unverified_author_account_id, id) "
                "WHERE (unverified_author_account_id IS NOT NULL)",
                SchemaVersion.CURRENT,
            ),
        ),
    ),
    # The other attachments in the bucket (storage spec §2.7).
    "site_uploads": _Table(
        columns=(
            _Column("id", "bigserial NOT NULL"),
            _Column("var", _STRING_NOT_NULL),
            *_attachment("file", remote_url=None, since=_OLDEST),
            _Column("meta", "json"),
            _Column("created_at", _TS_NOT_NULL),
            _Column("updated_at", _TS_NOT_NULL),
            # Migration 20221012181003 (4.0.0): the catalog's 4.0 marker.
            _Column("blurhash", _STRING, SchemaVersion.V4_2),
        ),
        indexes=(_Index("index_site_uploads_on_var", "UNIQUE INDEX {name} ON site_uploads (var)"),),
    ),
    "preview_card_providers": _Table(
        columns=(
            _Column("id", "bigserial NOT NULL"),
            _Column("domain", _STRING_NOT_NULL),
            *_attachment("icon", remote_url=None, since=SchemaVersion.V3_5, size_type="bigint"),
            _Column("trendable", "boolean"),
            _Column("reviewed_at", _TS),
            _Column("requested_review_at", _TS),
            _Column("created_at", "timestamp(6) without time zone NOT NULL"),
            _Column("updated_at", "timestamp(6) without time zone NOT NULL"),
        ),
        indexes=(
            _Index(
                "index_preview_card_providers_on_domain",
                "UNIQUE INDEX {name} ON preview_card_providers (domain)",
            ),
        ),
        # Migration 20211031031021 (3.5.0).
        since=SchemaVersion.V3_5,
    ),
    "backups": _Table(
        columns=(
            _Column("id", "bigserial NOT NULL"),
            _Column("user_id", "bigint"),
            _Column("dump_file_name", _STRING),
            _Column("dump_content_type", _STRING),
            _Column("dump_updated_at", _TS),
            _Column("processed", "boolean NOT NULL DEFAULT false"),
            _Column("created_at", _TS_NOT_NULL),
            _Column("updated_at", _TS_NOT_NULL),
            _Column("dump_file_size", "bigint"),
        ),
        indexes=(
            # Commit c47cdf6e17 (#25647, 4.2.0).
            _Index(
                "index_backups_on_user_id",
                "INDEX {name} ON backups (user_id)",
                SchemaVersion.V4_2,
            ),
        ),
    ),
    "imports": _Table(
        columns=(
            _Column("id", "bigserial NOT NULL"),
            _Column("type", "integer NOT NULL"),
            _Column("approved", "boolean NOT NULL DEFAULT false"),
            _Column("created_at", _TS_NOT_NULL),
            _Column("updated_at", _TS_NOT_NULL),
            *_attachment("data", remote_url=None, since=_OLDEST),
            _Column("account_id", "bigint NOT NULL"),
            _Column("overwrite", "boolean NOT NULL DEFAULT false"),
        ),
        indexes=(),
        # Migration 20250410144908_drop_imports (4.4.0).
        until=SchemaVersion.V4_5,
    ),
    "statuses": _Table(
        columns=(
            _Column("id", "bigint NOT NULL"),
            _Column("uri", _STRING),
            _Column("text", "text NOT NULL DEFAULT ''"),
            _Column("created_at", _TS_NOT_NULL),
            _Column("updated_at", _TS_NOT_NULL),
            _Column("visibility", "integer NOT NULL DEFAULT 0"),
            _Column("account_id", "bigint NOT NULL"),
            _Column("deleted_at", _TS),
            # Migration 20250428095029 (4.4.0): the catalog's 4.4 marker.
            _Column("quote_approval_policy", "integer NOT NULL DEFAULT 0", SchemaVersion.V4_5),
        ),
        indexes=(),
    ),
}

#: The tables the copier reads, in the order the sandbox creates them (some versions lack some).
TABLES: tuple[str, ...] = tuple(_TABLES)


def _table(name: str) -> _Table:
    try:
        return _TABLES[name]
    except KeyError:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}") from None


def has_table(table: str, version: SchemaVersion = SchemaVersion.CURRENT) -> bool:
    """Whether ``version`` has ``table`` (``imports`` went in 4.4, for instance)."""
    return _table(table).in_version(version)


def table_columns(table: str, version: SchemaVersion = SchemaVersion.CURRENT) -> tuple[str, ...]:
    """Column names of ``table`` in ``version``, in table order (none if it lacks the table)."""
    spec = _table(table)
    if not spec.in_version(version):
        return ()
    return tuple(c.name for c in spec.columns if version.has(c.since))


def _table_ddl(table: str, version: SchemaVersion) -> list[str]:
    """The CREATE TABLE and CREATE INDEX statements for ``table`` in ``version``."""
    spec = _table(table)
    body = ",\n    ".join(
        f"{identifier(c.name)} {c.sql_type}" for c in spec.columns if version.has(c.since)
    )
    statements = [
        f"CREATE TABLE {table} (\n    {body},\n    CONSTRAINT {table}_pkey PRIMARY KEY (id)\n)"
    ]
    statements += [
        "CREATE " + index.definition.format(name=index.name)
        for index in spec.indexes
        if version.has(index.since)
    ]
    return statements


def create_schema(conn: Connection, version: SchemaVersion = SchemaVersion.CURRENT) -> None:
    """Create Mastodon's media tables, shaped as in ``version``, in one transaction."""
    conn.run("START TRANSACTION")
    try:
        for table in (table for table in TABLES if has_table(table, version)):
            for statement in _table_ddl(table, version):
                conn.run(statement)
    except BaseException:
        conn.run("ROLLBACK")
        raise
    conn.run("COMMIT")


def drop_schema(conn: Connection) -> None:
    """Drop the tables :func:`create_schema` creates, if they exist."""
    conn.run("DROP TABLE IF EXISTS " + ", ".join(TABLES))
