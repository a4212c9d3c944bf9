"""``plan``: the dry run, every object key to stdout and a summary to stderr."""

from __future__ import annotations

import argparse
import time
from typing import TextIO

from mastodon_s3_sync.cli.arguments import catalog_filter, selection, settings_from_args
from mastodon_s3_sync.cli.preflight import open_catalog
from mastodon_s3_sync.cli.progress import row_bars
from mastodon_s3_sync.mastodon.plan import format_summary, write_plan


def run_plan(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``plan``: keys to stdout, summary to stderr (with a line per kind left out)."""
    filt = catalog_filter(args)
    settings = settings_from_args(args)
    chosen = selection(args, settings)
    started = time.monotonic()
    with open_catalog(settings, chosen.record_types, args.key_prefix) as catalog:
        out = None if args.summary else stdout
        left_out = chosen.left_out(catalog)
        summaries = write_plan(catalog, chosen.walked(catalog), filt, out, row_bars(stderr))
    stdout.flush()
    print(format_summary(summaries, time.monotonic() - started, left_out), file=stderr)
    return 0
