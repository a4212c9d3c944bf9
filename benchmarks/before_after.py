"""CPU ms per object of ``mastodon-s3-sync run``: two commits side by side, same run.

The reduced copy scenario of benchmarks/copy_suite.py (servers reached directly, our tool
only) for a change that must not slow the copy: both commits' product code is unpacked
from git, and their runs alternate (before, after, after, before, …) over the same
dataset, PostgreSQL database and two ``rclone serve s3`` servers, each run into a fresh
destination bucket. The machine is shared, so wall time is noisy; the CPU time of the
tool's own process per object is the figure to compare.

    .venv/bin/python -m benchmarks.before_after BEFORE AFTER [--objects 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import tarfile
import tempfile
from pathlib import Path

from benchmarks.copy_suite import CONCURRENCY, Endpoint, Tools
from benchmarks.dataset import mastodon_mix, seed_database, upload
from benchmarks.versions import REPOSITORY, frozen_path
from mastodon_s3_sync.demo.media import create_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.s3servers import RcloneS3Server

RESULTS_JSON = Path(__file__).parent / "results" / "before_after.json"


def unpack(commit: str, directory: Path) -> str:
    """``src/`` and ``functions/`` of ``commit`` into ``directory``; its PYTHONPATH."""
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", commit, "src/mastodon_s3_sync", "functions"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return frozen_path(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="commit measured first in odd runs")
    parser.add_argument("after", help="commit compared with it")
    parser.add_argument("--objects", type=int, default=2000, help="objects in the mix")
    parser.add_argument("--runs", type=int, default=3, help="runs per commit")
    parser.add_argument("--output", type=Path, default=RESULTS_JSON)
    args = parser.parse_args()
    dataset = mastodon_mix(args.objects)
    print(f"dataset: {len(dataset.objects):,} objects, {dataset.total_bytes / 1e6:.0f} MB")
    with (
        LocalPostgres() as cluster,
        RcloneS3Server() as source_server,
        RcloneS3Server() as dest_server,
        tempfile.TemporaryDirectory() as scratch_name,
    ):
        scratch = Path(scratch_name)
        paths = {
            label: unpack(commit, scratch / label)
            for label, commit in (("before", args.before), ("after", args.after))
        }
        url = cluster.create_database("bench")
        with contextlib.closing(cluster.connect("bench")) as conn:
            seed_database(conn, dataset)
        create_bucket(source_server.client(), "src")
        upload(source_server.client(CONCURRENCY), "src", dataset)
        tools = Tools(scratch, url, dataset, "mix")
        source, dest = Endpoint(source_server, None), Endpoint(dest_server, None)
        records: list[dict[str, object]] = []
        for run in range(args.runs):
            order = ("before", "after") if run % 2 == 0 else ("after", "before")
            for label in order:
                os.environ["PYTHONPATH"] = paths[label]  # the child runs that commit's code
                bucket = dest.new_bucket(f"{label}-{run}")
                measured = tools.ours(source, "src", dest, bucket)
                dest.drop_bucket(bucket)
                record = {
                    "commit": label,
                    "run": run,
                    "seconds": measured.seconds,
                    "cpu_seconds": measured.cpu_seconds,
                    "cpu_ms_per_object": 1000 * measured.cpu_seconds / len(dataset.objects),
                    "objects_per_second": len(dataset.objects) / measured.seconds,
                }
                records.append(record)
                print(
                    f"  {label:<6} run {run + 1}: {measured.seconds:6.1f} s "
                    f"{record['objects_per_second']:6.1f} obj/s  "
                    f"CPU {record['cpu_ms_per_object']:.2f} ms/object",
                    flush=True,
                )
    summary = {}
    for label in ("before", "after"):
        mine = [r for r in records if r["commit"] == label]
        summary[label] = {
            "commit": getattr(args, label),
            "cpu_ms_per_object_median": statistics.median(
                float(str(r["cpu_ms_per_object"])) for r in mine
            ),
            "objects_per_second_median": statistics.median(
                float(str(r["objects_per_second"])) for r in mine
            ),
        }
        print(f"{label}: {summary[label]}")
    args.output.parent.mkdir(exist_ok=True)
    document = {
        "objects": len(dataset.objects),
        "bytes": dataset.total_bytes,
        "concurrency": CONCURRENCY,
        "summary": summary,
        "records": records,
    }
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
