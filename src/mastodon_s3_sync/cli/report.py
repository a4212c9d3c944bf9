"""What the commands report when they are done: closing tables and lines, JSON reports.

A run's record is its outcome counts and every missing, withheld or failed key with its
reason, and every key written private though the source serves it publicly. The keys are
spooled to disk as they come (:mod:`mastodon_s3_sync.copying.spool`), so a run with
millions of them keeps flat memory; the JSON report is streamed from the spool at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from mastodon_s3_sync.config.settings import BucketSettings, PrivateObjects
from mastodon_s3_sync.copying.results import CopyResult
from mastodon_s3_sync.copying.spool import SHOWN_KEYS, JsonLines
from mastodon_s3_sync.copying.survey import Survey
from mastodon_s3_sync.copying.verify import Problem, Verifier
from mastodon_s3_sync.mastodon.catalog import SkippedType
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.mastodon.models import TYPE_WIDTH
from mastodon_s3_sync.outcomes import Outcome, RunTotals, Tally
from mastodon_s3_sync.transport.enumeration import EnumerationResult
from mastodon_s3_sync.transport.worker import WorkerTotals

REPORT_VERSION = 1


LISTED_OUTCOMES = (Outcome.MISSING, Outcome.WITHHELD, Outcome.FAILED)
"""Outcomes whose keys a report lists, each with its reason."""


def _entry(result: CopyResult) -> dict[str, str]:
    ref = result.ref
    return {
        "key": ref.key,
        "type": str(ref.record_type),
        "record_id": str(ref.record_id),  # snowflakes exceed 2^53: not numbers
        "attachment": ref.attachment,
        "style": ref.style,
        "reason": result.reason,
    }


class OutcomeLog:
    """Collects missing, withheld and failed keys, and those written private though public
    at the source (spooled to disk), for the report and summary."""

    def __init__(self) -> None:
        self.spools = {outcome: JsonLines() for outcome in LISTED_OUTCOMES}
        self.first: dict[Outcome, list[CopyResult]] = {outcome: [] for outcome in LISTED_OUTCOMES}
        self.made_private = JsonLines()
        self.made_private_count = 0

    def record(self, result: CopyResult) -> None:
        """Keep the result if its key is listed (see :data:`LISTED_OUTCOMES`)."""
        if result.made_private:
            self.made_private.add(_entry(result))
            self.made_private_count += 1
        spool = self.spools.get(result.outcome)
        if spool is None:
            return
        spool.add(_entry(result))
        if len(self.first[result.outcome]) < SHOWN_KEYS:
            self.first[result.outcome].append(result)

    def close(self) -> None:
        """Remove the spool files."""
        for spool in (*self.spools.values(), self.made_private):
            spool.close()


class Spooled(Protocol):
    """A list spooled to disk, read back as JSON strings (:class:`JsonLines` is one)."""

    def entries(self) -> Iterator[str]: ...


def write_json_report(path: Path, header: dict[str, Any], lists: Mapping[str, Spooled]) -> None:
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
    """The run's JSON report: counts per type, then every missing, withheld and failed key,
    and every key written private though public at the source."""
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
        "withheld": whole.withheld,
        "failed": whole.failed,
        "bytes_copied": whole.bytes_copied,
        "by_type": {str(t): vars(tally) for t, tally in totals.by_type.items()},
    }
    write_json_report(
        path,
        header,
        {
            **{f"{outcome.value}_keys": log.spools[outcome] for outcome in LISTED_OUTCOMES},
            "made_private_keys": log.made_private,
        },
    )


def plural(count: int, noun: str) -> str:
    """``1 problem``, ``2 problems``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


WITHHELD_ADVICE = (
    "withheld {count:,} objects Mastodon made private (a suspended account's media, removed "
    "posts', users' archives): the destination keeps no per-object ACL, so anyone could read "
    "them there. If it is not publicly readable: --private-objects copy; to leave them out "
    "without this note: --private-objects skip"
)
MADE_PRIVATE_NOTE = (
    "written private: {count:,} objects Mastodon made private that the source serves to anyone "
    "(its ACL says public-read); fix the source too (keys in --report)"
)


