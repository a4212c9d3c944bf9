"""Loading generated rows fast: one ``COPY ... FROM STDIN`` per table, streamed in chunks."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pg8000.exceptions import DatabaseError
from pg8000.native import Connection, identifier

from mastodon_s3_sync.demo.schema import SchemaVersion, table_columns

COPY_CHUNK_ROWS = 3000


def insert_rows(
    conn: Connection,
    table: str,
    rows: Iterable[Mapping[str, object]],
    version: SchemaVersion = SchemaVersion.CURRENT,
) -> int:
    """Load ``rows`` into ``table`` with one COPY in its own transaction; return how many.

    The first row's keys decide the columns; omitted columns take their defaults. Every row
    must have the same keys, all of which must exist in ``table`` in ``version``. Rows are
    converted and sent in chunks while the server loads earlier ones, so memory stays flat.
    Call it outside a transaction.
    """
    known = table_columns(table, version)
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return 0
    columns = tuple(first)
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ValueError(f"{table} has no column {', '.join(unknown)} in {version}")
    copy_sql = f"COPY {table} ({', '.join(identifier(c) for c in columns)}) FROM STDIN"
    stream = _CopyStream(_chain_first(first, iterator), columns)
    conn.run("START TRANSACTION")
    try:
        try:
            conn.run(copy_sql, stream=stream)
        except DatabaseError:
            stream.raise_failure()
            raise
        stream.raise_failure()
        _advance_id_sequence(conn, table, columns)
    except BaseException:
        conn.run("ROLLBACK")
        raise
    conn.run("COMMIT")
    return stream.rows


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_str(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _copy_datetime(value: datetime) -> str:
    # Mastodon's columns are `timestamp without time zone` holding UTC.
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat()


_encode_json = json.JSONEncoder(separators=(",", ":")).encode


def _copy_json(value: object) -> str:
    return _copy_str(_encode_json(value))


# Exact types only: one dict lookup per value keeps a million-row load fast.
_CONVERTERS: dict[type, Callable[[Any], str]] = {
    type(None): lambda _: "\\N",
    str: _copy_str,
    int: int.__repr__,
    bool: lambda v: "t" if v else "f",
    float: float.__repr__,
    datetime: lambda v: v.isoformat() if v.tzinfo is None else _copy_datetime(v),
    dict: _copy_json,
    list: _copy_json,
}


def _convert_other(value: object) -> str:
    """Subclasses (enums, ...) and rarer types, which the exact-type lookup misses."""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return _copy_datetime(value)
    if isinstance(value, date | Decimal):
        return str(value)
    if isinstance(value, str):
        return _copy_str(str.__str__(value))
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, dict | list):
        return _copy_json(value)
    raise TypeError(f"cannot COPY a value of type {type(value).__name__}: {value!r}")


class _CopyStream:
    """COPY text-format chunks for pg8000's ``stream=``, remembering a bad row's error.

    pg8000 cannot abort a COPY from the client side, so on a bad row the stream ends with a
    line no valid COPY data contains (a NUL byte): the server rejects the COPY, the
    connection stays usable, and :meth:`raise_failure` re-raises the row's error.
    """

    def __init__(self, rows: Iterator[Mapping[str, object]], columns: tuple[str, ...]) -> None:
        self._rows = rows
        self._columns = columns
        self._failure: Exception | None = None
        self.rows = 0

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._chunks()
        except Exception as exc:
            self._failure = exc
            yield "\x00\n"

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _chunks(self) -> Iterator[str]:
        columns = self._columns
        width = len(columns)
        get_values = operator.itemgetter(*columns)
        converters = _CONVERTERS
        chunk: list[str] = []
        for row in self._rows:
            if len(row) != width:
                raise ValueError(f"row {self.rows + 1} has columns {sorted(row)}, not {columns}")
            try:
                values = get_values(row)
            except KeyError as exc:
                raise ValueError(f"row {self.rows + 1} lacks column {exc}") from None
            if width == 1:
                values = (values,)
            chunk.append("\t".join([converters.get(type(v), _convert_other)(v) for v in values]))
            self.rows += 1
            if len(chunk) == COPY_CHUNK_ROWS:
                chunk.append("")  # every line ends with a newline, the last one too
                yield "\n".join(chunk)
                chunk.clear()
        if chunk:
            chunk.append("")
            yield "\n".join(chunk)


def _advance_id_sequence(conn: Connection, table: str, columns: tuple[str, ...]) -> None:
    """After explicit ids, move a bigserial's sequence past them so plain INSERTs work."""
    if "id" not in columns:
        return
    conn.run(
        f"SELECT setval(seq, GREATEST((SELECT max(id) FROM {table}), 1)) "
        f"FROM pg_get_serial_sequence(:table, 'id') AS seq WHERE seq IS NOT NULL",
        table=table,
    )


def _chain_first(
    first: Mapping[str, object], rest: Iterator[Mapping[str, object]]
) -> Iterator[Mapping[str, object]]:
    yield first
    yield from rest
