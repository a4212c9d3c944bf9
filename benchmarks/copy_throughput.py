"""Copy throughput and memory: ``mastodon-s3-sync run`` beside ``rclone copy --files-from``.

Two ``rclone serve s3`` servers on loopback stand for two providers. The dataset is a
deterministic Mastodon-like mix of 3,000 objects (previews, avatars/emoji, originals,
preview cards, videos) described by a generated database. Each tool copies it into a
fresh destination bucket with 16-way concurrency, several runs, medians reported. Then
one 1 GiB object is copied by ``run`` alone to measure peak RSS.

    .venv/bin/python benchmarks/copy_throughput.py [--runs 3] [--skip-large]

Writes benchmarks/results/copy_throughput.md. Only loopback traffic.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mastodon_s3_sync.catalog import Catalog, CatalogFilter
from mastodon_s3_sync.layout import RecordType
from mastodon_s3_sync.sandbox.media import create_bucket
from mastodon_s3_sync.sandbox.postgres import LocalPostgres
from mastodon_s3_sync.sandbox.s3servers import RcloneS3Server, find_program
from mastodon_s3_sync.sandbox.schema import SchemaVersion, create_schema
from mastodon_s3_sync.settings import config_toml
from measure import Measurement, timed

if TYPE_CHECKING:
    import pg8000.native
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

RESULTS = Path(__file__).parent / "results" / "copy_throughput.md"
KIB, MIB = 1024, 1024 * 1024
CONCURRENCY = 16
NOW = datetime(2026, 1, 1)
BLOCK = random.Random(0).randbytes(4 * MIB)


def body(size: int, salt: int) -> bytes:
    """Deterministic incompressible-looking bytes of ``size``."""
    start = (salt * 7919) % len(BLOCK)
    out = bytearray()
    while len(out) < size:
        out += BLOCK[start : start + size - len(out)]
        start = 0
    return bytes(out)


def seed_database(conn: pg8000.native.Connection, rng: random.Random) -> None:
    """Rows whose objects make the Mastodon mix (3,000 objects)."""
    create_schema(conn, SchemaVersion.CURRENT)
    for n in range(1, 811):  # 750 images + 60 videos: original + small each
        video = n > 750
        conn.run(
            "INSERT INTO media_attachments (id, type, file_file_name, file_content_type, "
            "file_file_size, created_at, updated_at) VALUES (:id, :type, :name, :ct, :size, "
            ":now, :now)",
            id=109348123456789012 + n,
            type=2 if video else 0,
            name=f"{n:016x}.{'mp4' if video else 'jpeg'}",
            ct="video/mp4" if video else "image/jpeg",
            size=rng.randint(5 * MIB, 40 * MIB) if video else rng.randint(200 * KIB, 3 * MIB),
            now=NOW,
        )
    for n in range(1, 376):  # custom emoji: original + static
        conn.run(
            "INSERT INTO custom_emojis (id, shortcode, image_file_name, image_content_type, "
            "image_file_size, created_at, updated_at) VALUES (:id, :code, :name, 'image/png', "
            ":size, :now, :now)",
            id=n,
            code=f"e{n}",
            name=f"{n:016x}.png",
            size=rng.randint(5 * KIB, 300 * KIB),
            now=NOW,
        )
    for n in range(1, 391):  # account avatars
        conn.run(
            "INSERT INTO accounts (id, avatar_file_name, avatar_content_type, avatar_file_size, "
            "created_at, updated_at) VALUES (:id, :name, 'image/png', :size, :now, :now)",
            id=n,
            name=f"{n:016x}.png",
            size=rng.randint(5 * KIB, 300 * KIB),
            now=NOW,
        )
    for n in range(1, 241):  # preview cards
        conn.run(
            "INSERT INTO preview_cards (id, url, image_file_name, image_content_type, "
            "image_file_size, image_storage_schema_version, created_at, updated_at) "
            "VALUES (:id, :url, :name, 'image/jpeg', :size, 1, :now, :now)",
            id=n,
            url=f"https://example.com/{n}",
            name=f"{n:016x}.jpg",
            size=rng.randint(10 * KIB, 200 * KIB),
            now=NOW,
        )


def object_sizes(conn: pg8000.native.Connection, rng: random.Random) -> dict[str, int]:
    """Key -> size: originals as the database says, previews/statics 10-60 KB."""
    catalog = Catalog(conn, page_size=1000)
    sizes = {}
    for record_type in RecordType:
        for row in catalog.walk(record_type, CatalogFilter()):
            for ref in row.objects:
                sizes[ref.key] = ref.expected_size or rng.randint(10 * KIB, 60 * KIB)
    return sizes


def upload(client: S3Client, bucket: str, sizes: dict[str, int]) -> None:
    """Write every object with Mastodon's headers (16 threads)."""

    def put(item: tuple[int, tuple[str, int]]) -> None:
        index, (key, size) = item
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body(size, index),
            ContentType="image/png",
            CacheControl="public, max-age=315576000, immutable",
        )

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(put, enumerate(sizes.items())))


