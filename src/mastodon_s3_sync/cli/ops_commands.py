"""The serverless operations commands: ``start``, ``status``, ``redrive``, ``missing``.

Flags and printing only: the clients are built and the stack found once, here; the work is
in :mod:`mastodon_s3_sync.ops`, one module per command.
"""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, TypeAlias

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

from mastodon_s3_sync.config.checks import endpoint_setting
from mastodon_s3_sync.config.values import parse_since
from mastodon_s3_sync.contract import DEFAULT_STACK_NAME
from mastodon_s3_sync.errors import SettingsError, SyncError
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.ops.failed_events import resume_failed_events
from mastodon_s3_sync.ops.missing import logged_keys
from mastodon_s3_sync.ops.redrive import MoveTask, redrive
from mastodon_s3_sync.ops.runs import latest_run_id, run_start
from mastodon_s3_sync.ops.stack import (
    AwsClients,
    StackOutputs,
    configured_stack_name,
    find_stack,
    make_clients,
)
from mastodon_s3_sync.ops.start import start_run
from mastodon_s3_sync.ops.status import format_status, read_status
from mastodon_s3_sync.outcomes import Outcome

COMMANDS = ("start", "status", "redrive", "missing")
DEFAULT_WATCH_SECONDS = 30.0
CLEAR_SCREEN = "\x1b[H\x1b[2J"


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