def format_totals(
    totals: RunTotals,
    log: OutcomeLog,
    seconds: float,
    left_out: Sequence[SkippedType] = (),
    private_objects: PrivateObjects = PrivateObjects.WITHHOLD,
    *,
    reported: bool = True,
) -> str:
    """The closing table: outcomes per type, a few missing/withheld/failed keys (``reported``:
    all of them are in the report), what to do about withheld and leaking private objects,
    then one line per kind not copied and why."""
    header = (
        f"{'type':<{TYPE_WIDTH}} {'copied':>10} {'skipped':>10} {'missing':>10} "
        f"{'withheld':>10} {'failed':>10} {'bytes copied':>14}"
    )
    lines = [header, "-" * len(header)]
    rows: list[tuple[str, Any]] = [(str(t), tally) for t, tally in totals.by_type.items()]
    rows.append(("total", totals.total()))
    for name, tally in rows:
        lines.append(
            f"{name:<{TYPE_WIDTH}} {tally.copied:>10,} {tally.skipped:>10,} {tally.missing:>10,} "
            f"{tally.withheld:>10,} {tally.failed:>10,} {tally.bytes_copied / 1024**2:>10,.1f} MiB"
        )
    whole = totals.total()
    rate = whole.done / seconds if seconds else 0.0
    lines.append(f"{whole.done:,} objects in {seconds:.1f} s ({rate:,.1f} objects/s)")
    silent = private_objects == PrivateObjects.SKIP
    where = "all of them in --report" if reported else "--report FILE lists them all"
    for outcome in LISTED_OUTCOMES:
        count = whole.count(outcome)
        if count and not (outcome == Outcome.WITHHELD and silent):
            lines.append(f"{outcome.value} ({count:,}; {where}):")
            lines.extend(f"  {result.ref.key}  {result.reason}" for result in log.first[outcome])
    if whole.withheld and not silent:
        lines.append(WITHHELD_ADVICE.format(count=whole.withheld))
    if log.made_private_count:
        lines.append(MADE_PRIVATE_NOTE.format(count=log.made_private_count))
    lines.extend(map(str, left_out))
    if totals.interrupted:
        lines.append("interrupted: a re-run resumes, skipping what is already copied")
    return "\n".join(lines)


def format_skip_checks(survey: Survey) -> str:
    """What the skip checks cost, and which bucket could not be listed."""
    line = f"skip checks: {survey.list_requests:,} list requests"
    for side, listing in (("source", survey.source), ("destination", survey.destination)):
        if listing.refused:
            line += f"; {side} not listed, one HEAD per object: {listing.refused}"
    return line


def bucket_context(settings: BucketSettings) -> dict[str, Any]:
    """One bucket (or directory) as a report's header states it."""
    if settings.path is not None:
        return {"path": settings.path}
    return {
        "bucket": settings.bucket,
        "key_prefix": settings.key_prefix,
        "endpoint_url": settings.endpoint_url,
    }


def run_context(
    source: BucketSettings,
    destination: BucketSettings,
    acl: str,
    types: Iterable[RecordType],
    left_out: Iterable[SkippedType] = (),
) -> dict[str, Any]:
    """Both buckets, the ACL mode, the types walked and the kinds left out (with why), as a
    report's header states them."""

    return {
        "source": bucket_context(source),
        "destination": bucket_context(destination),
        "acl": acl,
        "types": [str(record_type) for record_type in types],
        "left_out": {str(line.record_type): line.reason for line in left_out},
    }


def write_verify_report(
    path: Path, verifier: Verifier, started: datetime, context: dict[str, Any]
) -> None:
    """Verify's JSON report: counts, then every finding and every key absent at the source."""
    header = {
        "version": REPORT_VERSION,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        **context,
        "ok": verifier.totals.ok,
        **_verify_counts(verifier),
    }
    write_json_report(
        path,
        header,
        {"findings": verifier.findings, "absent_at_source_keys": verifier.absent_at_source},
    )


