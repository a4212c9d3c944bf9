"""Walking Mastodon's tables by primary key, page by page, into object references.

Keyset pagination (``WHERE id > :after ORDER BY id LIMIT :n``) on the primary key
keeps memory flat whatever the table size and lets a run resume from any id. Only
the columns the layout needs are read, and optional columns (absent in older
Mastodon versions) are detected once and read as NULL. Tables only some releases have
(``preview_card_providers`` from 3.5, ``imports`` up to 4.3) yield nothing when absent, and
:meth:`Catalog.skipped_types` says so. The release itself, which some styles depend on, is
read from columns that appeared with it (:data:`RELEASE_MARKERS`).

Which media rows Mastodon made private (a suspended account's, a removed status's) is read
with the page: one LEFT JOIN per page to ``accounts`` and ``statuses``, only on releases
whose rules need it (:func:`~mastodon_s3_sync.mastodon.models.made_private`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pg8000.exceptions

from mastodon_s3_sync.errors import DatabaseError
from mastodon_s3_sync.mastodon.database import SqlConnection, server_error_text
from mastodon_s3_sync.mastodon.layout import (
    MODELS,
    ObjectRef,
    RecordType,
    is_local,
    objects_for_row,
)
from mastodon_s3_sync.mastodon.models import (
    ACCOUNT_SUSPENDED,
    OLDEST_RELEASE,
    PRIVATE_BACKUPS_SINCE,
    PRIVATE_REMOVED_MEDIA_SINCE,
    PRIVATE_SUSPENDED_MEDIA_SINCE,
    SITE_UPLOAD_ICONS_SINCE,
    SITE_UPLOAD_STYLES_SINCE,
    STATUS_REMOVED,
    Release,
)

# Columns each model needs; the attachment's own columns are added per attachment.
_RECORD_COLUMNS: dict[RecordType, tuple[str, ...]] = {
    RecordType.ACCOUNTS: ("id", "domain"),
    RecordType.MEDIA_ATTACHMENTS: ("id", "remote_url"),
    RecordType.CUSTOM_EMOJIS: ("id", "domain"),
    RecordType.PREVIEW_CARDS: ("id",),
    RecordType.SITE_UPLOADS: ("id", "var"),
    RecordType.PREVIEW_CARD_PROVIDERS: ("id",),
    RecordType.BACKUPS: ("id",),
    RecordType.IMPORTS: ("id",),
}
_ATTACHMENT_SUFFIXES = ("file_name", "content_type", "file_size", "updated_at")
# Attachments that older Mastodon versions do not have (thumbnails arrived in 3.2.0).
_OPTIONAL_ATTACHMENTS = frozenset({(RecordType.MEDIA_ATTACHMENTS, "thumbnail")})
# Tables that only some releases have, and what their absence means.
OPTIONAL_TABLES: dict[RecordType, str] = {
    # db/migrate/20211031031021_create_preview_card_providers.rb, commit 6e50134a42 (#16917)
    RecordType.PREVIEW_CARD_PROVIDERS: "no table (Mastodon before 3.5)",
    # db/migrate/20250410144908_drop_imports.rb, commit 4c2f64907b (#34371)
    RecordType.IMPORTS: "no table (Mastodon 4.4+)",
}
RELEASE_MARKERS: tuple[tuple[Release, str, str], ...] = (
    # db/migrate/20201017233919_add_suspension_origin_to_accounts.rb, commit 3134691948 (#14989)
    (PRIVATE_SUSPENDED_MEDIA_SINCE, RecordType.ACCOUNTS, "suspension_origin"),
    # db/migrate/20221012181003_add_blurhash_to_site_uploads.rb, commit b04633a961 (#19348)
    (SITE_UPLOAD_STYLES_SINCE, RecordType.SITE_UPLOADS, "blurhash"),
    # db/migrate/20230814223300_add_indexable_to_accounts.rb, commit 90ec88d58b (#26485)
    (PRIVATE_BACKUPS_SINCE, RecordType.ACCOUNTS, "indexable"),
    # db/migrate/20240522041528_add_author_account_id_to_preview_cards.rb, commit
    # 128987eded (#30398)
    (SITE_UPLOAD_ICONS_SINCE, RecordType.PREVIEW_CARDS, "author_account_id"),
    # db/migrate/20250428095029_add_quote_approval_policy_to_statuses.rb (4.4.0)
    (PRIVATE_REMOVED_MEDIA_SINCE, "statuses", "quote_approval_policy"),
)
"""Columns that first appeared in a release: the newest one present dates the schema."""
# ``remote_url`` with a non-space character: a superset test for Ruby's ``present?``.
_REMOTE_URL_PRESENT = "remote_url ~ '[^[:space:]]'"
# Rows that are not remote media cache (``--skip-remote-cache``); other types hold none.
_LOCAL_ROWS = {
    RecordType.ACCOUNTS: "domain IS NULL",
    RecordType.MEDIA_ATTACHMENTS: f"NOT {_REMOTE_URL_PRESENT}",
    RecordType.CUSTOM_EMOJIS: "domain IS NULL",
}


@dataclass(frozen=True)
class CatalogFilter:
    """Which rows to walk: ``after_id`` exclusive, ``limit`` rows, ``since`` naive UTC."""

    after_id: int | None = None
    limit: int | None = None
    since: datetime | None = None
    skip_remote_cache: bool = False


@dataclass(frozen=True, slots=True)
class SkippedType:
    """A type the database has no table for: nothing to enumerate, and why."""

    record_type: RecordType
    reason: str

    def __str__(self) -> str:
        return f"{self.record_type}: {self.reason}"


@dataclass(frozen=True, slots=True)
class RowObjects:
    """The objects of one row (possibly none, e.g. a whitespace-only file name)."""

    record_id: int
    objects: list[ObjectRef]


@dataclass(frozen=True)
class _Join:
    """A column a LEFT JOIN adds to each row: ``expression`` over ``alias``, as ``name``."""

    name: str
    table: str
    alias: str
    on: str
    expression: str

    def sql(self) -> str:
        return f"LEFT JOIN {self.table} {self.alias} ON {self.alias}.id = page.{self.on}"


# Media privacy (§5): the account's suspension from 3.3, the status's removal from 4.4.
_PRIVACY_JOINS = (
    (
        PRIVATE_SUSPENDED_MEDIA_SINCE,
        _Join(ACCOUNT_SUSPENDED, "accounts", "a", "account_id", "a.suspended_at IS NOT NULL"),
    ),
    (
        PRIVATE_REMOVED_MEDIA_SINCE,
        _Join(STATUS_REMOVED, "statuses", "s", "status_id", "s.deleted_at IS NOT NULL"),
    ),
)


@dataclass(frozen=True)
class _Query:
    """A table's SELECT list and WHERE conditions (without the id bound), and the joins
    that add columns to each page."""

    table: str
    columns: tuple[str, ...]
    conditions: tuple[str, ...]
    joins: tuple[_Join, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The names of a page row's values, in order."""
        return (*self.columns, *(join.name for join in self.joins))

    def page_sql(self, *, bounded: bool) -> str:
        conditions = ("id > :after", *self.conditions) if bounded else self.conditions
        keys = (join.on for join in self.joins if join.on not in self.columns)
        read = dict.fromkeys((*self.columns, *keys))
        page = (
            f"SELECT {', '.join(read)} FROM {self.table} "
            f"WHERE {' AND '.join(conditions)} ORDER BY id LIMIT :n"
        )
        if not self.joins:
            return page
        selected = [f"page.{column}" for column in self.columns]
        selected += [f"({join.expression})" for join in self.joins]
        return (
            f"SELECT {', '.join(selected)} FROM ({page}) page "
            f"{' '.join(join.sql() for join in self.joins)} ORDER BY page.id"
        )

    def count_sql(self, *, bounded: bool) -> str:
        conditions = ("id > :after", *self.conditions) if bounded else self.conditions
        return f"SELECT count(*) FROM {self.table} WHERE {' AND '.join(conditions)}"


