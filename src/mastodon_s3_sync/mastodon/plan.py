"""The dry run: every canonical key a migration would copy, and a per-type summary."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TextIO

from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter, SkippedType
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.mastodon.models import TYPE_WIDTH


class Progress(Protocol):
    """A progress display for one type (tqdm bars satisfy it)."""

    def update(self, n: int) -> object: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[RecordType, int], Progress]
"""Given a type and its row count, returns its progress display."""


@dataclass
class TypeSummary:
    """Counts for one record type; ``private`` objects are those Mastodon made private;
    ``last_id`` is where ``--after-id`` would resume."""

    record_type: RecordType
    rows: int = 0
    objects: int = 0
    private: int = 0
    known_bytes: int = 0
    objects_with_known_size: int = 0
    last_id: int | None = None


def write_plan(
    catalog: Catalog,
    record_types: Iterable[RecordType],
    filt: CatalogFilter,
    out: TextIO | None,
    progress: ProgressFactory | None = None,
) -> list[TypeSummary]:
    """Write each canonical key on its own line to ``out`` (None: count only)."""
    summaries = []
    for record_type in record_types:
        summary = TypeSummary(record_type)
        bar = progress(record_type, catalog.count_rows(record_type, filt)) if progress else None
        for row in catalog.walk(record_type, filt):
            summary.rows += 1
            summary.last_id = row.record_id
            summary.objects += len(row.objects)
            for ref in row.objects:
                summary.private += ref.private
                if ref.expected_size is not None:
                    summary.known_bytes += ref.expected_size
                    summary.objects_with_known_size += 1
            if out is not None and row.objects:
                out.write("".join(f"{ref.key}\n" for ref in row.objects))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        summaries.append(summary)
    return summaries


def format_bytes(count: int) -> str:
    """``812 B``, ``12.3 MiB``: a byte count for people."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_summary(
    summaries: list[TypeSummary], seconds: float, left_out: Sequence[SkippedType] = ()
) -> str:
    """A table for humans: rows, objects (private ones among them) and known bytes per type,
    then the total, then a line per kind left out and why."""
    header = (
        f"{'type':<{TYPE_WIDTH}} {'rows':>12} {'objects':>12} {'private':>10} "
        f"{'known bytes':>14} {'last id':>20}"
    )
    lines = [header, "-" * len(header)]
    for item in summaries:
        last_id = "-" if item.last_id is None else str(item.last_id)
        lines.append(
            f"{item.record_type!s:<{TYPE_WIDTH}} {item.rows:>12,} {item.objects:>12,} "
            f"{item.private:>10,} {format_bytes(item.known_bytes):>14} {last_id:>20}"
        )
    rows = sum(item.rows for item in summaries)
    objects = sum(item.objects for item in summaries)
    private = sum(item.private for item in summaries)
    known = sum(item.known_bytes for item in summaries)
    lines.append(
        f"{'total':<{TYPE_WIDTH}} {rows:>12,} {objects:>12,} {private:>10,} "
        f"{format_bytes(known):>14}"
    )
    sized = sum(item.objects_with_known_size for item in summaries)
    lines.append(
        f"{rows:,} rows read in {seconds:.1f} s ({rows / seconds if seconds else 0:,.0f} rows/s); "
        f"sizes known for {sized:,} of {objects:,} objects "
        "(Mastodon records the size of originals only)"
    )
    lines.extend(map(str, left_out))
    return "\n".join(lines)