def rclone_env(source: RcloneS3Server, destination: RcloneS3Server) -> dict[str, str]:
    """Two rclone remotes (src:, dst:) defined in the environment only."""
    env = {}
    for name, server in (("SRC", source), ("DST", destination)):
        env.update(
            {
                f"RCLONE_CONFIG_{name}_TYPE": "s3",
                f"RCLONE_CONFIG_{name}_PROVIDER": "Other",
                f"RCLONE_CONFIG_{name}_ENDPOINT": server.endpoint_url,
                f"RCLONE_CONFIG_{name}_ACCESS_KEY_ID": server.access_key_id,
                f"RCLONE_CONFIG_{name}_SECRET_ACCESS_KEY": server.secret_access_key,
                f"RCLONE_CONFIG_{name}_REGION": "us-east-1",
            }
        )
    return env


def write_config(
    path: Path, url: str, source: RcloneS3Server, destination: RcloneS3Server, target: str
) -> None:
    path.write_text(
        config_toml(url, source.bucket_settings("src"), destination.bucket_settings(target))
    )


def upload_large(client: S3Client, bucket: str, key: str, size: int) -> None:
    """A multipart upload generated on the fly (no 1 GiB buffer in this process)."""
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType="video/mp4")[
        "UploadId"
    ]
    parts: list[CompletedPartTypeDef] = []
    for number, start in enumerate(range(0, size, 16 * MIB), start=1):
        part = body(min(16 * MIB, size - start), number)
        etag = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    rng = random.Random(42)
    rclone = str(find_program("rclone"))
    ours = [sys.executable, "-m", "mastodon_s3_sync", "run", "--acl", "none"]
    ours += ["--workers", str(CONCURRENCY)]
    results: list[tuple[str, Measurement]] = []
    with (
        LocalPostgres() as cluster,
        RcloneS3Server() as source,
        RcloneS3Server() as destination,
        tempfile.TemporaryDirectory() as scratch,
    ):
        url = cluster.create_database("bench")
        conn = cluster.connect("bench")
        seed_database(conn, rng)
        sizes = object_sizes(conn, rng)
        total = sum(sizes.values())
        print(f"dataset: {len(sizes):,} objects, {total / MIB:,.0f} MiB", flush=True)
        create_bucket(source.client(), "src")
        upload(source.client(CONCURRENCY), "src", sizes)
        files_from = Path(scratch) / "keys.txt"
        files_from.write_text("".join(f"{key}\n" for key in sizes))
        config = Path(scratch) / "sync.toml"
        env = rclone_env(source, destination)

        def target(prefix: str, number: int) -> str:
            bucket = f"{prefix}-{number}"
            create_bucket(destination.client(), bucket)
            return bucket

        def run_ours(number: int) -> Measurement:
            write_config(config, url, source, destination, target("ours", number))
            return timed([*ours, "--config", str(config)])

        def run_rclone(flags: list[str], prefix: str) -> Callable[[int], Measurement]:
            def once(number: int) -> Measurement:
                bucket = target(prefix, number)
                return timed(
                    [
                        rclone,
                        "copy",
                        "--config",
                        "/dev/null",
                        "--files-from",
                        str(files_from),
                        "--no-traverse",
                        "--transfers",
                        str(CONCURRENCY),
                        "--checkers",
                        str(CONCURRENCY),
                        *flags,
                        "src:src",
                        f"dst:{bucket}",
                    ],
                    env,
                )

            return once

        # Interleave the tools run by run so machine noise hits them alike.
        for number in range(args.runs):
            for label, once in (
                ("mastodon-s3-sync run", run_ours),
                ("rclone copy --files-from", run_rclone([], "rc")),
                ("rclone copy --files-from -M", run_rclone(["-M"], "rcm")),
            ):
                measurement = once(number)
                print(f"  {label} run {number + 1}: {measurement.seconds:.1f} s", flush=True)
                results.append((label, measurement))
        large: Measurement | None = None
        if not args.skip_large:
            conn.run("TRUNCATE media_attachments, accounts, custom_emojis, preview_cards")
            conn.run(
                "INSERT INTO media_attachments (id, type, file_file_name, file_content_type, "
                "file_file_size, created_at, updated_at) VALUES (1, 2, 'big.mp4', 'video/mp4', "
                ":size, :now, :now)",
                size=1024 * MIB,
                now=NOW,
            )
            big = "media_attachments/files/000/000/001/original/big.mp4"
            upload_large(source.client(), "src", big, 1024 * MIB)
            write_config(config, url, source, destination, target("large", 0))
            large = timed([*ours, "--config", str(config), "--type", "media_attachments"])
            print(f"  1 GiB object: {large.seconds:.1f} s, {large.peak_rss_mib:.0f} MiB peak RSS")
    write_results(results, len(sizes), total, large, args.runs)


