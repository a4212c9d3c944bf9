"""The run's record: outcome counts, and every missing or failed key with its reason.

Missing and failed keys are spooled to a temporary file as they come, so a run with
millions of them keeps flat memory; the JSON report is streamed from it at the end.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mastodon_s3_sync.copying.results import CopyResult
from mastodon_s3_sync.outcomes import Outcome, RunTotals

REPORT_VERSION = 1
SHOWN_KEYS = 10
"""Missing/failed keys printed in the final summary; the report file has all of them."""


class JsonLines:
    """A spool of JSON entries on disk, and the first few kept in memory for a summary."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.count = 0

    def add(self, entry: dict[str, Any]) -> None:
        """Spool one entry."""
        self._file.write(json.dumps(entry) + "\n")
        self.count += 1

    def entries(self) -> Iterator[str]:
        """The spooled entries, as JSON strings."""
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            yield line.rstrip("\n")
        self._file.seek(0, 2)

    def close(self) -> None:
        """Remove the spool file."""
        self._file.close()


class OutcomeLog:
    """Collects missing and failed keys (spooled to disk) for the report and summary."""

    def __init__(self) -> None:
        self.spools = {outcome: JsonLines() for outcome in (Outcome.MISSING, Outcome.FAILED)}
        self.first: dict[Outcome, list[CopyResult]] = {Outcome.MISSING: [], Outcome.FAILED: []}

    def record(self, result: CopyResult) -> None:
        """Keep the result if it is missing or failed."""
        spool = self.spools.get(result.outcome)
        if spool is None:
            return
        ref = result.ref
        spool.add(
            {
                "key": ref.key,
                "type": str(ref.record_type),
                "record_id": str(ref.record_id),  # snowflakes exceed 2^53: not numbers
                "attachment": ref.attachment,
                "style": ref.style,
                "reason": result.reason,
            }
        )
        if len(self.first[result.outcome]) < SHOWN_KEYS:
            self.first[result.outcome].append(result)

    def close(self) -> None:
        """Remove the spool files."""
        for spool in self.spools.values():
            spool.close()


def write_json_report(path: Path, header: dict[str, Any], lists: dict[str, JsonLines]) -> None:
    """Write ``header`` plus each spooled list as one JSON object, atomically (a temporary
    file renamed into place), streaming the lists from disk."""
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", encoding="utf-8") as out:
        out.write(json.dumps(header, indent=2)[:-2])  # leave the object open
        for name, spool in lists.items():
            out.write(f',\n  "{name}": [')
            for index, entry in enumerate(spool.entries()):
                out.write(("," if index else "") + f"\n    {entry}")
            out.write("\n  ]")
        out.write("\n}\n")
    partial.replace(path)


def write_report(
    path: Path,
    totals: RunTotals,
    log: OutcomeLog,
    started: datetime,
    context: dict[str, Any],
) -> None:
    """The run's JSON report: counts per type, then every missing and failed key."""
    whole = totals.total()
    header: dict[str, Any] = {
        "version": REPORT_VERSION,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "interrupted": totals.interrupted,
        **context,
        "copied": whole.copied,
        "skipped": whole.skipped,
        "missing": whole.missing,
        "failed": whole.failed,
        "bytes_copied": whole.bytes_copied,
        "by_type": {str(t): vars(tally) for t, tally in totals.by_type.items()},
    }
    write_json_report(
        path,
        header,
        {
            "missing_keys": log.spools[Outcome.MISSING],
            "failed_keys": log.spools[Outcome.FAILED],
        },
    )


def format_totals(totals: RunTotals, log: OutcomeLog, seconds: float) -> str:
    """The closing table: outcomes per type, then a few missing/failed keys."""
    header = (
        f"{'type':<18} {'copied':>10} {'skipped':>10} {'missing':>10} {'failed':>10} "
        f"{'bytes copied':>14}"
    )
    lines = [header, "-" * len(header)]
    rows: list[tuple[str, Any]] = [(str(t), tally) for t, tally in totals.by_type.items()]
    rows.append(("total", totals.total()))
    for name, tally in rows:
        lines.append(
            f"{name:<18} {tally.copied:>10,} {tally.skipped:>10,} {tally.missing:>10,} "
            f"{tally.failed:>10,} {tally.bytes_copied / 1024**2:>10,.1f} MiB"
        )
    whole = totals.total()
    rate = whole.done / seconds if seconds else 0.0
    lines.append(f"{whole.done:,} objects in {seconds:.1f} s ({rate:,.1f} objects/s)")
    for outcome, count in ((Outcome.MISSING, whole.missing), (Outcome.FAILED, whole.failed)):
        if count:
            lines.append(f"{outcome.value} ({count:,}; all of them in --report):")
            lines.extend(f"  {result.ref.key}  {result.reason}" for result in log.first[outcome])
    if totals.interrupted:
        lines.append("interrupted: a re-run resumes, skipping what is already copied")
    return "\n".join(lines)
