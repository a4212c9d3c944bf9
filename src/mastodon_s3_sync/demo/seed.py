"""Deterministic, realistic rows for the sandbox's Mastodon tables, and seeding a database.

:func:`generate_rows` only computes rows (dicts keyed by column name); ``loader.insert_rows``
loads any such rows with ``COPY ... FROM STDIN``. The generated data mirrors what the copier
meets in production (see docs/mastodon-storage.md): snowflake and legacy sequential ids, local
and remote rows, every content type Mastodon stores, rows whose files were cleared, remote
media never downloaded, legacy rows outside ``cache/``, and a handful of odd-but-legal values.
The same seed always gives the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta

from pg8000.native import Connection

from mastodon_s3_sync.demo.loader import insert_rows
from mastodon_s3_sync.demo.rows import Row
from mastodon_s3_sync.demo.schema import TABLES, SchemaVersion, has_table, table_columns
from mastodon_s3_sync.demo.seed_media import media_attachments, preview_cards
from mastodon_s3_sync.demo.seed_other import (
    backups,
    imports,
    preview_card_providers,
    site_uploads,
)
from mastodon_s3_sync.demo.seed_profiles import accounts, custom_emojis

__all__ = [
    "DEFAULT_COUNTS",
    "generate_rows",
    "seed_database",
]


#: A small instance's worth of rows, for demos.
DEFAULT_COUNTS: Mapping[str, int] = {
    "accounts": 2_000,
    "media_attachments": 20_000,
    "custom_emojis": 500,
    "preview_cards": 3_000,
}


_Generator = Callable[[random.Random, int, SchemaVersion, int | None], Iterator[Row]]


def statuses(
    rnd: random.Random, count: int, _version: SchemaVersion, start_id: int | None
) -> Iterator[Row]:
    """Statuses (every column): a few removed but kept for moderation (``deleted_at``)."""
    created = datetime(2024, 1, 1)
    for n in range(count):
        removed = rnd.random() < 0.05
        yield {
            "id": (start_id or 1) + n,
            "uri": None,
            "text": "",
            "created_at": created,
            "updated_at": created,
            "visibility": 0,
            "account_id": 1,
            "deleted_at": created + timedelta(days=1) if removed else None,
            "quote_approval_policy": 0,
        }


_GENERATORS: dict[str, _Generator] = {
    "accounts": accounts,
    "media_attachments": media_attachments,
    "custom_emojis": custom_emojis,
    "preview_cards": preview_cards,
    "site_uploads": site_uploads,
    "preview_card_providers": preview_card_providers,
    "backups": backups,
    "imports": imports,
    "statuses": statuses,
}


def generate_rows(
    table: str,
    count: int,
    *,
    seed: int = 0,
    version: SchemaVersion = SchemaVersion.CURRENT,
    start_id: int | None = None,
) -> Iterator[Row]:
    """Yield ``count`` realistic rows for ``table``, ids strictly increasing.

    Rows hold exactly the columns ``table`` has in ``version`` (every column of the newest
    version that has the table, when ``version`` lacks it). The same arguments always give
    the same rows. ``start_id`` is the lowest id to use (for appending to a seeded table);
    without it, ``accounts`` starts with the instance actor (id -99), and ``accounts`` and
    ``media_attachments`` start with a few legacy sequential ids before the snowflakes
    (databases on 3.1 hold only sequential ids).
    """
    if table not in _GENERATORS:
        raise ValueError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    # A string seed keeps tables independent and does not depend on PYTHONHASHSEED.
    rnd = random.Random(f"{table}:{seed}")  # noqa: S311 - test data, not secrets
    rows = _GENERATORS[table](rnd, count, version, start_id)
    if not has_table(table, version):
        return rows
    present = set(table_columns(table, version))
    absent = [c for c in table_columns(table) if c not in present]
    return _without(rows, absent) if absent else rows


def _without(rows: Iterator[Row], columns: list[str]) -> Iterator[Row]:
    """Drop columns an older schema version lacks (generators fill every column)."""
    for row in rows:
        for column in columns:
            del row[column]
        yield row


def seed_database(
    conn: Connection,
    version: SchemaVersion = SchemaVersion.CURRENT,
    counts: Mapping[str, int] = DEFAULT_COUNTS,
    seed: int = 0,
) -> dict[str, int]:
    """Generate and insert ``counts[table]`` rows per table; return the rows inserted.

    Tables ``version`` does not have (``imports`` from 4.4, ...) are left out.
    """
    unknown = set(counts) - set(TABLES)
    if unknown:
        raise ValueError(f"unknown tables: {', '.join(sorted(unknown))}")
    return {
        table: insert_rows(
            conn, table, generate_rows(table, counts[table], seed=seed, version=version), version
        )
        for table in TABLES
        if table in counts and has_table(table, version)
    }
