"""The ``mastodon-s3-sync`` entry point: parse, run one command, turn errors into exit codes.

Exit status: 0 success, 1 failure during the work, 2 bad settings or usage,
3 database unreachable or not Mastodon's, 130 interrupted (Ctrl-C), 143 stopped (SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

import botocore.exceptions

from mastodon_s3_sync.cli.config_check import run_config_check
from mastodon_s3_sync.cli.copy_commands import run_copy, run_verify
from mastodon_s3_sync.cli.demo_command import run_demo
from mastodon_s3_sync.cli.fanout_commands import run_enumerate, run_worker_command
from mastodon_s3_sync.cli.interrupt import Terminated, interrupted_status, sigterm_interrupts
from mastodon_s3_sync.cli.logs import LOGGER, configure_logging
from mastodon_s3_sync.cli.ops_commands import run_ops_command
from mastodon_s3_sync.cli.orphans_command import run_orphans
from mastodon_s3_sync.cli.parser import PROG, build_parser
from mastodon_s3_sync.cli.plan_command import run_plan
from mastodon_s3_sync.copying.memory import return_large_buffers_to_the_os
from mastodon_s3_sync.errors import SyncError

Command = Callable[[argparse.Namespace, TextIO, TextIO], int]
"""A command: its parsed flags, stdout, stderr -> exit status."""

COMMANDS: dict[str, Command] = {
    "plan": run_plan,
    "run": run_copy,
    "verify": run_verify,
    "enumerate": run_enumerate,
    "worker": run_worker_command,
    "orphans": run_orphans,
    "demo": run_demo,
    "config": run_config_check,
}
"""Every command but the serverless operations, which :func:`run_ops_command` runs."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mastodon-s3-sync`` command."""
    args = build_parser().parse_args(argv)
    return_large_buffers_to_the_os()
    with sigterm_interrupts():
        return _run(args)


def _with_logs(args: argparse.Namespace, command: Command) -> int:
    """The command with the event log its flags ask for, closed when it is done."""
    handler = configure_logging(args, sys.stderr)
    try:
        return command(args, sys.stdout, sys.stderr)
    finally:
        if handler is not None:
            LOGGER.removeHandler(handler)
            handler.close()


def _run(args: argparse.Namespace) -> int:
    """One command, its errors turned into one line and an exit status."""
    try:
        if (status := run_ops_command(args, sys.stdout, sys.stderr)) is not None:
            return status
        return _with_logs(args, COMMANDS[args.command])
    except SyncError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.exit_code
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        # Past the checks that name a setting: a request failed after all its retries.
        reason = " ".join(str(error).split())
        print(f"{PROG}: error: a request failed after its retries: {reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        how = " (SIGTERM)" if isinstance(interrupt, Terminated) else ""
        print(f"{PROG}: interrupted{how}", file=sys.stderr)
        return interrupted_status(interrupt)
    except BrokenPipeError:
        # The reader went away (``plan | head``): not an error; silence the final flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