class Catalog:
    """Enumerates the objects of one Mastodon database."""

    def __init__(self, conn: SqlConnection, *, page_size: int, key_prefix: str = "") -> None:
        self._conn = conn
        self._page_size = page_size
        self._key_prefix = key_prefix
        self._columns: dict[str, frozenset[str]] = {}
        self._release: Release | None = None

    @property
    def key_prefix(self) -> str:
        """Mastodon's ``S3_KEY_PREFIX`` the keys are computed with."""
        return self._key_prefix

    def _run(self, sql: str, **params: object) -> list[list[Any]]:
        try:
            return self._conn.run(sql, **params) or []
        except (pg8000.exceptions.InterfaceError, OSError) as error:
            raise DatabaseError(f"lost the database connection: {error}") from None
        except pg8000.exceptions.DatabaseError as error:
            raise DatabaseError(f"database query failed: {server_error_text(error)}") from None

    def table_columns(self, table: str) -> frozenset[str]:
        """The table's column names, none for an absent optional table (see
        :meth:`skipped_types`); DatabaseError when a table every release has is not there."""
        if table not in self._columns:
            rows = self._run(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:table) "
                "AND attnum > 0 AND NOT attisdropped",
                table=str(table),
            )
            if not rows and table not in OPTIONAL_TABLES:
                raise DatabaseError(
                    f"the database has no table {table!s}: is this Mastodon's database? "
                    "Check the database name (--database-url or [database] name)"
                )
            self._columns[table] = frozenset(str(row[0]) for row in rows)
        return self._columns[table]

    def skip_reason(self, record_type: RecordType) -> str | None:
        """Why the database has nothing of this type (an absent optional table), or None."""
        if record_type in OPTIONAL_TABLES and not self.table_columns(record_type):
            return OPTIONAL_TABLES[record_type]
        return None

    def skipped_types(self, record_types: Iterable[RecordType]) -> list[SkippedType]:
        """The types among ``record_types`` the database has no table for, with why: one
        line each for a summary (``imports: no table (Mastodon 4.4+)``)."""
        return [
            SkippedType(record_type, reason)
            for record_type in record_types
            if (reason := self.skip_reason(record_type)) is not None
        ]

    def release(self) -> Release:
        """The newest release whose marker column the schema has (a lower bound: the
        database is that release or later), from :data:`RELEASE_MARKERS`."""
        if self._release is None:
            present = [
                since
                for since, table, column in RELEASE_MARKERS
                if column in self.table_columns(table)
            ]
            self._release = max(present, default=OLDEST_RELEASE)
        return self._release

    def _query(self, record_type: RecordType, filt: CatalogFilter) -> _Query:
        present = self.table_columns(record_type)
        columns = list(_RECORD_COLUMNS[record_type])
        missing = [column for column in columns if column not in present]
        has_file: list[str] = []
        for attachment in MODELS[record_type].attachments:
            file_name = f"{attachment.name}_file_name"
            if file_name not in present:
                if (record_type, attachment.name) in _OPTIONAL_ATTACHMENTS:
                    continue
                missing.append(file_name)
            # Timestamps are only read for --since: decoding them costs a fifth of a walk.
            suffixes = _ATTACHMENT_SUFFIXES if filt.since is not None else _ATTACHMENT_SUFFIXES[:3]
            wanted = [f"{attachment.name}_{suffix}" for suffix in suffixes]
            if attachment.schema_version_column is not None:
                wanted.append(attachment.schema_version_column)
            columns.extend(column for column in wanted if column in present)
            changed = (
                f" AND ({attachment.name}_updated_at IS NULL "
                f"OR {attachment.name}_updated_at >= :since)"
                if filt.since is not None and f"{attachment.name}_updated_at" in present
                else ""
            )
            has_file.append(f"({file_name} <> ''{changed})")
        if missing:
            raise DatabaseError(
                f"table {record_type!s} has no column {', '.join(missing)}: "
                "this does not look like a Mastodon database (3.1 or later)"
            )
        conditions = [f"({' OR '.join(has_file)})"]
        if filt.skip_remote_cache and record_type in _LOCAL_ROWS:
            conditions.append(_LOCAL_ROWS[record_type])
        joins: tuple[_Join, ...] = ()
        if record_type == RecordType.MEDIA_ATTACHMENTS:
            release = self.release()
            joins = tuple(join for since, join in _PRIVACY_JOINS if release >= since)
        return _Query(str(record_type), tuple(columns), tuple(conditions), joins)

    @staticmethod
    def _params(filt: CatalogFilter) -> dict[str, object]:
        return {"since": filt.since} if filt.since is not None else {}

    def count_rows(self, record_type: RecordType, filt: CatalogFilter) -> int:
        """How many rows :meth:`walk` will read (one COUNT query; for progress and ETA)."""
        if filt.skip_remote_cache and record_type == RecordType.PREVIEW_CARDS:
            return 0
        if self.skip_reason(record_type) is not None:
            return 0
        query = self._query(record_type, filt)
        params = self._params(filt)
        if filt.after_id is not None:
            params["after"] = filt.after_id
        [[count]] = self._run(query.count_sql(bounded=filt.after_id is not None), **params)
        return min(int(count), filt.limit) if filt.limit is not None else int(count)

    def walk(self, record_type: RecordType, filt: CatalogFilter) -> Iterator[RowObjects]:
        """Yield each matching row's objects in id order, one page in memory at a time."""
        if filt.skip_remote_cache and record_type == RecordType.PREVIEW_CARDS:
            return  # every preview card is remote cache (PreviewCard#local? is false)
        if self.skip_reason(record_type) is not None:
            return
        query = self._query(record_type, filt)
        params = self._params(filt)
        release = self.release()
        after, remaining = filt.after_id, filt.limit
        while remaining is None or remaining > 0:
            size = self._page_size if remaining is None else min(self._page_size, remaining)
            if after is None:
                page = self._run(query.page_sql(bounded=False), n=size, **params)
            else:
                page = self._run(query.page_sql(bounded=True), after=after, n=size, **params)
            for values in page:
                row = dict(zip(query.names, values, strict=True))
                if filt.skip_remote_cache and not is_local(record_type, row):
                    objects = []
                else:
                    objects = objects_for_row(
                        record_type,
                        row,
                        key_prefix=self._key_prefix,
                        since=filt.since,
                        release=release,
                    )
                yield RowObjects(int(row["id"]), objects)
            if len(page) < size:
                return
            after = int(page[-1][0])
            if remaining is not None:
                remaining -= len(page)
