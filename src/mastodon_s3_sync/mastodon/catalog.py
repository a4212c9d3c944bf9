"""Walking Mastodon's tables by primary key, page by page, into object references.

Keyset pagination (``WHERE id > :after ORDER BY id LIMIT :n``) on the primary key
keeps memory flat whatever the table size and lets a run resume from any id. Only
the columns the layout needs are read, and optional columns (absent in older
Mastodon versions) are detected once and read as NULL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pg8000.exceptions

from mastodon_s3_sync.errors import DatabaseError
from mastodon_s3_sync.mastodon.database import SqlConnection
from mastodon_s3_sync.mastodon.layout import (
    MODELS,
    ObjectRef,
    RecordType,
    is_local,
    objects_for_row,
)

# Columns each model needs; the attachment's own columns are added per attachment.
_RECORD_COLUMNS: dict[RecordType, tuple[str, ...]] = {
    RecordType.ACCOUNTS: ("id", "domain"),
    RecordType.MEDIA_ATTACHMENTS: ("id", "remote_url"),
    RecordType.CUSTOM_EMOJIS: ("id", "domain"),
    RecordType.PREVIEW_CARDS: ("id",),
}
_ATTACHMENT_SUFFIXES = ("file_name", "content_type", "file_size", "updated_at")
# Attachments that older Mastodon versions do not have (thumbnails arrived in 3.2.0).
_OPTIONAL_ATTACHMENTS = frozenset({(RecordType.MEDIA_ATTACHMENTS, "thumbnail")})
# ``remote_url`` with a non-space character: a superset test for Ruby's ``present?``.
_REMOTE_URL_PRESENT = "remote_url ~ '[^[:space:]]'"


@dataclass(frozen=True)
class CatalogFilter:
    """Which rows to walk: ``after_id`` exclusive, ``limit`` rows, ``since`` naive UTC."""

    after_id: int | None = None
    limit: int | None = None
    since: datetime | None = None
    skip_remote_cache: bool = False


@dataclass(frozen=True, slots=True)
class RowObjects:
    """The objects of one row (possibly none, e.g. a whitespace-only file name)."""

    record_id: int
    objects: list[ObjectRef]


@dataclass(frozen=True)
class _Query:
    """A table's SELECT list and WHERE conditions (without the id bound)."""

    table: str
    columns: tuple[str, ...]
    conditions: tuple[str, ...]

    def page_sql(self, *, bounded: bool) -> str:
        conditions = ("id > :after", *self.conditions) if bounded else self.conditions
        return (
            f"SELECT {', '.join(self.columns)} FROM {self.table} "
            f"WHERE {' AND '.join(conditions)} ORDER BY id LIMIT :n"
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
        self._columns: dict[RecordType, frozenset[str]] = {}

    def _run(self, sql: str, **params: object) -> list[list[Any]]:
        try:
            return self._conn.run(sql, **params) or []
        except (pg8000.exceptions.InterfaceError, OSError) as error:
            raise DatabaseError(f"lost the database connection: {error}") from None
        except pg8000.exceptions.DatabaseError as error:
            raise DatabaseError(f"database query failed: {error}") from None

    def table_columns(self, record_type: RecordType) -> frozenset[str]:
        """The table's column names; DatabaseError when the table is not there."""
        if record_type not in self._columns:
            rows = self._run(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:table) "
                "AND attnum > 0 AND NOT attisdropped",
                table=str(record_type),
            )
            if not rows:
                raise DatabaseError(
                    f"the database has no table {record_type!s}: is this Mastodon's database? "
                    "Check the database name (--database-url or [database] name)"
                )
            self._columns[record_type] = frozenset(str(row[0]) for row in rows)
        return self._columns[record_type]

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
        if filt.skip_remote_cache:
            if record_type == RecordType.MEDIA_ATTACHMENTS:
                conditions.append(f"NOT {_REMOTE_URL_PRESENT}")
            else:
                conditions.append("domain IS NULL")
        return _Query(str(record_type), tuple(columns), tuple(conditions))

    @staticmethod
    def _params(filt: CatalogFilter) -> dict[str, object]:
        return {"since": filt.since} if filt.since is not None else {}

    def count_rows(self, record_type: RecordType, filt: CatalogFilter) -> int:
        """How many rows :meth:`walk` will read (one COUNT query; for progress and ETA)."""
        if filt.skip_remote_cache and record_type == RecordType.PREVIEW_CARDS:
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
        query = self._query(record_type, filt)
        params = self._params(filt)
        after, remaining = filt.after_id, filt.limit
        while remaining is None or remaining > 0:
            size = self._page_size if remaining is None else min(self._page_size, remaining)
            if after is None:
                page = self._run(query.page_sql(bounded=False), n=size, **params)
            else:
                page = self._run(query.page_sql(bounded=True), after=after, n=size, **params)
            for values in page:
                row = dict(zip(query.columns, values, strict=True))
                if filt.skip_remote_cache and not is_local(record_type, row):
                    objects = []
                else:
                    objects = objects_for_row(
                        record_type, row, key_prefix=self._key_prefix, since=filt.since
                    )
                yield RowObjects(int(row["id"]), objects)
            if len(page) < size:
                return
            after = int(page[-1][0])
            if remaining is not None:
                remaining -= len(page)
