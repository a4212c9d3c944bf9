"""Requests per 1,000 objects of ``mastodon-s3-sync verify`` on a complete copy.

A generated Mastodon (``--rows`` media attachments plus accounts, emoji and preview cards in
proportion) is seeded identically into two ``rclone serve s3`` buckets, as a finished
migration leaves them; ``verify`` then runs with ``--sample 0`` (presence and size only) and
with the default sample of 1,000, and its report's request counts are divided by the objects
checked. Writes benchmarks/results/verify_requests.md. Only loopback traffic.

    .venv/bin/python -m benchmarks.verify_requests [--rows 8000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.versions import machine_description
from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import AclMode, CopySettings
from mastodon_s3_sync.demo.media import create_bucket, seed_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.s3servers import RcloneS3Server
from mastodon_s3_sync.demo.schema import SchemaVersion, create_schema
from mastodon_s3_sync.demo.seed import seed_database
from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter
from mastodon_s3_sync.mastodon.layout import RecordType

RESULTS = Path(__file__).parent / "results" / "verify_requests.md"
DATABASE = "verify_bench"


def verify(config: Path, report: Path, sample: int) -> dict[str, object]:
    """One ``verify`` run; its JSON report."""
    command = [sys.executable, "-m", "mastodon_s3_sync", "verify", "--config", str(config)]
    result = subprocess.run(
        [*command, "--sample", str(sample), "--report", str(report)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"verify failed ({result.returncode}):\n{result.stderr}")
    return dict(json.loads(report.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=8000, help="media_attachments rows")
    rows = parser.parse_args().rows
    counts = {
        "accounts": rows // 2,
        "media_attachments": rows,
        "custom_emojis": rows // 20,
        "preview_cards": rows // 4,
    }
    with (
        tempfile.TemporaryDirectory() as work,
        LocalPostgres() as postgres,
        RcloneS3Server() as provider_a,
        RcloneS3Server() as provider_b,
    ):
        postgres.create_database(DATABASE)
        conn = postgres.connect(DATABASE)
        create_schema(conn, SchemaVersion.CURRENT)
        seed_database(conn, SchemaVersion.CURRENT, counts, seed=7)
        catalog = Catalog(conn, page_size=5000)
        refs = [
            ref
            for record_type in RecordType
            for row in catalog.walk(record_type, CatalogFilter())
            for ref in row.objects
        ]
        conn.close()
        for server in (provider_a, provider_b):
            create_bucket(server.client(), "media")
            seed_bucket(server.client(), "media", refs, seed=7, acl_supported=False)
        config = Path(work) / "sync.toml"
        config.write_text(
            config_toml(
                postgres.url(DATABASE),
                provider_a.bucket_settings("media"),
                provider_b.bucket_settings("media"),
                CopySettings(acl=AclMode.NONE),
            )
        )
        reports = {
            sample: verify(config, Path(work) / f"{sample}.json", sample) for sample in (0, 1000)
        }
    lines = [
        "# verify: requests per 1,000 objects",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} by `.venv/bin/python -m benchmarks.verify_requests "
        f"--rows {rows}` on {machine_description()['cpu']}: a complete copy between two "
        "`rclone serve s3` buckets (`--acl none`: rclone has no GetObjectAcl).",
        "",
        "| sample | objects | requests | by operation | per 1,000 objects |",
        "| ---: | ---: | ---: | --- | ---: |",
    ]
    for sample, report in reports.items():
        requests: dict[str, int] = report["requests"]  # type: ignore[assignment]
        objects = int(report["objects"])  # type: ignore[call-overload]
        total = sum(requests.values())
        operations = ", ".join(f"{name} {count:,}" for name, count in requests.items())
        per_thousand = total * 1000 / objects
        lines.append(
            f"| {sample:,} | {objects:,} | {total:,} | {operations} | {per_thousand:,.2f} |"
        )
    lines += [
        "",
        "With `--sample 0` every request is a ListObjectsV2 page (1,000 keys) of one side: the",
        "presence and size of each object come from listings. The sample adds a HEAD on each side",
        "per sampled object (and a GetObjectAcl on each side where the provider has ACLs).",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
