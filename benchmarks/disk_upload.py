"""Disk -> object storage: ``mastodon-s3-sync run`` from a ``public/system`` directory vs
``rclone copy`` of the same directory (the blog posts' way, without the database).

A Mastodon mix (benchmarks/dataset.py) is written to a directory and described by a real
database; the destination is ``rclone serve s3`` on loopback. Per run, each tool copies the
whole directory into a fresh bucket (runs alternate, order rotated); then one 1 GiB file
gives each tool's peak RSS. Every tool is timed by GNU time (wall, its own CPU, peak RSS).

    .venv/bin/python -m benchmarks.disk_upload [--objects 1000] [--runs 3] [--large-mib 1024]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.dataset import MIB, body, large_object, mastodon_mix, seed_database, upload
from benchmarks.measure import Measurement, timed
from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.demo.media import create_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.s3servers import RcloneS3Server, find_program
from mastodon_s3_sync.storage.disk import DiskObjects, disk_client

RESULTS_JSON = Path(__file__).parent / "results" / "disk_upload.json"
CONCURRENCY = 16
REGION = "us-east-1"
PART_MIB = 16


def ours(
    scratch: Path, database_url: str, root: Path, server: RcloneS3Server, bucket: str
) -> Measurement:
    """``mastodon-s3-sync run`` from the directory (no ACLs: rclone serve s3 keeps none)."""
    config = scratch / "disk.toml"
    source = BucketSettings(path=str(root))
    config.write_text(config_toml(database_url, source, server.bucket_settings(bucket)))
    command = [sys.executable, "-m", "mastodon_s3_sync", "run", "--config", str(config)]
    return timed([*command, "--acl", "none", "--workers", str(CONCURRENCY)])


def rclone_copy(root: Path, server: RcloneS3Server, bucket: str) -> Measurement:
    """``rclone copy DIR dst:BUCKET``: every file of the directory, no database."""
    env = {
        "RCLONE_CONFIG_DST_TYPE": "s3",
        "RCLONE_CONFIG_DST_PROVIDER": "Other",
        "RCLONE_CONFIG_DST_ENDPOINT": server.endpoint_url,
        "RCLONE_CONFIG_DST_ACCESS_KEY_ID": server.access_key_id,
        "RCLONE_CONFIG_DST_SECRET_ACCESS_KEY": server.secret_access_key,
        "RCLONE_CONFIG_DST_REGION": REGION,
    }
    command = [str(find_program("rclone")), "copy", "--config", os.devnull, str(root)]
    flags = ["--transfers", str(CONCURRENCY), "--checkers", str(CONCURRENCY)]
    return timed([*command, f"dst:{bucket}", *flags], env)


def write_large(root: Path, key: str, size: int) -> None:
    """One file of ``size`` bytes, written part by part (no big buffer here either)."""
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for number, start in enumerate(range(0, size, PART_MIB * MIB), start=1):
            out.write(body(min(PART_MIB * MIB, size - start), f"{key}:{number}"))


def summary(records: list[dict[str, float]], objects: int) -> dict[str, float]:
    """Medians: objects/s, CPU ms per object, peak RSS."""
    return {
        "objects_per_second": statistics.median(objects / r["seconds"] for r in records),
        "cpu_ms_per_object": statistics.median(1000 * r["cpu_seconds"] / objects for r in records),
        "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000, help="objects in the mix")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool")
    parser.add_argument("--large-mib", type=int, default=1024, help="the large file (0: none)")
    parser.add_argument("--output", type=Path, default=RESULTS_JSON)
    args = parser.parse_args()
    dataset = mastodon_mix(args.objects)
    with (
        LocalPostgres() as cluster,
        RcloneS3Server() as server,
        tempfile.TemporaryDirectory() as scratch_name,
    ):
        scratch = Path(scratch_name)
        root = scratch / "system"
        root.mkdir()
        url = cluster.create_database("bench")
        with contextlib.closing(cluster.connect("bench")) as conn:
            seed_database(conn, dataset)
        upload(disk_client(DiskObjects(root)), str(root), dataset)
        print(f"dataset: {len(dataset.objects):,} files, {dataset.total_bytes / 1e6:.0f} MB")
        tools: dict[str, Callable[[str], Measurement]] = {
            "mastodon-s3-sync run": lambda bucket: ours(scratch, url, root, server, bucket),
            "rclone copy DIR": lambda bucket: rclone_copy(root, server, bucket),
        }
        mix: dict[str, list[dict[str, float]]] = {tool: [] for tool in tools}
        for run in range(args.runs):
            names = list(tools)
            for tool in names[run % len(names) :] + names[: run % len(names)]:
                bucket = f"mix-{run}-{len(mix[tool])}-{tool.split()[0]}".lower()
                create_bucket(server.client(), bucket)
                measured = tools[tool](bucket)
                mix[tool].append(
                    {
                        "seconds": measured.seconds,
                        "cpu_seconds": measured.cpu_seconds,
                        "peak_rss_mib": measured.peak_rss_mib,
                    }
                )
                print(f"{tool}: {measured.seconds:.1f} s, CPU {measured.cpu_seconds:.1f} s")
        large: dict[str, float] = {}
        if args.large_mib:
            big = large_object(args.large_mib * MIB)
            large_url = cluster.create_database("large")
            with contextlib.closing(cluster.connect("large")) as conn:
                seed_database(conn, big)
            large_root = scratch / "large"
            write_large(large_root, big.objects[0].key, args.large_mib * MIB)
            copies: dict[str, Callable[[str], Measurement]] = {
                "mastodon-s3-sync run": lambda b: ours(scratch, large_url, large_root, server, b),
                "rclone copy DIR": lambda b: rclone_copy(large_root, server, b),
            }
            for tool, copy in copies.items():
                bucket = f"large-{tool.split()[0]}".lower()
                create_bucket(server.client(), bucket)
                large[tool] = copy(bucket).peak_rss_mib
                print(f"{tool}, {args.large_mib} MiB file: peak RSS {large[tool]:.0f} MiB")
    document = {
        "objects": len(dataset.objects),
        "bytes": dataset.total_bytes,
        "runs": args.runs,
        "load_average": os.getloadavg()[0],
        "mix": {tool: summary(records, len(dataset.objects)) for tool, records in mix.items()},
        "large_file_mib": args.large_mib,
        "large_file_peak_rss_mib": large,
    }
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
