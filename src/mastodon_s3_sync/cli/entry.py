"""The ``mastodon-s3-sync`` entry point: parse, run one command, turn errors into exit codes.

Exit status: 0 success, 1 failure during the work, 2 bad settings or usage,
3 database unreachable or not Mastodon's, 130 interrupted (Ctrl-C), 143 stopped (SIGTERM).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO, cast

import botocore.exceptions

from mastodon_s3_sync.cli.interrupt import Terminated, interrupted_status, sigterm_interrupts
from mastodon_s3_sync.cli.logs import LOGGER, configure_logging
from mastodon_s3_sync.cli.ops_flags import COMMANDS as OPERATIONS
from mastodon_s3_sync.cli.parser import PROG, build_parser
from mastodon_s3_sync.copying.memory import return_large_buffers_to_the_os
from mastodon_s3_sync.errors import SyncError

Command = Callable[[argparse.Namespace, TextIO, TextIO], int]
"""A command: its parsed flags, stdout, stderr -> exit status."""

COMMANDS: dict[str, str] = {
    "plan": "plan_command:run_plan",
    "run": "copy_commands:run_copy",
    "verify": "copy_commands:run_verify",
    "enumerate": "fanout_commands:run_enumerate",
    "worker": "fanout_commands:run_worker_command",
    "orphans": "orphans_command:run_orphans",
    "demo": "demo_command:run_demo",
    "config": "config_check:run_config_check",
    **dict.fromkeys(OPERATIONS, "ops_commands:run_ops_command"),
}
"""Each command's ``module:function`` in this package: only the module of the command being
run is imported (the others bring in PostgreSQL, AWS and sandbox code it does not use)."""


def command(name: str) -> Command:
    """The function that runs the command ``name``, its module imported now."""
    module, _, function = COMMANDS[name].partition(":")
    return cast(Command, getattr(importlib.import_module(f"{__package__}.{module}"), function))


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
        return _with_logs(args, command(args.command))
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
