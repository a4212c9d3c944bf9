"""Enumeration speed and memory: ``plan --summary`` over generated media_attachments tables.

Starts a throwaway PostgreSQL on loopback, seeds each size with ``COPY`` (the sandbox's
realistic rows), runs the real command as a child process and reads its wall time and
peak RSS (GNU time). Memory must stay flat as the table grows. Writes the measurements to
benchmarks/results/enumeration.json; ``benchmarks/report.py`` puts them in RESULTS.md.

    .venv/bin/python -m benchmarks.plan_enumeration [--sizes 1000000 5000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.measure import timed
from benchmarks.versions import freeze_code, frozen_path, machine_description
from mastodon_s3_sync.demo.loader import insert_rows
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.schema import SchemaVersion, create_schema
from mastodon_s3_sync.demo.seed import generate_rows

RESULTS_JSON = Path(__file__).parent / "results" / "enumeration.json"
_SUMMARY_LINE = re.compile(r"^media_attachments\s+([\d,]+)\s+([\d,]+)")


def measure(url: str) -> dict[str, float]:
    """Run ``plan --summary`` once: seconds, CPU seconds, peak RSS and objects listed."""
    command = [sys.executable, "-m", "mastodon_s3_sync", "plan", "--summary"]
    run = timed([*command, "--type", "media_attachments", "--database-url", url])
    match = next(m for line in run.stderr.splitlines() if (m := _SUMMARY_LINE.match(line)))
    return {
        "seconds": run.seconds,
        "cpu_seconds": run.cpu_seconds,
        "peak_rss_mib": run.peak_rss_mib,
        "objects": int(match.group(2).replace(",", "")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS_JSON)
    args = parser.parse_args()
    started = time.perf_counter()
    results = []
    with LocalPostgres() as cluster, tempfile.TemporaryDirectory() as code:
        machine = machine_description(freeze_code(Path(code)))
        os.environ["PYTHONPATH"] = frozen_path(Path(code))  # every run measures one commit
        for size in args.sizes:
            name = f"bench_{size}"
            url = cluster.create_database(name)
            conn = cluster.connect(name)
            create_schema(conn, SchemaVersion.CURRENT)
            seeding = time.perf_counter()
            insert_rows(
                conn,
                "media_attachments",
                generate_rows("media_attachments", size, seed=1),
                SchemaVersion.CURRENT,
            )
            conn.run("VACUUM ANALYZE media_attachments")
            seed_seconds = time.perf_counter() - seeding
            conn.close()
            runs = []
            for number in range(args.runs):
                runs.append(measure(url))
                print(
                    f"{size:>9,} rows, run {number + 1}: {runs[-1]['seconds']:.1f} s, "
                    f"{size / runs[-1]['seconds']:,.0f} rows/s, "
                    f"{runs[-1]['peak_rss_mib']:.1f} MiB peak RSS (seeded in {seed_seconds:.0f} s)",
                    flush=True,
                )
            results.append({"rows": size, "seed_seconds": seed_seconds, "runs": runs})
            cluster.drop_database(name)
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/plan_enumeration.py", *sys.argv[1:]]),
        "elapsed_seconds": round(time.perf_counter() - started),
        "machine": machine,
        "page_size": 5000,
        "results": results,
    }
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
