"""The serverless operations' flags: ``start``, ``status``, ``redrive``, ``missing``.

Apart from :mod:`~mastodon_s3_sync.cli.ops_commands`, which runs them, so that building the
parser imports none of the AWS operations.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeAlias

from mastodon_s3_sync.contract import DEFAULT_STACK_NAME
from mastodon_s3_sync.mastodon.layout import RecordType

COMMANDS = ("start", "status", "redrive", "missing")
DEFAULT_WATCH_SECONDS = 30.0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--watch: a number of seconds") from None
    if value < 1:
        raise argparse.ArgumentTypeError("--watch: at least 1 second")
    return value


def _add_stack_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("deployed stack")
    group.add_argument(
        "--stack",
        metavar="NAME",
        help=f"CloudFormation stack name (default: [stack] stack_name in --config, "
        f"else {DEFAULT_STACK_NAME})",
    )
    group.add_argument("--config", type=Path, help="the TOML file the stack was deployed from")
    group.add_argument("--region", metavar="REGION", help="the stack's AWS region")
    group.add_argument("--profile", metavar="NAME", help="AWS config profile")
    group.add_argument(
        "--aws-endpoint-url",
        metavar="URL",
        help="send every AWS API call here (a local emulator such as moto_server; tests)",
    )


Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_commands(subparsers: Subcommands) -> None:
    """Register the operations subcommands."""
    _add_start(subparsers)
    _add_status(subparsers)
    _add_redrive(subparsers)
    _add_missing(subparsers)


def _add_start(subparsers: Subcommands) -> None:
    start = subparsers.add_parser(
        "start",
        help="start a serverless run: invoke the deployed enumerator, once per type",
        description="Invoke the stack's enumerator asynchronously, one invocation per type, "
        "all with the same run id; print the run id and how to follow it. With --resume, "
        "invoke it again with each event in the failed-events queue, from its cursor.",
    )
    start.add_argument(
        "types",
        nargs="*",
        metavar="TYPE",
        help=f"{', '.join(RecordType)}, or all",
    )
    start.add_argument(
        "--resume",
        action="store_true",
        help="go on with the enumerations that failed (status shows them), where each stopped",
    )
    start.add_argument(
        "--since",
        metavar="WHEN",
        help="only attachments changed since then: ISO time (UTC unless offset) or 90m/36h/7d",
    )
    start.add_argument(
        "--skip-remote-cache", action="store_true", help="only local media (see plan --help)"
    )
    start.add_argument(
        "--skip-backups",
        action="store_true",
        help="leave users' archive downloads behind (they expire after 7 days)",
    )
    start.add_argument(
        "--dry-run",
        action="store_true",
        help="count, send nothing: waits for the enumerator and prints its counts",
    )
    _add_stack_options(start)


def _add_status(subparsers: Subcommands) -> None:
    status = subparsers.add_parser(
        "status",
        help="progress of a serverless run: counts per type, queues, rate, ETA",
        description="Objects enumerated and processed per type (CloudWatch metrics over the "
        "run's time window), the copy queue and the DLQ, the recent rate and an ETA.",
    )
    status.add_argument("--run-id", metavar="ID", help="default: the latest run")
    status.add_argument(
        "--watch",
        nargs="?",
        const=DEFAULT_WATCH_SECONDS,
        type=_seconds,
        metavar="SECONDS",
        help=f"refresh every SECONDS (default {DEFAULT_WATCH_SECONDS:.0f}) until Ctrl-C",
    )
    _add_stack_options(status)


def _add_redrive(subparsers: Subcommands) -> None:
    redrive = subparsers.add_parser(
        "redrive",
        help="move the dead-letter queue's messages back to the copy queue",
        description="Start an SQS message move task from the DLQ to the copy queue and "
        "follow it until it is done.",
    )
    redrive.add_argument(
        "--max-per-second", type=int, metavar="N", help="messages moved per second at most"
    )
    _add_stack_options(redrive)


def _add_missing(subparsers: Subcommands) -> None:
    missing = subparsers.add_parser(
        "missing",
        help="list the keys the copiers found missing at the source (from their log)",
        description="Query the copier's log, and the enumerator's for keys it refused to "
        "send (CloudWatch Logs Insights), and print one key per line: key, outcome, reason, "
        "separated by tabs.",
    )
    missing.add_argument("--run-id", metavar="ID", help="default: the latest run")
    missing.add_argument(
        "--since",
        metavar="WHEN",
        help="from then on (ISO time or 90m/36h/7d); without --run-id: every run since then",
    )
    missing.add_argument(
        "--failed",
        action="store_true",
        help="failed keys too (a failed attempt may have succeeded on a retry; keys the "
        "enumerator refused to send)",
    )
    missing.add_argument(
        "--withheld",
        action="store_true",
        help="withheld keys too (private objects not copied to a destination without ACLs)",
    )
    missing.add_argument("--output", type=Path, metavar="FILE", help="write the keys here")
    _add_stack_options(missing)
