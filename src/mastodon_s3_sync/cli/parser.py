"""The argument parser: every subcommand, and the option groups several of them share.

Shared groups are written once: database and selection, source and destination buckets,
copying (ACL, threads, --force, --report), and the SQS queue.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from mastodon_s3_sync import __version__
from mastodon_s3_sync.cli.ops_flags import Subcommands, add_commands
from mastodon_s3_sync.cli.progress import PLAIN_INTERVAL_SECONDS
from mastodon_s3_sync.config.checks import endpoint
from mastodon_s3_sync.config.settings import (
    DEFAULT_WORKERS,
    MAX_PAGE_SIZE,
    URL_FORM,
    AclMode,
    PrivateObjects,
)
from mastodon_s3_sync.copying.verify import DEFAULT_SAMPLE
from mastodon_s3_sync.demo.schema import SchemaVersion
from mastodon_s3_sync.mastodon.layout import RecordType

PROG = "mastodon-s3-sync"


def _public_url(text: str) -> str:
    try:
        return str(endpoint(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--public-url: {error}") from None


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
    _add_settings_sources(group)
    group.add_argument(
        "--type",
        dest="types",
        action="extend",
        nargs="+",
        metavar="TYPE",
        help=f"{', '.join(RecordType)} or all (default: all)",
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
        "--skip-backups",
        action="store_true",
        help="leave users' archive downloads behind (they expire after 7 days)",
    )
    _add_page_size(group)


def _add_settings_sources(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--config", type=Path, help="TOML config file ([database], [source], …)")
    group.add_argument(
        "--mastodon-env",
        type=Path,
        metavar="FILE",
        help="Mastodon's .env.production: the database and source bucket from DB_*, S3_*, "
        "AWS_* (the config file and flags override it)",
    )
    group.add_argument("--database-url", help=f"Mastodon's database: {URL_FORM}")


def _add_page_size(group: argparse._ArgumentGroup) -> None:
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
    _add_plan_command(commands)
    _add_copy_commands(commands)
    _add_fanout_commands(commands)
    _add_orphans_command(commands)
    _add_demo_command(commands)
    add_commands(commands)
    _add_config_command(commands)
    return parser


def _add_plan_command(commands: Subcommands) -> None:
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


def _add_copy_commands(commands: Subcommands) -> None:
    run = commands.add_parser(
        "run",
        help="copy every object from the source to the destination bucket",
        description="Enumerate the objects from the database and copy them with a pool of "
        "threads: bytes, headers and ACL intact; what is already there is skipped.",
    )
    _add_database_options(run)
    _add_copy_options(run)
    repair = run.add_argument_group("repair and preflight")
    repair.add_argument(
        "--from-report",
        type=Path,
        metavar="VERIFY.json",
        help="copy again exactly the objects a verify --report found missing or different "
        "(size, headers, ACL), nothing else",
    )
    _add_allow_missing(repair)
    verify = commands.add_parser(
        "verify",
        help="check that the destination holds every object, as the source has it",
        description="From the database, check each object at the destination: present, "
        "same size as at the source (from bucket listings: about 2 requests per 1,000 "
        "objects), and for a random sample (or --full) the same headers and ACL class. "
        "Exit status 1 when anything is missing or different.",
    )
    _add_database_options(verify)
    _add_output_options(verify)
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
    _add_private_objects(checks)
    checks.add_argument(
        "--public-url",
        type=_public_url,
        metavar="BASE",
        help="read the sampled objects anonymously at BASE/<key> (the URL Mastodon links to: "
        "https://S3_ALIAS_HOST, a CDN, or the bucket's endpoint): public ones must answer "
        "200 with their size and Content-Type, private ones must not answer 200",
    )
    checks.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report")
    _add_allow_missing(checks)


def _add_fanout_commands(commands: Subcommands) -> None:
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
    # No database here: only the files the buckets come from.
    worker.add_argument("--config", type=Path, help="TOML config file ([source], [destination])")
    worker.add_argument(
        "--mastodon-env", type=Path, metavar="FILE", help="Mastodon's .env: the source bucket"
    )
    _add_copy_options(worker)
    worker.add_argument(
        "--until-empty", action="store_true", help="stop when the queue has no message left"
    )


def _add_orphans_command(commands: Subcommands) -> None:
    orphans = commands.add_parser(
        "orphans",
        help="what the source bucket holds that no database row references (never deletes)",
        description="List the source bucket under Mastodon's folders, and separately "
        "everything outside them, and report per folder the objects and bytes no row "
        "references: what a copy of everything listed would have copied needlessly. "
        "About 1 list request per 1,000 objects and one pass over the database; deletes "
        "nothing.",
    )
    group = orphans.add_argument_group("database")
    _add_settings_sources(group)
    _add_page_size(group)
    _add_side_options(orphans, "source")
    orphans.add_argument(
        "--report", type=Path, metavar="FILE", help="write a JSON report with every key"
    )


def _add_demo_command(commands: Subcommands) -> None:
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
    demo.add_argument(
        "--from-disk",
        action="store_true",
        help="a Mastodon on local storage: copy its public/system to the new provider",
    )
    demo.add_argument(
        "--mastodon",
        choices=[version.value for version in SchemaVersion],
        default=SchemaVersion.CURRENT.value,
        metavar="RELEASE",
        help="the database shape of this Mastodon release, one of %(choices)s (default: "
        "%(default)s; 4.3 still has users' imports)",
    )


def _add_config_command(commands: Subcommands) -> None:
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


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output and logs")
    loudness = group.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v", "--verbose", action="store_true", help="log every object's outcome as well"
    )
    loudness.add_argument(
        "-q", "--quiet", action="store_true", help="no progress; only errors and the totals"
    )
    group.add_argument(
        "--log-file", type=Path, metavar="FILE", help="append the events (phases, totals) here"
    )
    group.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="json: one object per event and line (default %(default)s)",
    )
    group.add_argument(
        "--progress-every",
        type=_positive_seconds,
        default=PLAIN_INTERVAL_SECONDS,
        metavar="SECONDS",
        help="how often a progress line is printed off a terminal (default %(default)g)",
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--progress-every must be a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("--progress-every must be more than 0")
    return value


def _add_copy_options(parser: argparse.ArgumentParser) -> None:
    _add_output_options(parser)
    _add_bucket_options(parser)
    group = parser.add_argument_group("copying")
    _add_acl_and_workers(group, "copier threads")
    _add_private_objects(group)
    group.add_argument(
        "--force", action="store_true", help="copy even what the destination already holds"
    )
    group.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report")


def _add_allow_missing(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--allow-missing",
        action="store_true",
        help="go on when nearly none of the first referenced objects is at the source "
        "(otherwise a sign of a wrong source bucket or key prefix)",
    )


def _add_bucket_options(parser: argparse.ArgumentParser) -> None:
    for side in ("source", "destination"):
        _add_side_options(parser, side)


def _add_side_options(parser: argparse.ArgumentParser, side: str) -> None:
    group = parser.add_argument_group(f"{side} bucket (overrides [{side}] in --config)")
    group.add_argument(
        f"--{side}",
        metavar="s3://BUCKET[/PREFIX] | PATH",
        help="bucket, and Mastodon's S3_KEY_PREFIX if it has one; or a directory "
        "(file:///PATH or PATH): Mastodon's local public/system",
    )
    group.add_argument(f"--{side}-endpoint-url", metavar="URL", help="S3 endpoint (non-AWS)")
    group.add_argument(f"--{side}-region", metavar="REGION")
    group.add_argument(f"--{side}-profile", metavar="NAME", help="AWS config profile")
    group.add_argument(
        f"--{side}-ca-bundle",
        metavar="FILE",
        help="PEM file of the CA that signs the endpoint's certificate (a private CA)",
    )


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


def _add_private_objects(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--private-objects",
        choices=[str(choice) for choice in PrivateObjects],
        help="objects Mastodon made private (suspended accounts' media, ...) when the "
        "destination keeps no ACL (--acl none): withhold them and say so (default), copy "
        "them (the destination is not publicly readable), or skip them without a note",
    )


def _add_queue_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("queue")
    group.add_argument("--queue-url", required=True, metavar="URL", help="the copy queue")
    group.add_argument("--sqs-endpoint-url", metavar="URL", help="SQS endpoint (non-AWS, tests)")
    group.add_argument("--region", metavar="REGION", help="the queue's AWS region")
    group.add_argument("--profile", metavar="NAME", help="AWS config profile for SQS")
