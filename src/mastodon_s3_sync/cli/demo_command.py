"""``demo``: a whole migration on this machine, through the real ``run`` and ``verify``."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mastodon_s3_sync.cli.copy_commands import run_copy, run_verify
from mastodon_s3_sync.cli.parser import build_parser

if TYPE_CHECKING:
    from mastodon_s3_sync.demo.sandbox import Sandbox


def run_demo(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``demo``: the real ``run`` and ``verify`` between two local providers."""
    from mastodon_s3_sync.demo.sandbox import (  # needs the demo extra (moto)
        DEMO_COUNTS,
        QUICK_COUNTS,
        sandbox,
    )

    reports: Path = args.reports
    reports.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mastodon-s3-sync-demo-") as work:
        print("starting PostgreSQL and two S3 servers, generating a Mastodon…", file=stderr)
        with sandbox(Path(work), QUICK_COUNTS if args.quick else DEMO_COUNTS) as box:
            status = _migrate(box, reports, stdout, stderr)
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


def _migrate(box: Sandbox, reports: Path, stdout: TextIO, stderr: TextIO) -> int:
    """``run`` then ``verify`` on the sandbox, and a check that private stayed private."""
    seeded = box.manifest
    print(
        f"{', '.join(f'{count:,} {table}' for table, count in box.rows.items())}; "
        f"source bucket: {len(seeded.objects):,} objects "
        f"({seeded.total_bytes / 1024**2:,.1f} MiB), {len(seeded.missing)} files gone, "
        f"{len(seeded.legacy)} at their legacy placement",
        file=stderr,
    )
    run_report, verify_report = reports / "demo-run-report.json", reports / "demo-verify.json"
    config = ["--config", str(box.config)]
    print("\n== run: copy from the old provider to the new one", file=stderr)
    run = build_parser().parse_args(["run", *config, "--report", str(run_report)])
    copied = run_copy(run, stdout, stderr)
    print("\n== verify: is everything at the new provider, as it was?", file=stderr)
    verify = build_parser().parse_args(["verify", *config, "--report", str(verify_report)])
    verified = run_verify(verify, stdout, stderr)
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
    return status