def run_ops_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int | None:
    """Run ``start``/``status``/``redrive``/``missing``; None for any other command."""
    if args.command not in COMMANDS:
        return None
    try:
        endpoint = args.aws_endpoint_url
        if endpoint:
            endpoint_setting(endpoint, "--aws-endpoint-url")
        clients = make_clients(args.region, args.profile, endpoint)
        stack_name = args.stack or configured_stack_name(args.config)
        stack = find_stack(clients.cloudformation, stack_name)
        if args.command == "start":
            return _start(clients, stack, args, stdout)
        if args.command == "status":
            return _status(clients, stack, args, stdout)
        if args.command == "redrive":
            return _redrive(clients, stack, args, stderr)
        return _missing(clients, stack, args, stdout, stderr)
    except NoCredentialsError:
        raise SettingsError(
            "no AWS credentials: pass --profile NAME, or set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    except ProfileNotFound as error:
        raise SettingsError(f"--profile: {error}") from None
    except (BotoCoreError, ClientError) as error:
        raise SyncError(f"AWS: {error}") from None


def _follow_hint(stack: StackOutputs, run_id: str) -> str:
    option = "" if stack.stack_name == DEFAULT_STACK_NAME else f" --stack {stack.stack_name}"
    return f"mastodon-s3-sync status --run-id {run_id}{option} --watch"


def _start(
    clients: AwsClients, stack: StackOutputs, args: argparse.Namespace, stdout: TextIO
) -> int:
    if args.resume:
        return _resume(clients, stack, args, stdout)
    if not args.types:
        raise SettingsError(f"start: name the types to enumerate ({', '.join(RecordType)}, or all)")
    started = start_run(
        clients.lambda_,
        stack,
        args.types,
        datetime.now(UTC),
        since=args.since,
        skip_remote_cache=args.skip_remote_cache,
        skip_backups=args.skip_backups,
        dry_run=args.dry_run,
    )
    types = ", ".join(event["type"][0] for event in started.events)
    left_out = [str(line) for line in started.left_out]
    since = started.events[0].get("since")
    selection = f"{types}" + (f", changed since {since}" if since else "")
    if args.dry_run:
        print(f"dry run {started.run_id} ({selection}): nothing sent", file=stdout)
        for answer in started.dry_run_answers:
            for name, count in answer["counts"].items():
                line = f"  {name}: {count['rows']:,} rows, {count['objects']:,} objects"
                if answer.get("continued"):
                    line += " so far (it continues in a new invocation; counts not reported)"
                print(line, file=stdout)
            left_out += [f"{name}: {why}" for name, why in answer.get("left_out", {}).items()]
        for line in left_out:
            print(f"  {line}", file=stdout)
        return 0
    print(f"run {started.run_id} started: enumerating {selection}", file=stdout)
    for line in left_out:
        print(f"  {line}", file=stdout)
    print(f"follow it: {_follow_hint(stack, started.run_id)}", file=stdout)
    print(f"dashboard: {stack.dashboard_url}", file=stdout)
    return 0


def _resume(
    clients: AwsClients, stack: StackOutputs, args: argparse.Namespace, stdout: TextIO
) -> int:
    others = [
        flag
        for flag in ("since", "skip_remote_cache", "skip_backups", "dry_run")
        if getattr(args, flag)
    ]
    if args.types or others:
        named = [*args.types, *(f"--{flag.replace('_', '-')}" for flag in others)]
        raise SettingsError(
            f"start --resume: takes no {' or '.join(named)}: each failed event says what to "
            "enumerate"
        )
    done = resume_failed_events(clients.lambda_, clients.sqs, stack, datetime.now(UTC))
    for failed in done.resumed:
        print(f"resumed: {failed.cursor()}", file=stdout)
    for failed, reason in done.refused:
        print(f"left in the failed-events queue: {failed.cursor()}: {reason}", file=stdout)
    if not done.resumed and not done.refused:
        print("nothing to resume: the failed-events queue is empty", file=stdout)
        return 0
    run_ids = sorted({str(f.event.get("run_id")) for f in done.resumed if f.event is not None})
    for run_id in run_ids:
        print(f"follow it: {_follow_hint(stack, run_id)}", file=stdout)
    return 0 if not done.refused else 1


def _status(
    clients: AwsClients, stack: StackOutputs, args: argparse.Namespace, stdout: TextIO
) -> int:
    run_id = args.run_id or latest_run_id(clients.logs, stack, datetime.now(UTC))

    def text() -> str:
        return format_status(
            read_status(clients.cloudwatch, clients.sqs, stack, run_id, datetime.now(UTC))
        )

    if args.watch is None:
        print(text(), file=stdout)
        return 0
    live = stdout.isatty()
    stop = threading.Event()  # Ctrl-C ends the loop between refreshes, never mid-request
    previous = signal.signal(signal.SIGINT, lambda _signal, _frame: stop.set())
    try:
        while not stop.is_set():
            block = text()
            stdout.write(f"{CLEAR_SCREEN}{block}\n" if live else f"{block}\n\n")
            stdout.flush()
            stop.wait(args.watch)
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0


def _redrive(
    clients: AwsClients, stack: StackOutputs, args: argparse.Namespace, stderr: TextIO
) -> int:
    shown: list[tuple[int, int | None]] = []

    def progress(task: MoveTask) -> None:
        if shown and shown[-1] == (task.moved, task.to_move):
            return
        shown.append((task.moved, task.to_move))
        of = "?" if task.to_move is None else f"{task.to_move:,}"
        print(f"redrive: {task.moved:,} of {of} messages moved", file=stderr, flush=True)

    task = redrive(clients.sqs, stack, progress, args.max_per_second)
    print(f"redrive done: {task.moved:,} messages are back in the copy queue", file=stderr)
    return 0


def _check_output(path: Path) -> None:
    """Before any query: a file whose directory is missing fails only after the queries."""
    if not path.parent.is_dir():
        raise SettingsError(
            f"--output {path}: directory {str(path.parent)!r} does not exist; create it or "
            "pass a file in an existing directory"
        )


def _missing(
    clients: AwsClients,
    stack: StackOutputs,
    args: argparse.Namespace,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    if args.output:
        _check_output(args.output)
    now = datetime.now(UTC)
    run_id = args.run_id
    if run_id is None and args.since is None:
        run_id = latest_run_id(clients.logs, stack, now)
    if args.since is not None:
        begin = parse_since(args.since, now).replace(tzinfo=UTC)
    else:
        begin = run_start(run_id)
    outcomes = (
        Outcome.MISSING,
        *((Outcome.WITHHELD,) if args.withheld else ()),
        *((Outcome.FAILED,) if args.failed else ()),
    )
    found = logged_keys(clients.logs, stack, begin, now, run_id=run_id, outcomes=outcomes)
    lines = "".join(f"{k.key}\t{k.outcome}\t{k.reason}\n" for k in found.keys)
    if args.output:
        try:
            args.output.write_text(lines, encoding="utf-8")
        except OSError as error:
            raise SettingsError(
                f"--output {args.output}: cannot write it: {error.strerror or error}"
            ) from None
    else:
        stdout.write(lines)
        stdout.flush()
    scope = f"run {run_id}" if run_id else "every run"
    where = f" -> {args.output}" if args.output else ""
    print(
        f"{len(found.keys):,} keys ({' or '.join(o.value for o in outcomes)}) in the functions' "
        f"logs, {scope}, since {begin:%Y-%m-%d %H:%M} UTC{where}",
        file=stderr,
    )
    if not found.complete:
        print(
            "warning: more lines in one second than Logs Insights returns: the list is incomplete",
            file=stderr,
        )
    return 0
