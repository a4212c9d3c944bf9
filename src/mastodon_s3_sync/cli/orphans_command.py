"""``orphans``: what the source bucket holds that no database row references. Never deletes.

The work is :func:`mastodon_s3_sync.copying.orphans.find_orphans`; this prints its tallies
per folder and writes every unreferenced key into the JSON report, streamed from its spool.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import botocore.exceptions

from mastodon_s3_sync.cli.arguments import settings_from_args
from mastodon_s3_sync.cli.preflight import checked_source, open_catalog
from mastodon_s3_sync.cli.report import REPORT_VERSION, bucket_context, write_json_report
from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.copying.orphans import FolderTally, OrphanReport, find_orphans
from mastodon_s3_sync.errors import SyncError
from mastodon_s3_sync.mastodon.catalog import SkippedType
from mastodon_s3_sync.mastodon.plan import format_bytes
from mastodon_s3_sync.mastodon.selection import select
from mastodon_s3_sync.storage.s3 import BotoObjects, make_client


class _OrphanKeys:
    """The report's unreferenced keys as JSON entries (``folder``, ``key``, ``size``)."""

    def __init__(self, report: OrphanReport) -> None:
        self._report = report

    def entries(self) -> Iterator[str]:
        for folder, key, size in self._report.entries():
            yield json.dumps({"folder": folder, "key": key, "size": size})


def run_orphans(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``orphans``: per folder, what no row references; every such key in ``--report``."""
    settings = settings_from_args(args)
    source = checked_source(settings)
    objects = BotoObjects(make_client(source, 1), source.require_bucket("source"))
    started, clock = datetime.now(UTC), time.monotonic()
    try:
        with open_catalog(settings, ()) as catalog:
            left_out = select().left_out(catalog)
            report = find_orphans(catalog, objects)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        raise SyncError(f"orphans stopped: listing the source failed: {error}") from None
    with report:
        print(format_orphans(report, source, time.monotonic() - clock, left_out), file=stderr)
        if args.report:
            write_orphans_report(args.report, report, source, started, left_out)
            print(f"report: {args.report}", file=stderr)
    return 0


def _total(tallies: Sequence[FolderTally]) -> FolderTally:
    total = FolderTally("total")
    counts = [item.name for item in fields(FolderTally) if item.name != "folder"]
    for tally in tallies:
        for name in counts:
            setattr(total, name, getattr(total, name) + getattr(tally, name))
    return total


def format_orphans(
    report: OrphanReport, source: BucketSettings, seconds: float, left_out: Sequence[SkippedType]
) -> str:
    """The closing table: per folder (Mastodon's that hold anything, then the top-level
    folders outside them) objects, bytes, referenced and orphaned; then the totals."""
    listed = [tally for tally in report.folders if tally.objects]
    everything = [*report.folders, *report.outside]
    width = max([len("folder"), *(len(tally.folder or "(top level)") for tally in everything)])
    header = f"{'folder':<{width}} {'objects':>10} {'bytes':>11} {'referenced':>11} "
    header += f"{'orphans':>10} {'orphan bytes':>13}"

    def row(tally: FolderTally, referenced: str) -> str:
        name = tally.folder or "(top level)"
        return (
            f"{name:<{width}} {tally.objects:>10,} {format_bytes(tally.bytes):>11} "
            f"{referenced:>11} {tally.orphans:>10,} {format_bytes(tally.orphan_bytes):>13}"
        )

    lines = [f"s3://{source.bucket}: what no database row references (nothing was deleted)"]
    lines += [header, "-" * len(header)]
    lines += [row(tally, f"{tally.referenced:,}") for tally in listed]
    if empty := len(report.folders) - len(listed):
        lines.append(f"({empty} of Mastodon's {len(report.folders)} folders hold nothing)")
    if report.outside:
        lines.append("outside Mastodon's folders (no row can reference these):")
        lines += [row(tally, "-") for tally in report.outside]
    total = _total(everything)
    lines.append(row(total, f"{total.referenced:,}"))
    lines.append(
        f"unreferenced: {total.orphans:,} objects, {format_bytes(total.orphan_bytes)}: what a "
        "copy of everything listed would copy needlessly (keys in --report)"
    )
    if total.at_alternate:
        lines.append(f"referenced at a legacy placement (an alternate key): {total.at_alternate:,}")
    per_thousand = report.list_requests * 1000 / total.objects if total.objects else 0.0
    lines.append(
        f"requests: {report.list_requests:,} ListObjectsV2 for {total.objects:,} objects "
        f"({per_thousand:,.1f} per 1,000) in {seconds:.1f} s"
    )
    lines += [f"{line}: nothing references its folder's objects" for line in left_out]
    return "\n".join(lines)


def write_orphans_report(
    path: Path,
    report: OrphanReport,
    source: BucketSettings,
    started: datetime,
    left_out: Sequence[SkippedType],
) -> None:
    """The JSON report: counts per folder and in all, then every unreferenced key."""
    total = _total([*report.folders, *report.outside])
    header: dict[str, Any] = {
        "version": REPORT_VERSION,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "source": bucket_context(source),
        "left_out": {str(line.record_type): line.reason for line in left_out},
        "objects": total.objects,
        "bytes": total.bytes,
        "referenced": total.referenced,
        "orphans": total.orphans,
        "orphan_bytes": total.orphan_bytes,
        "list_requests": report.list_requests,
        "folders": [asdict(tally) for tally in report.folders],
        "outside": [asdict(tally) for tally in report.outside],
    }
    write_json_report(path, header, {"orphan_keys": _OrphanKeys(report)})
