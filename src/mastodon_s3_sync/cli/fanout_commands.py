"""``enumerate`` and ``worker``: the two sides of the SQS fan-out, on machines of your own."""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from mastodon_s3_sync.cli.arguments import (
    catalog_filter,
    resolved_from_args,
    selection,
    settings_from_args,
    sqs_client,
)
from mastodon_s3_sync.cli.interrupt import ctrl_c_stops
from mastodon_s3_sync.cli.preflight import Preflight, open_catalog
from mastodon_s3_sync.cli.report import (
    OutcomeLog,
    format_enumeration,
    format_message,
    format_messages,
    format_totals,
    write_report,
)
from mastodon_s3_sync.copying.results import CopyOptions, CopyResult
from mastodon_s3_sync.transport.assembly import build_copier
from mastodon_s3_sync.transport.enumeration import Cursor, enumerate_to_queue
from mastodon_s3_sync.transport.lambda_edge import new_run_id
from mastodon_s3_sync.transport.sqs import SqsSink, check_queue
from mastodon_s3_sync.transport.worker import run_worker

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def run_enumerate(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``enumerate``: the database side of the fan-out."""
    filt = catalog_filter(args)
    settings = settings_from_args(args)
    chosen = selection(args, settings)
    run_id = args.run_id or new_run_id(datetime.now(UTC))
    sink = None if args.dry_run else SqsSink(_checked_sqs(args), args.queue_url)
    cursor = Cursor(chosen.record_types, filt.after_id, filt.limit, filt.limit)
    started = time.monotonic()
    try:
        with open_catalog(settings, chosen.record_types) as catalog:
            result = enumerate_to_queue(catalog, sink, cursor, filt, run_id, selection=chosen)
    finally:
        if sink is not None:
            sink.close()
    verb = "counted" if args.dry_run else "sent"
    print(format_enumeration(result, verb, time.monotonic() - started), file=stderr)
    return 0


def run_worker_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``worker``: the copier side of the fan-out, on any machine."""
    settings = resolved_from_args(args).settings
    preflight = Preflight()
    preflight.report(args.report)
    source, destination = preflight.buckets(settings, writes=True)
    sqs = _checked_sqs(args)
    preflight.announce(stderr, args.quiet)
    workers, stop = settings.copy.workers, threading.Event()
    options = CopyOptions(settings.copy, force=args.force)
    copier = build_copier(source, destination, options, workers, stop, preflight.heads)
    with contextlib.closing(OutcomeLog()) as log:

        def heard(message_id: str, results: Sequence[CopyResult], error: str) -> None:
            for result in results:
                log.record(result)
            print(format_message(message_id, results, error), file=stderr, flush=True)

        started, clock = datetime.now(UTC), time.monotonic()
        with (
            ThreadPoolExecutor(workers, thread_name_prefix="copier") as pool,
            ctrl_c_stops(stop, stderr) as stop_request,
        ):
            done = run_worker(
                sqs,
                args.queue_url,
                copier,
                pool,
                until_empty=args.until_empty,
                stop=stop,
                on_message=heard,
            )
        seconds, reported = time.monotonic() - clock, args.report is not None
        private_objects = settings.copy.private_objects
        print(
            format_totals(done.totals, log, seconds, (), private_objects, reported=reported),
            file=stderr,
        )
        print(format_messages(done), file=stderr)
        if args.report:
            write_report(args.report, done.totals, log, started, {"queue_url": args.queue_url})
    if done.totals.interrupted:
        return stop_request.exit_status
    return 1 if done.messages_failed or done.messages_undecodable else 0


def _checked_sqs(args: argparse.Namespace) -> SQSClient:
    """The SQS client of the queue flags, once the queue answers."""
    client = sqs_client(args)
    check_queue(args.sqs_endpoint_url, args.region, args.profile, args.queue_url)
    return client
