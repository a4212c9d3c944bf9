"""Command line: parse flags and the config file into Settings, call the core, map errors.

Exit status: 0 success, 1 failure during the work, 2 bad settings or usage,
3 database unreachable or not Mastodon's, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import botocore.exceptions
from tqdm import tqdm

from mastodon_s3_sync import __version__
from mastodon_s3_sync.cli.config_check import config_check
from mastodon_s3_sync.cli.ops_commands import add_commands, run_ops_command
from mastodon_s3_sync.cli.progress import RunDisplay
from mastodon_s3_sync.cli.report import (
    REPORT_VERSION,
    OutcomeLog,
    format_totals,
    write_json_report,
    write_report,
)
from mastodon_s3_sync.config.checks import endpoint_setting
from mastodon_s3_sync.config.layers import ResolvedSettings, SettingsLayer
from mastodon_s3_sync.config.mastodon_env import load_settings
from mastodon_s3_sync.config.settings import (
    DEFAULT_WORKERS,
    MAX_PAGE_SIZE,
    MAX_WORKERS,
    URL_FORM,
    AclMode,
    BucketSettings,
    Settings,
)
from mastodon_s3_sync.config.values import parse_database_url, parse_s3_url, parse_since
from mastodon_s3_sync.copying.memory import return_large_buffers_to_the_os
from mastodon_s3_sync.copying.results import CopyOptions, CopyResult
from mastodon_s3_sync.copying.survey import Survey
from mastodon_s3_sync.copying.verify import DEFAULT_SAMPLE, Verifier, format_verify, verify_counts
from mastodon_s3_sync.errors import SettingsError, SyncError
from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter, RowObjects
from mastodon_s3_sync.mastodon.database import open_database
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.mastodon.plan import Progress, ProgressFactory, format_summary, write_plan
from mastodon_s3_sync.outcomes import Outcome, Tally
from mastodon_s3_sync.storage.s3 import check_bucket, check_source_acls
from mastodon_s3_sync.transport.assembly import build_copier
from mastodon_s3_sync.transport.engine import Engine
from mastodon_s3_sync.transport.enumeration import Cursor, enumerate_to_queue
from mastodon_s3_sync.transport.lambda_edge import new_run_id
from mastodon_s3_sync.transport.sqs import SqsSink, make_sqs_client
from mastodon_s3_sync.transport.worker import run_worker

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

PROG = "mastodon-s3-sync"
ALL_TYPES = "all"


def _record_types(values: Sequence[str] | None) -> list[RecordType]:
    names = [name.strip() for value in values or [ALL_TYPES] for name in value.split(",")]
    known = [str(record_type) for record_type in RecordType]
    for name in names:
        if name != ALL_TYPES and name not in known:
            raise SettingsError(f"--type: unknown type {name!r}; use {', '.join(known)} or all")
    if ALL_TYPES in names:
        return list(RecordType)
    return [RecordType(name) for name in dict.fromkeys(names)]


def _positive(flag: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a whole number") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be at least 1")
        return value

    return parse


def _non_negative(flag: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit():
            raise argparse.ArgumentTypeError(f"{flag} must be a whole number, 0 or more")
        return int(text)

    return parse


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--after-id must be a whole number (a row id)") from None


def _add_database_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("database and selection")
    group.add_argument("--config", type=Path, help="TOML config file ([database], [source], …)")
    group.add_argument(
        "--mastodon-env",
        type=Path,
        metavar="FILE",
        help="Mastodon's .env.production: the database and source bucket from DB_*, S3_*, "
        "AWS_* (the config file and flags override it)",
    )
    group.add_argument("--database-url", help=f"Mastodon's database: {URL_FORM}")
    group.add_argument(
        "--type",
        dest="types",
        action="extend",
        nargs="+",
        metavar="TYPE",
        help="accounts, media_attachments, custom_emojis, preview_cards or all (default: all)",
    )
    group.add_argument("--after-id", type=_integer, metavar="ID", help="start after this row id")
    group.add_argument(
        "--limit", type=_positive("--limit"), metavar="ROWS", help="stop after N rows"
    )
    group.add_argument(
        "--since",
        metavar="WHEN",
        help="only attachments changed since then: ISO time (UTC unless offset) or 90m/36h/7d",
    )
    group.add_argument(
        "--skip-remote-cache",
        action="store_true",
        help="only local media (remote media and preview cards can be re-fetched by Mastodon)",
    )
    group.add_argument(
        "--page-size",
        type=_positive("--page-size"),
        metavar="ROWS",
        help=f"rows per database query (default 5000, at most {MAX_PAGE_SIZE})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Copy the media a Mastodon instance references between S3-compatible buckets.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan = commands.add_parser(
        "plan",
        help="list every object key Mastodon stored (dry run)",
        description="Print every canonical object key, one per line, to stdout, and a "
        "per-type summary (rows, objects, known bytes) to stderr.",
    )
    _add_database_options(plan)
    plan.add_argument(
        "--key-prefix",
        metavar="PREFIX",
        help="Mastodon's S3_KEY_PREFIX on the source bucket (default: [source] key_prefix)",
    )
    plan.add_argument("--summary", action="store_true", help="print only the summary")
    run = commands.add_parser(
        "run",
        help="copy every object from the source to the destination bucket",
        description="Enumerate the objects from the database and copy them with a pool of "
        "threads: bytes, headers and ACL intact; what is already there is skipped.",
    )
    _add_database_options(run)
    _add_copy_options(run)
    verify = commands.add_parser(
        "verify",
        help="check that the destination holds every object, as the source has it",
        description="From the database, check each object at the destination: present, "
        "same size as at the source (from bucket listings: about 2 requests per 1,000 "
        "objects), and for a random sample (or --full) the same headers and ACL class. "
        "Exit status 1 when anything is missing or different.",
    )
    _add_database_options(verify)
    _add_bucket_options(verify)
    checks = verify.add_argument_group("checks")
    _add_acl_and_workers(checks, "threads for the header and ACL checks")
    sampling = checks.add_mutually_exclusive_group()
    sampling.add_argument(
        "--sample",
        type=_non_negative("--sample"),
        default=DEFAULT_SAMPLE,
        metavar="N",
        help="objects whose headers and ACL are compared, drawn at random (default "
        "%(default)s; 0: none)",
    )
    sampling.add_argument(
        "--full", action="store_true", help="compare headers and ACL of every object"
    )
    checks.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report")
    enumerate_ = commands.add_parser(
        "enumerate",
        help="send every object reference to an SQS queue, for copiers elsewhere",
        description="Run where the database is reachable (the Mastodon host, a bastion): "
        "page the database and send the object references to the copy queue.",
    )
    _add_database_options(enumerate_)
    _add_queue_options(enumerate_)
    enumerate_.add_argument("--run-id", metavar="ID", help="label of this run (default: new)")
    enumerate_.add_argument("--dry-run", action="store_true", help="count, send nothing")
    worker = commands.add_parser(
        "worker",
        help="copy what arrives on the SQS queue (a self-hosted copier)",
        description="Receive messages, copy their objects, delete what succeeded; failed "
        "messages come back after their visibility timeout and reach the DLQ in the end.",
    )
    _add_queue_options(worker)
    worker.add_argument("--config", type=Path, help="TOML config file ([source], [destination])")
    worker.add_argument(
        "--mastodon-env", type=Path, metavar="FILE", help="Mastodon's .env: the source bucket"
    )
    _add_copy_options(worker)
    worker.add_argument(
        "--until-empty", action="store_true", help="stop when the queue has no message left"
    )
    demo = commands.add_parser(
        "demo",
        help="a whole migration on this machine: local PostgreSQL and S3 servers, no AWS",
        description="Start a throwaway PostgreSQL with a generated Mastodon and two local S3 "
        "servers (old and new provider), fill the old bucket as Mastodon would have, run the "
        "real copy and verify between them, and stop everything.",
    )
    demo.add_argument(
        "--keep", action="store_true", help="leave it running and print connection details"
    )
    demo.add_argument(
        "--reports",
        type=Path,
        default=Path("mastodon-s3-sync-demo"),
        metavar="DIR",
        help="where the JSON reports of run and verify go (default: %(default)s)",
    )
    demo.add_argument(
        "--quick", action="store_true", help="a smaller Mastodon: the same story in seconds"
    )
    add_commands(commands)
    _add_config_command(commands)
    return parser


def _add_config_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = commands.add_parser(
        "config",
        help="show the resolved settings and test every connection",
        description="Settings come from the flags, over the config file, over Mastodon's .env.",
    )
    actions = config.add_subparsers(dest="config_action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="print the settings (secrets masked) with their origin, then test the database, "
        "the bastion and both buckets",
        description="Print every setting with where it came from (flag, config file, .env, "
        "default), secrets masked, then test each connection: one OK/FAIL line per check. "
        "Exit status 0 when all pass.",
    )
    _add_database_options(check)
    _add_bucket_options(check)
    _add_acl_and_workers(check.add_argument_group("copying"), "copier threads")


def _add_copy_options(parser: argparse.ArgumentParser) -> None:
    _add_bucket_options(parser)
    group = parser.add_argument_group("copying")
    _add_acl_and_workers(group, "copier threads")
    group.add_argument(
        "--force", action="store_true", help="copy even what the destination already holds"
    )
    group.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report")


def _add_bucket_options(parser: argparse.ArgumentParser) -> None:
    for side in ("source", "destination"):
        group = parser.add_argument_group(f"{side} bucket (overrides [{side}] in --config)")
        group.add_argument(
            f"--{side}",
            metavar="s3://BUCKET[/PREFIX]",
            help="bucket, and Mastodon's S3_KEY_PREFIX if it has one",
        )
        group.add_argument(f"--{side}-endpoint-url", metavar="URL", help="S3 endpoint (non-AWS)")
        group.add_argument(f"--{side}-region", metavar="REGION")
        group.add_argument(f"--{side}-profile", metavar="NAME", help="AWS config profile")


def _add_acl_and_workers(group: argparse._ArgumentGroup, threads: str) -> None:
    group.add_argument(
        "--acl",
        choices=[str(mode) for mode in AclMode],
        help="destination ACL: copy each source object's (default), a fixed one, or none",
    )
    group.add_argument(
        "--workers",
        type=_positive("--workers"),
        metavar="N",
        help=f"{threads} (default {DEFAULT_WORKERS})",
    )


def _add_queue_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("queue")
    group.add_argument("--queue-url", required=True, metavar="URL", help="the copy queue")
    group.add_argument("--sqs-endpoint-url", metavar="URL", help="SQS endpoint (non-AWS, tests)")
    group.add_argument("--region", metavar="REGION", help="the queue's AWS region")
    group.add_argument("--profile", metavar="NAME", help="AWS config profile for SQS")


def _sqs_client(args: argparse.Namespace) -> SQSClient:
    endpoint = args.sqs_endpoint_url
    if endpoint:
        endpoint_setting(endpoint, "--sqs-endpoint-url")
    return make_sqs_client(endpoint, args.region, args.profile)


def _flag_layer(args: argparse.Namespace) -> SettingsLayer:
    """The settings given as flags, as the top layer over the config file and .env."""
    tables: dict[str, dict[str, Any]] = {}
    labels: dict[tuple[str, str], str] = {}

    def put(section: str, key: str, value: object, flag: str) -> None:
        tables.setdefault(section, {})[key] = value
        labels[section, key] = flag

    if getattr(args, "database_url", None):
        parse_database_url(args.database_url)  # errors that name the flag
        put("database", "url", args.database_url, "--database-url")
    if getattr(args, "page_size", None):
        if args.page_size > MAX_PAGE_SIZE:
            raise SettingsError(f"--page-size: at most {MAX_PAGE_SIZE}")
        put("database", "page_size", args.page_size, "--page-size")
    for side in ("source", "destination"):
        if getattr(args, side, None):
            bucket, prefix = parse_s3_url(getattr(args, side), f"--{side}")
            put(side, "bucket", bucket, f"--{side}")
            put(side, "key_prefix", prefix, f"--{side}")
        for name in ("endpoint_url", "region", "profile"):
            flag = f"--{side}-{name.replace('_', '-')}"
            value = getattr(args, f"{side}_{name}", None)
            if value:
                if name == "endpoint_url":
                    endpoint_setting(value, flag)
                put(side, name, value, flag)
    if getattr(args, "acl", None):
        put("copy", "acl", args.acl, "--acl")
    if getattr(args, "workers", None):
        if args.workers > MAX_WORKERS:
            raise SettingsError(f"--workers: at most {MAX_WORKERS}")
        put("copy", "workers", args.workers, "--workers")
    return SettingsLayer("flags", tables, labels)


def resolved_from_args(args: argparse.Namespace) -> ResolvedSettings:
    """Flags over the config file over Mastodon's .env, with the origin of each value."""
    return load_settings(args.config, getattr(args, "mastodon_env", None), _flag_layer(args))


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings of a command that reads the database (which must be configured)."""
    settings = resolved_from_args(args).settings
    settings.require_database()
    return settings


def _catalog_filter(args: argparse.Namespace) -> CatalogFilter:
    since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    return CatalogFilter(
        after_id=args.after_id,
        limit=args.limit,
        since=since,
        skip_remote_cache=args.skip_remote_cache,
    )


def _progress_bars(stream: TextIO) -> ProgressFactory | None:
    """Live bars on a terminal; nothing when stderr is a file or a pipe."""
    if not stream.isatty():
        return None

    def start(record_type: RecordType, estimated: int) -> Progress:
        return tqdm(  # type: ignore[no-any-return]
            total=estimated or None, desc=str(record_type), unit=" rows", file=stream, leave=False
        )

    return start


def _run_context(source: BucketSettings, destination: BucketSettings, acl: str) -> dict[str, Any]:
    def side(settings: BucketSettings) -> dict[str, Any]:
        return {
            "bucket": settings.bucket,
            "key_prefix": settings.key_prefix,
            "endpoint_url": settings.endpoint_url,
        }

    return {"source": side(source), "destination": side(destination), "acl": acl}


@contextlib.contextmanager
def _ctrl_c_stops(stop: threading.Event, stderr: TextIO) -> Iterator[None]:
    """The first Ctrl-C asks for a clean stop; the second one quits at once."""

    def first(_signal: int, _frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print(
            "\nstopping: finishing the objects in flight (Ctrl-C again quits now)",
            file=stderr,
            flush=True,
        )

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _side(settings: Settings, side: str) -> BucketSettings:
    bucket: BucketSettings | None = getattr(settings, side)
    if bucket is None:
        raise SettingsError(
            f"no {side} bucket: pass --{side} s3://BUCKET[/PREFIX] or set [{side}] bucket in "
            "the config file (--config)"
            + (" or S3_BUCKET in Mastodon's .env (--mastodon-env)" if side == "source" else "")
        )
    return bucket


def _checked_buckets(settings: Settings) -> tuple[BucketSettings, BucketSettings]:
    """Both sides, distinct, answering (preflight), and source ACLs readable if copied."""
    source, destination = _side(settings, "source"), _side(settings, "destination")
    if (source.bucket, source.key_prefix, source.endpoint_url) == (
        destination.bucket,
        destination.key_prefix,
        destination.endpoint_url,
    ):
        raise SettingsError("--source and --destination are the same bucket and key prefix")
    check_bucket(source, "source")
    check_bucket(destination, "destination")
    if settings.copy.acl == AclMode.COPY:
        check_source_acls(source)
    return source, destination


def _skip_check_line(survey: Survey) -> str:
    line = f"skip checks: {survey.list_requests:,} list requests"
    for side, listing in (("source", survey.source), ("destination", survey.destination)):
        if listing.refused:
            line += f"; {side} bucket not listable, one HEAD per object: {listing.refused}"
    return line


def run_copy(args: argparse.Namespace, stderr: TextIO) -> int:
    """``run``: copy everything selected; exit 0 only when nothing failed."""
    record_types = _record_types(args.types)
    filt = _catalog_filter(args)
    settings = settings_from_args(args)
    database = settings.require_database()
    source, destination = _checked_buckets(settings)
    acl, workers = settings.copy.acl, settings.copy.workers
    stop = threading.Event()
    copier = build_copier(
        source, destination, CopyOptions(settings.copy, force=args.force), workers, stop
    )
    log = OutcomeLog()
    display = RunDisplay(stderr, log, live=stderr.isatty())
    started, clock = datetime.now(UTC), time.monotonic()
    engine = None
    failure: SyncError | None = None
    try:
        with open_database(database, settings.bastion) as conn:
            catalog = Catalog(conn, page_size=database.page_size, key_prefix=source.key_prefix)
            for record_type in record_types:
                catalog.table_columns(record_type)
            engine = Engine(catalog, copier, display, workers=workers, stop=stop)
            with _ctrl_c_stops(stop, stderr):
                engine.run(record_types, filt)
    except SyncError as error:
        failure = error
    finally:
        display.close()
    if engine is None:
        log.close()
        raise failure or SyncError("the run did not start")
    totals = engine.totals
    print(format_totals(totals, log, time.monotonic() - clock), file=stderr)
    print(_skip_check_line(engine.survey), file=stderr)
    if args.report:
        context = _run_context(source, destination, acl)
        context["types"] = [str(record_type) for record_type in record_types]
        if failure is not None:
            context["error"] = str(failure)
        write_report(args.report, totals, log, started, context)
        print(f"report: {args.report}", file=stderr)
    log.close()
    if failure is not None:
        raise failure
    if totals.interrupted:
        return 130
    return 1 if totals.total().failed else 0


def _refs_counting_rows(rows: Iterable[RowObjects], bar: Progress | None) -> Iterator[ObjectRef]:
    for row in rows:
        yield from row.objects
        if bar is not None:
            bar.update(1)


def run_verify(args: argparse.Namespace, stderr: TextIO) -> int:
    """``verify``: exit 0 only when nothing is missing or different."""
    record_types = _record_types(args.types)
    filt = _catalog_filter(args)
    settings = settings_from_args(args)
    database = settings.require_database()
    source, destination = _checked_buckets(settings)
    acl, workers = settings.copy.acl, settings.copy.workers
    copier = build_copier(source, destination, CopyOptions(settings.copy), workers)
    verifier = Verifier(copier, acl, sample=None if args.full else args.sample, workers=workers)
    bars = _progress_bars(stderr)
    started, clock = datetime.now(UTC), time.monotonic()
    try:
        with open_database(database, settings.bastion) as conn:
            catalog = Catalog(conn, page_size=database.page_size, key_prefix=source.key_prefix)
            for record_type in record_types:
                catalog.table_columns(record_type)
            for record_type in record_types:
                bar = bars(record_type, catalog.count_rows(record_type, filt)) if bars else None
                verifier.check(_refs_counting_rows(catalog.walk(record_type, filt), bar))
                if bar is not None:
                    bar.close()
                checked = verifier.totals.by_type.get(str(record_type), 0)
                print(f"{record_type}: {checked:,} objects checked", file=stderr)
        verifier.check_sample()
        print(format_verify(verifier, time.monotonic() - clock), file=stderr)
        if args.report:
            header = {
                "version": REPORT_VERSION,
                "started_at": started.isoformat(),
                "finished_at": datetime.now(UTC).isoformat(),
                **_run_context(source, destination, str(acl)),
                "types": [str(record_type) for record_type in record_types],
                "ok": verifier.totals.ok,
                **verify_counts(verifier),
            }
            write_json_report(
                args.report,
                header,
                {"findings": verifier.findings, "absent_at_source_keys": verifier.absent_at_source},
            )
            print(f"report: {args.report}", file=stderr)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        raise SyncError(f"verify stopped: a request failed after its retries: {error}") from None
    finally:
        verifier.close()
    return 0 if verifier.totals.ok else 1


def run_enumerate(args: argparse.Namespace, stderr: TextIO) -> int:
    """``enumerate``: the database side of the fan-out."""
    record_types = _record_types(args.types)
    filt = _catalog_filter(args)
    settings = settings_from_args(args)
    database = settings.require_database()
    key_prefix = settings.source.key_prefix if settings.source else ""
    run_id = args.run_id or new_run_id(datetime.now(UTC))
    sink = None if args.dry_run else SqsSink(_sqs_client(args), args.queue_url)
    cursor = Cursor(tuple(record_types), filt.after_id, filt.limit, filt.limit)
    started = time.monotonic()
    try:
        with open_database(database, settings.bastion) as conn:
            catalog = Catalog(conn, page_size=database.page_size, key_prefix=key_prefix)
            for record_type in record_types:
                catalog.table_columns(record_type)
            result = enumerate_to_queue(catalog, sink, cursor, filt, run_id)
    finally:
        if sink is not None:
            sink.close()
    seconds = time.monotonic() - started
    for record_type, count in result.counts.items():
        print(
            f"{record_type!s}: {count.rows:,} rows, {count.objects:,} objects in "
            f"{count.messages:,} messages ({count.expected_bytes / 1024**3:,.1f} GiB known)"
            + (
                f"; {count.refused_keys:,} not sent: their file name makes no safe key "
                "(.., NUL, ...)"
                if count.refused_keys
                else ""
            ),
            file=stderr,
        )
    objects = sum(count.objects for count in result.counts.values())
    verb = "counted" if args.dry_run else "sent"
    print(
        f"run {run_id}: {objects:,} objects {verb} in {seconds:.1f} s "
        f"({objects / seconds if seconds else 0:,.0f} objects/s)",
        file=stderr,
    )
    return 0


def run_worker_command(args: argparse.Namespace, stderr: TextIO) -> int:
    """``worker``: the copier side of the fan-out, on any machine."""
    settings = resolved_from_args(args).settings
    source, destination = _checked_buckets(settings)
    workers = settings.copy.workers
    stop = threading.Event()
    copier = build_copier(
        source, destination, CopyOptions(settings.copy, force=args.force), workers, stop
    )
    log = OutcomeLog()

    def heard(message_id: str, results: Sequence[CopyResult], error: str) -> None:
        for result in results:
            log.record(result)
        counts = Tally.of(results)
        print(
            f"message {message_id}: "
            + ", ".join(f"{outcome.value} {counts.count(outcome)}" for outcome in Outcome)
            + (f"; will be retried: {error}" if error else ""),
            file=stderr,
            flush=True,
        )

    started, clock = datetime.now(UTC), time.monotonic()
    with (
        ThreadPoolExecutor(workers, thread_name_prefix="copier") as pool,
        _ctrl_c_stops(stop, stderr),
    ):
        done = run_worker(
            _sqs_client(args),
            args.queue_url,
            copier,
            pool,
            until_empty=args.until_empty,
            stop=stop,
            on_message=heard,
        )
    print(format_totals(done.totals, log, time.monotonic() - clock), file=stderr)
    print(
        f"messages: {done.messages_done:,} done, {done.messages_failed:,} failed (left for "
        f"retry), {done.messages_undecodable:,} undecodable",
        file=stderr,
    )
    if args.report:
        write_report(args.report, done.totals, log, started, {"queue_url": args.queue_url})
    log.close()
    if done.totals.interrupted:
        return 130
    return 1 if done.messages_failed or done.messages_undecodable else 0


def run_demo(args: argparse.Namespace, stderr: TextIO) -> int:
    """``demo``: the real ``run`` and ``verify`` between two local providers."""
    from mastodon_s3_sync.demo.sandbox import (  # needs the demo extra (moto)
        DEMO_COUNTS,
        QUICK_COUNTS,
        sandbox,
    )

    reports: Path = args.reports
    reports.mkdir(parents=True, exist_ok=True)
    run_report, verify_report = reports / "demo-run-report.json", reports / "demo-verify.json"
    with tempfile.TemporaryDirectory(prefix="mastodon-s3-sync-demo-") as work:
        print("starting PostgreSQL and two S3 servers, generating a Mastodon…", file=stderr)
        with sandbox(Path(work), QUICK_COUNTS if args.quick else DEMO_COUNTS) as box:
            seeded = box.manifest
            print(
                f"{', '.join(f'{count:,} {table}' for table, count in box.rows.items())}; "
                f"source bucket: {len(seeded.objects):,} objects "
                f"({seeded.total_bytes / 1024**2:,.1f} MiB), {len(seeded.missing)} files gone, "
                f"{len(seeded.legacy)} at their legacy placement",
                file=stderr,
            )
            config = ["--config", str(box.config)]
            print("\n== run: copy from the old provider to the new one", file=stderr)
            copied = run_copy(
                build_parser().parse_args(["run", *config, "--report", str(run_report)]), stderr
            )
            print("\n== verify: is everything at the new provider, as it was?", file=stderr)
            verified = run_verify(
                build_parser().parse_args(["verify", *config, "--report", str(verify_report)]),
                stderr,
            )
            private, kept = box.private_objects_still_private()
            print(
                f"\nprivate objects (a suspended account's media): {private} at the source, "
                f"{kept} of them still private at the destination",
                file=stderr,
            )
            status = copied or verified or (0 if kept == private else 1)
            print(
                f"{'demo: OK' if status == 0 else 'demo: FAILED'} — reports: {run_report} "
                f"(what was copied, what is missing and why), {verify_report} (the proof)",
                file=stderr,
            )
            if args.keep:
                print(
                    f"\n{box.describe()}\ntry: mastodon-s3-sync plan --config {box.config} "
                    "--summary\nrunning; Ctrl-C stops everything",
                    file=stderr,
                )
                with contextlib.suppress(KeyboardInterrupt):
                    threading.Event().wait()
        print("stopped the sandbox", file=stderr)
    return status


def run_plan(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``plan``: keys to stdout, summary to stderr."""
    record_types = _record_types(args.types)
    filt = _catalog_filter(args)
    settings = settings_from_args(args)
    database = settings.require_database()
    key_prefix = args.key_prefix
    if key_prefix is None:
        key_prefix = settings.source.key_prefix if settings.source else ""
    started = time.monotonic()
    with open_database(database, settings.bastion) as conn:
        catalog = Catalog(conn, page_size=database.page_size, key_prefix=key_prefix)
        for record_type in record_types:  # fail before printing anything
            catalog.table_columns(record_type)
        summaries = write_plan(
            catalog,
            record_types,
            filt,
            None if args.summary else stdout,
            _progress_bars(stderr),
        )
    stdout.flush()
    print(format_summary(summaries, time.monotonic() - started), file=stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mastodon-s3-sync`` command."""
    args = build_parser().parse_args(argv)
    return_large_buffers_to_the_os()
    try:
        if (status := run_ops_command(args, sys.stdout, sys.stderr)) is not None:
            return status
        if args.command == "run":
            return run_copy(args, sys.stderr)
        if args.command == "verify":
            return run_verify(args, sys.stderr)
        if args.command == "config":
            return config_check(resolved_from_args(args), sys.stdout)
        if args.command == "demo":
            return run_demo(args, sys.stderr)
        if args.command == "enumerate":
            return run_enumerate(args, sys.stderr)
        if args.command == "worker":
            return run_worker_command(args, sys.stderr)
        return run_plan(args, sys.stdout, sys.stderr)
    except SyncError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``plan | head``): not an error; silence the final flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
