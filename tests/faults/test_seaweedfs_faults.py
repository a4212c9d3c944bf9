"""Fault scenario against SeaweedFS: 10% faults on every object operation, both sides.

The source is moto, the destination SeaweedFS (multipart ETags as AWS writes them, canned ACLs
dropped: hence ``--acl none`` and no ACL check), each behind a :class:`FaultProxy`. Every
object must end intact at the destination or listed with a reason, nothing corrupt, no
multipart upload left open.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import AclMode, CopySettings
from mastodon_s3_sync.demo.media import create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import MotoS3Server, SeaweedS3Server
from mastodon_s3_sync.demo.schema import SchemaVersion
from mastodon_s3_sync.demo.seed import seed_database
from tests.support.faultproxy import MULTIPART_OPERATIONS, FaultProxy, Operation, mixed_faults
from tests.support.invariant import MATRIX, check_invariant
from tests.support.mastodon_db import MastodonDb, all_refs, insert_videos
from tests.support.processes import run_cli
from tests.support.s3_servers import BucketNames

MIB = 1024 * 1024
COUNTS = {"accounts": 12, "media_attachments": 24, "custom_emojis": 4, "preview_cards": 8}
LARGE_SIZE = 12 * MIB
COPY = CopySettings(
    workers=8, multipart_threshold_bytes=8 * MIB, part_size_bytes=5 * MIB, acl=AclMode.NONE
)
OBJECT_OPERATIONS = (
    Operation.GET,
    Operation.HEAD,
    Operation.PUT,
    Operation.LIST,
    Operation.DELETE,
    *MULTIPART_OPERATIONS,
)


def test_ten_percent_faults_into_seaweedfs(
    mastodon_db: Callable[..., MastodonDb],
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    seaweedfs_server: SeaweedS3Server,
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given a small Mastodon with two large videos, in moto; an empty SeaweedFS bucket
    db = mastodon_db()
    seed_database(db.conn, SchemaVersion.CURRENT, COUNTS, seed=17)
    insert_videos(db.conn, range(9_200_000, 9_200_002), LARGE_SIZE)
    refs = all_refs(db)
    source = moto_servers[0]
    source_bucket, destination_bucket = fresh_bucket_name(), fresh_bucket_name()
    create_bucket(source.client(), source_bucket)
    create_bucket(seaweedfs_server.client(), destination_bucket)
    large = [ref for ref in refs if ref.expected_size == LARGE_SIZE and ref.style == "original"]
    manifest = seed_bucket(
        source.client(),
        source_bucket,
        [ref for ref in refs if ref not in large],
        missing_every=19,
    )
    manifest.objects.update(
        seed_bucket(source.client(), source_bucket, large, large_sizes=True).objects
    )
    rules = mixed_faults(0.10, OBJECT_OPERATIONS)
    with (
        FaultProxy(source.endpoint_url, rules=rules, seed=3) as source_proxy,
        FaultProxy(seaweedfs_server.endpoint_url, rules=rules, seed=4) as destination_proxy,
    ):
        config = tmp_path / "sync.toml"
        config.write_text(
            config_toml(
                db.url,
                replace(source.bucket_settings(source_bucket), endpoint_url=source_proxy.url),
                replace(
                    seaweedfs_server.bucket_settings(destination_bucket),
                    endpoint_url=destination_proxy.url,
                ),
                COPY,
            )
        )
        report_path = tmp_path / "report.json"
        command = ["run", "--config", str(config), "--report", str(report_path)]
        # when
        result = run_cli(*command)
        injected = source_proxy.stats.total_injected + destination_proxy.stats.total_injected
    # then the retries absorbed every fault: each object intact or listed, no upload open
    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads(report_path.read_text())
    verdict = check_invariant(
        refs=refs,
        manifest=manifest,
        destination=seaweedfs_server.client(),
        bucket=destination_bucket,
        report=report,
        check_acl=False,
    )
    MATRIX.record("10% faults, moto -> SeaweedFS", verdict.counts, f"{injected} faults injected")
    verdict.assert_holds()
    assert injected >= 10
    assert report["failed"] == 0, report["failed_keys"]
    assert result.returncode == 0, result.stderr
