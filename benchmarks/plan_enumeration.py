"""Enumeration speed and memory: ``plan --summary`` over generated media_attachments tables.

Starts a throwaway PostgreSQL on loopback, seeds each size, runs the real command as a
child process and reads its wall time and peak RSS (``wait4``). Memory must stay flat as
the table grows. Writes a markdown table to benchmarks/results/plan_enumeration.md.

    .venv/bin/python benchmarks/plan_enumeration.py [--sizes 200000 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from mastodon_s3_sync.sandbox.postgres import LocalPostgres
from mastodon_s3_sync.sandbox.schema import SchemaVersion, create_schema
from mastodon_s3_sync.sandbox.seed import generate_rows, insert_rows
from measure import timed

RESULTS = Path(__file__).parent / "results" / "plan_enumeration.md"


def measure(url: str) -> tuple[float, float, str]:
    """Run ``plan --summary`` once: (seconds, peak RSS in MiB, its summary line)."""
    command = [sys.executable, "-m", "mastodon_s3_sync", "plan", "--summary"]
    run = timed([*command, "--type", "media_attachments", "--database-url", url])
    line = next(x for x in run.stderr.splitlines() if x.startswith("media_attachments"))
    return run.seconds, run.peak_rss_mib, line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with LocalPostgres() as cluster:
        for size in args.sizes:
            name = f"bench_{size}"
            url = cluster.create_database(name)
            conn = cluster.connect(name)
            create_schema(conn, SchemaVersion.CURRENT)
            seeded = time.perf_counter()
            insert_rows(
                conn,
                "media_attachments",
                generate_rows("media_attachments", size, seed=1),
                SchemaVersion.CURRENT,
            )
            conn.run("VACUUM ANALYZE media_attachments")
            seed_seconds = time.perf_counter() - seeded
            conn.close()
            runs = [measure(url) for _ in range(args.runs)]
            seconds = statistics.median(run[0] for run in runs)
            rss = statistics.median(run[1] for run in runs)
            print(
                f"{size:>9,} rows: {seconds:.1f} s, {size / seconds:,.0f} rows/s, "
                f"{rss:.1f} MiB peak RSS (seeded in {seed_seconds:.0f} s)\n  {runs[0][2]}"
            )
            rows.append((size, seconds, min(r[0] for r in runs), max(r[0] for r in runs), rss))
            cluster.drop_database(name)
    lines = [
        "# `plan --summary` over media_attachments",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, PostgreSQL on loopback (same machine). "
        f"Median of {args.runs} runs; page size 5000.",
        "",
        "| rows | median s | min-max s | rows/s | peak RSS MiB |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, seconds, low, high, rss in rows:
        rate = size / seconds
        lines.append(
            f"| {size:,} | {seconds:.1f} | {low:.1f}-{high:.1f} | {rate:,.0f} | {rss:.1f} |"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
