"""``demo``: a whole migration on this machine, through the real ``run``, ``verify`` and
``orphans``."""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mastodon_s3_sync.cli.copy_commands import run_copy, run_verify
from mastodon_s3_sync.cli.interrupt import STOP_STATUSES, interrupted_status
from mastodon_s3_sync.cli.orphans_command import run_orphans
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
    from mastodon_s3_sync.demo.schema import SchemaVersion

    reports: Path = args.reports
    reports.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mastodon-s3-sync-demo-") as work:
        print("starting PostgreSQL and two S3 servers, generating a Mastodon…", file=stderr)
        counts = QUICK_COUNTS if args.quick else DEMO_COUNTS
        with sandbox(
            Path(work), counts, SchemaVersion(args.mastodon), from_disk=args.from_disk
        ) as box:
            status = _migrate(box, reports, stdout, stderr)
            if args.keep and status not in STOP_STATUSES:
                print(
                    f"\n{box.describe()}\ntry: mastodon-s3-sync plan --config {box.config} "
                    "--summary\nrunning; Ctrl-C (or SIGTERM) stops everything",
                    file=stderr,
                    flush=True,
                )
                try:
                    threading.Event().wait()
                except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM: the way to end it
                    status = interrupted_status(interrupt)
        print("stopped the sandbox", file=stderr)
    return status


def _migrate(box: Sandbox, reports: Path, stdout: TextIO, stderr: TextIO) -> int:
    """``run``, ``verify`` (also as a stranger reads) and ``orphans`` on the sandbox, a check
    that private stayed private, and a run to a destination without ACLs that withholds it."""
    from mastodon_s3_sync.demo.sandbox import NO_ACL_BUCKET

    seeded, clock = box.manifest, time.monotonic()
    print(
        f"{', '.join(f'{count:,} {table}' for table, count in box.rows.items())}; "
        f"{'source directory' if isinstance(box.source, Path) else 'source bucket'}: "
        f"{len(seeded.objects):,} objects "
        f"({seeded.total_bytes / 1024**2:,.1f} MiB), {len(seeded.missing)} files gone, "
        f"{len(seeded.legacy)} at their legacy placement, and {len(box.leftovers)} objects no "
        "row references",
        file=stderr,
    )
    run_report, verify_report = reports / "demo-run-report.json", reports / "demo-verify.json"
    orphans_report = reports / "demo-orphans.json"
    no_acl_report = reports / "demo-run-no-acls.json"
    config = ["--config", str(box.config)]
    print("\n== run: copy from the old provider to the new one", file=stderr)
    run = build_parser().parse_args(["run", *config, "--report", str(run_report)])
    copied = run_copy(run, stdout, stderr)
    if copied in STOP_STATUSES:  # stopped by Ctrl-C or SIGTERM: so is the demo
        return copied
    print(
        "\n== verify: is everything at the new provider, as it was, and does a stranger read "
        "the public objects and not the private ones?",
        file=stderr,
    )
    verify = build_parser().parse_args(
        ["verify", *config, "--public-url", box.public_url, "--report", str(verify_report)]
    )
    verified = run_verify(verify, stdout, stderr)
    print(
        f"\n== run --acl none to s3://{NO_ACL_BUCKET}: a destination that keeps no ACL (R2, "
        "BucketOwnerEnforced) would make private objects public, so they are withheld",
        file=stderr,
    )
    no_acl_flags = ["--destination", f"s3://{NO_ACL_BUCKET}", "--acl", "none"]
    no_acl = build_parser().parse_args(
        ["run", *config, *no_acl_flags, "--report", str(no_acl_report)]
    )
    withheld_run = run_copy(no_acl, stdout, stderr)
    if withheld_run in STOP_STATUSES:
        return withheld_run
    if isinstance(box.source, Path):
        print(f"\n(orphans lists buckets only: not run on {box.source})", file=stderr)
        listed, found = 0, None
    else:
        print("\n== orphans: what the old bucket holds that no row references", file=stderr)
        orphans = build_parser().parse_args(["orphans", *config, "--report", str(orphans_report)])
        listed = run_orphans(orphans, stdout, stderr)
        found = {entry["key"] for entry in json.loads(orphans_report.read_text())["orphan_keys"]}
    private = box.private_objects_still_private()
    at_source = sum(count for count, _ in private.values())
    kept = sum(count for _, count in private.values())
    print(
        "\nprivate objects (a suspended account's media, users' archive downloads): "
        + ", ".join(f"{record_type} {count}" for record_type, (count, _) in private.items())
        + f"; {at_source} at the source, {kept} of them still private at the destination",
        file=stderr,
    )
    if found is not None:
        print(
            f"left behind on purpose: {len(found)} objects no row references"
            + (" (exactly the ones seeded)" if found == set(box.leftovers) else ", NOT the seeded"),
            file=stderr,
        )
    status = copied or verified or withheld_run or listed or (0 if kept == at_source else 1)
    status = status or (0 if found is None or found == set(box.leftovers) else 1)
    orphans_note = f", {orphans_report} (what nothing references)" if found is not None else ""
    print(
        f"{'demo: OK' if status == 0 else 'demo: FAILED'} in {time.monotonic() - clock:.1f} s "
        f"— reports: {run_report} (what was copied, what is missing and why), {verify_report} "
        f"(the proof), {no_acl_report} (what was withheld)" + orphans_note,
        file=stderr,
    )
    return status