def format_verify(verifier: Verifier, seconds: float, left_out: Sequence[SkippedType] = ()) -> str:
    """The closing summary of ``verify``: the first few problems, one line per kind not
    checked and why, the verdict."""
    totals, requests = verifier.totals, verifier.requests
    presence = verifier.presence_requests
    cost = ""
    if presence is not None and totals.objects:
        cost = f"; presence and size: {presence:,} = {presence * 1000 / totals.objects:,.1f} "
        cost += "per 1,000 objects"
    operations = ", ".join(f"{name} {count:,}" for name, count in requests.by_operation.items())
    problems = totals.problems
    lines = [
        f"objects referenced:                  {totals.objects:>12,}",
        f"  at the destination, same size:     {totals.matching:>12,}",
        f"  missing at the destination:        {problems[Problem.MISSING]:>12,}",
        f"  size differs:                      {problems[Problem.SIZE]:>12,}",
        f"  absent at the source too:          {totals.absent_at_source:>12,}"
        "  (nothing to copy; in --report)",
        f"  withheld (private, no ACL kept):   {totals.withheld:>12,}",
        f"headers and ACL compared on:         {totals.sampled:>12,}",
        f"  headers differ:                    {problems[Problem.HEADER]:>12,}"
        if verifier.compares_headers
        else "  headers differ:                    not compared (a directory keeps none)",
        f"  ACL class differs:                 {problems[Problem.ACL]:>12,}",
    ]
    public = verifier.public
    if public is not None:
        per_thousand = public.requests * 1000 / totals.objects if totals.objects else 0.0
        lines += [
            f"read anonymously at {public.base_url}: {totals.public_checked:,} objects, "
            f"{public.requests:,} requests ({per_thousand:,.1f} per 1,000 objects)",
            f"  not publicly readable:             {problems[Problem.NOT_PUBLIC]:>12,}",
            f"  private but readable:              {problems[Problem.READABLE]:>12,}",
        ]
    lines.append(f"requests: {requests.total:,} ({operations or 'none'}) in {seconds:.1f} s{cost}")
    lines.extend(f"  {f['problem']:<8} {f['key']}  {f['detail']}" for f in verifier.first_findings)
    lines.extend(map(str, left_out))
    lines.append(
        "verify: OK" if totals.ok else f"verify: {plural(sum(problems.values()), 'problem')}"
    )
    return "\n".join(lines)


def _verify_counts(verifier: Verifier) -> dict[str, Any]:
    """The counts of the JSON report."""
    totals = verifier.totals
    return {
        "objects": totals.objects,
        "matching": totals.matching,
        "absent_at_source": totals.absent_at_source,
        "withheld": totals.withheld,
        "sampled": totals.sampled,
        "public_url": None if verifier.public is None else verifier.public.base_url,
        "public_checked": totals.public_checked,
        "public_requests": 0 if verifier.public is None else verifier.public.requests,
        "problems": {str(problem): count for problem, count in totals.problems.items()},
        "by_type": totals.by_type,
        "requests": dict(verifier.requests.by_operation),
        "presence_requests": verifier.presence_requests,
    }


def format_enumeration(result: EnumerationResult, verb: str, seconds: float) -> str:
    """Enumerate's closing lines: what each type produced, a line per kind left out, then
    the run's rate."""
    lines = [
        f"{record_type!s}: {count.rows:,} rows, {count.objects:,} objects in "
        f"{count.messages:,} messages ({count.expected_bytes / 1024**3:,.1f} GiB known)"
        + (
            f"; {count.refused_keys:,} not sent: their file name makes no safe key (.., NUL, ...)"
            if count.refused_keys
            else ""
        )
        for record_type, count in result.counts.items()
    ]
    lines.extend(map(str, result.left_out))
    objects = sum(count.objects for count in result.counts.values())
    lines.append(
        f"run {result.run_id}: {objects:,} objects {verb} in {seconds:.1f} s "
        f"({objects / seconds if seconds else 0:,.0f} objects/s)"
    )
    return "\n".join(lines)


def format_message(message_id: str, results: Sequence[CopyResult], error: str) -> str:
    """The worker's line for one message: its outcomes, and why it comes back if it does."""
    counts = Tally.of(results)
    return (
        f"message {message_id}: "
        + ", ".join(f"{outcome.value} {counts.count(outcome)}" for outcome in Outcome)
        + (f"; will be retried: {error}" if error else "")
    )


def format_messages(done: WorkerTotals) -> str:
    """The worker's closing line about messages."""
    return (
        f"messages: {done.messages_done:,} done, {done.messages_failed:,} failed (left for "
        f"retry), {done.messages_undecodable:,} undecodable"
    )
