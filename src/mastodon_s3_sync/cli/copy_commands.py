"""``run`` and ``verify``: copy on this machine, then prove the copy, from the database."""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TextIO

import botocore.exceptions

from mastodon_s3_sync.cli.arguments import (
    catalog_filter,
    instance_public_url,
    selection,
    settings_from_args,
)
from mastodon_s3_sync.cli.interrupt import ctrl_c_stops
from mastodon_s3_sync.cli.logs import phase, totals_event
from mastodon_s3_sync.cli.preflight import Preflight, open_catalog
from mastodon_s3_sync.cli.progress import RunDisplay, estimate_objects, listing_phase, row_bars
from mastodon_s3_sync.cli.report import (
    OutcomeLog,
    bucket_context,
    format_skip_checks,
    format_totals,
    format_verify,
    run_context,
    write_report,
    write_verify_report,
)
from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.copying.public_read import AnonymousReader
from mastodon_s3_sync.copying.repair import FindingRows, Findings, read_findings
from mastodon_s3_sync.copying.results import CopyOptions
from mastodon_s3_sync.copying.verify import Verifier
from mastodon_s3_sync.errors import SettingsError, SyncError
from mastodon_s3_sync.mastodon.catalog import RowObjects, SkippedType
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.mastodon.plan import Progress
from mastodon_s3_sync.transport.assembly import build_copier
from mastodon_s3_sync.transport.engine import Engine, RowSource


