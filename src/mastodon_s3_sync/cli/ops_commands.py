"""The serverless operations commands: ``start``, ``status``, ``redrive``, ``missing``.

Printing only (the flags are in :mod:`~mastodon_s3_sync.cli.ops_flags`): the clients are
built and the stack found once, here; the work is in :mod:`mastodon_s3_sync.ops`, one module
per command.
"""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

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

CLEAR_SCREEN = "\x1b[H\x1b[2J"


def run_ops_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """Run ``start``, ``status``, ``redrive`` or ``missing``."""
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
