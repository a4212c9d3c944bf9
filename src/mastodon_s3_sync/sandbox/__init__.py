"""A disposable Mastodon database for tests and demos.

:class:`LocalPostgres` starts a throwaway PostgreSQL cluster on 127.0.0.1,
:func:`create_schema` creates Mastodon's media tables as a given release shapes them, and
:func:`generate_rows` / :func:`insert_rows` fill them with realistic, deterministic rows.
"""

from mastodon_s3_sync.sandbox.postgres import (
    LocalPostgres,
    LocalPostgresError,
    PostgresBinaries,
    find_postgres_binaries,
)
from mastodon_s3_sync.sandbox.schema import (
    TABLES,
    SchemaVersion,
    create_schema,
    drop_schema,
    table_columns,
)
from mastodon_s3_sync.sandbox.seed import (
    DEFAULT_COUNTS,
    LOCAL_DOMAIN,
    generate_rows,
    insert_rows,
    seed_database,
)

__all__ = [
    "DEFAULT_COUNTS",
    "LOCAL_DOMAIN",
    "TABLES",
    "LocalPostgres",
    "LocalPostgresError",
    "PostgresBinaries",
    "SchemaVersion",
    "create_schema",
    "drop_schema",
    "find_postgres_binaries",
    "generate_rows",
    "insert_rows",
    "seed_database",
    "table_columns",
]