def run_copy(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``run``: copy everything selected; exit 0 only when nothing failed."""
    filt = catalog_filter(args)
    settings = settings_from_args(args)
    chosen = selection(args, settings)
    status = None if args.quiet else stderr
    preflight = Preflight.starting(stderr, args.quiet)
    preflight.report(args.report)
    source, destination = preflight.buckets(settings, writes=True)
    findings = _findings(args, source, destination) if args.from_report else None
    acl, workers, stop = settings.copy.acl, settings.copy.workers, threading.Event()
    # A finding of the right size (a wrong ACL or header) is copied again, not skipped.
    options = CopyOptions(settings.copy, force=args.force or findings is not None)
    copier = build_copier(source, destination, options, workers, stop, preflight.heads)
    with contextlib.closing(OutcomeLog()) as log:
        display = RunDisplay(
            stderr,
            log,
            live=stderr.isatty(),
            quiet=args.quiet,
            interval=args.progress_every,
        )
        started, clock = datetime.now(UTC), time.monotonic()
        engine: Engine | None = None
        failure: SyncError | None = None
        walked: list[RecordType] = []
        left_out: list[SkippedType] = []
        try:
            with open_catalog(settings, chosen.record_types, status=status) as catalog:
                walked, left_out = chosen.walked(catalog), chosen.left_out(catalog)
                rows: RowSource = catalog
                if findings is not None:
                    walked = [kind for kind in walked if kind in findings.wanted]
                    rows = FindingRows(catalog, findings)
                if not args.allow_missing:
                    preflight.source_objects(rows, source, walked, filt)
                preflight.announce(stderr, args.quiet)
                display.expect(estimate_objects(rows, walked, filt))
                engine = Engine(rows, copier, display, workers=workers, stop=stop)
                listing_phase(source, destination, status)
                with ctrl_c_stops(stop, stderr) as stop_request:
                    engine.run(walked, filt)
        except SyncError as error:
            failure = error  # the totals so far are still reported
        finally:
            display.close()
        if engine is None:
            raise failure or SyncError("the run did not start")
        seconds = time.monotonic() - clock
        totals_event(engine.totals, seconds)
        reported, private_objects = args.report is not None, settings.copy.private_objects
        print(
            format_totals(
                engine.totals, log, seconds, left_out, private_objects, reported=reported
            ),
            file=stderr,
        )
        print(format_skip_checks(engine.survey), file=stderr)
        if args.report:
            context = run_context(source, destination, acl, walked, left_out)
            if failure is not None:
                context["error"] = str(failure)
            write_report(args.report, engine.totals, log, started, context)
            print(f"report: {args.report}", file=stderr)
    if failure is not None:
        raise failure
    if engine.totals.interrupted:
        return stop_request.exit_status
    return 1 if engine.totals.total().failed else 0


def _findings(
    args: argparse.Namespace, source: BucketSettings, destination: BucketSettings
) -> Findings:
    """The findings of ``--from-report``, which must be a verify of these two buckets."""
    narrowing = [flag for flag in ("after_id", "limit", "since") if getattr(args, flag)]
    if narrowing:
        flags = ", ".join(f"--{flag.replace('_', '-')}" for flag in narrowing)
        raise SettingsError(f"--from-report selects the objects itself; leave out {flags}")
    findings = read_findings(args.from_report)
    for side, bucket in (("source", source), ("destination", destination)):
        if findings.header.get(side) != bucket_context(bucket):
            raise SettingsError(
                f"--from-report {args.from_report} verified another {side} "
                f"({findings.header.get(side)}); give the buckets that verify checked"
            )
    return findings


def run_verify(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``verify``: exit 0 only when nothing is missing or different."""
    filt = catalog_filter(args)
    settings = settings_from_args(args)
    chosen = selection(args, settings)
    status = None if args.quiet else stderr
    preflight = Preflight.starting(stderr, args.quiet)
    preflight.report(args.report)
    acl_reads = args.full or args.sample > 0
    source, destination = preflight.buckets(settings, writes=False, acl_reads=acl_reads)
    acl, workers = settings.copy.acl, settings.copy.workers
    copier = build_copier(
        source, destination, CopyOptions(settings.copy), workers, heads=preflight.heads
    )
    base = args.public_url or instance_public_url(args)
    public = AnonymousReader(base, workers) if base else None
    if public is not None and not args.public_url and status is not None:
        print(f"reading as a stranger at {base} (Mastodon's .env; --public-url)", file=status)
    sample = None if args.full else args.sample
    verifier = Verifier(copier, acl, sample=sample, workers=workers, public=public)
    bars = row_bars(status) if status is not None else None
    started, clock = datetime.now(UTC), time.monotonic()
    try:
        with open_catalog(settings, chosen.record_types, status=status) as catalog:
            record_types, left_out = chosen.walked(catalog), chosen.left_out(catalog)
            if not args.allow_missing:
                preflight.source_objects(catalog, source, record_types, filt)
            preflight.announce(stderr, args.quiet)
            listing_phase(source, destination, status)
            for record_type in record_types:
                bar = bars(record_type, catalog.count_rows(record_type, filt)) if bars else None
                verifier.check(_refs_counting_rows(catalog.walk(record_type, filt), bar))
                if bar is not None:
                    bar.close()
                checked = verifier.totals.by_type.get(str(record_type), 0)
                if status is not None:
                    print(f"{record_type}: {checked:,} objects checked", file=status)
        if not args.full and verifier.totals.matching:
            sampled = min(args.sample, verifier.totals.matching)
            phase(
                "sampling",
                f"comparing headers and ACL of {sampled:,} sampled objects at both sides…",
                status,
            )
        verifier.check_sample()
        print(format_verify(verifier, time.monotonic() - clock, left_out), file=stderr)
        if args.report:
            context = run_context(source, destination, str(acl), record_types, left_out)
            write_verify_report(args.report, verifier, started, context)
            print(f"report: {args.report}", file=stderr)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        raise SyncError(f"verify stopped: a request failed after its retries: {error}") from None
    finally:
        verifier.close()
        if public is not None:
            public.close()
    return 0 if verifier.totals.ok else 1


def _refs_counting_rows(rows: Iterable[RowObjects], bar: Progress | None) -> Iterator[ObjectRef]:
    for row in rows:
        yield from row.objects
        if bar is not None:
            bar.update(1)