def write_results(
    results: list[tuple[str, Measurement]],
    objects: int,
    total: int,
    large: Measurement | None,
    runs: int,
) -> None:
    rclone_version = subprocess.run(
        [str(find_program("rclone")), "version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    lines = [
        "# Copy throughput: two `rclone serve s3` servers on loopback",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {rclone_version}. Dataset: {objects:,} objects, "
        f"{total / MIB:,.0f} MiB (Mastodon mix: previews 10-60 KB, avatars/emoji 5-300 KB, "
        f"originals 0.2-3 MB, preview cards 10-200 KB, videos 5-40 MB). Concurrency "
        f"{CONCURRENCY} for every tool; median of {runs} interleaved runs (min-max). "
        "`run` uses `--acl none` (rclone serve s3 has no GetObjectAcl; rclone copies no ACL "
        "either). CPU is the copier process's own user+sys time; the servers use the rest.",
        "",
        "| tool | objects/s | MB/s | wall s (min-max) | CPU s per 1,000 objects | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label in dict.fromkeys(label for label, _ in results):
        runs_of_label = [m for name, m in results if name == label]
        seconds = statistics.median(m.seconds for m in runs_of_label)
        low, high = min(m.seconds for m in runs_of_label), max(m.seconds for m in runs_of_label)
        cpu = statistics.median(m.cpu_seconds for m in runs_of_label) / objects * 1000
        rss = statistics.median(m.peak_rss_mib for m in runs_of_label)
        lines.append(
            f"| {label} | {objects / seconds:,.0f} | {total / 1e6 / seconds:,.0f} | "
            f"{seconds:.1f} ({low:.1f}-{high:.1f}) | {cpu:.1f} | {rss:.0f} |"
        )
    if large is not None:
        lines += [
            "",
            f"One 1 GiB object with `run` (multipart, 8 MiB parts): {large.seconds:.1f} s, "
            f"**{large.peak_rss_mib:.0f} MiB peak RSS** for the whole process.",
        ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
