"""``run`` and ``verify`` with SeaweedFS on one side: a third S3 implementation, with its
own multipart ETags, enforced credentials, and canned ACLs accepted but not kept."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mastodon_s3_sync.copying.verify import Problem
from mastodon_s3_sync.demo.s3servers import MotoS3Server, SeaweedS3Server
from tests.support.mastodon_db import MastodonDbFactory
from tests.support.migration import SMALL_COUNTS, Migration, prepare, run
from tests.support.processes import run_cli
from tests.support.s3_servers import BucketNames
from tests.support.seaweedfs import (
    LARGE_VIDEO_SIZE,
    MULTIPART,
    add_large_video,
    multipart_etag,
)

pytestmark = pytest.mark.integration


def run_report(config: Path, *args: str) -> dict[str, Any]:
    report = config.parent / "report.json"
    result = run("--config", str(config), "--report", str(report), *args)
    assert result.returncode == 0, result.stderr
    outcome: dict[str, Any] = json.loads(report.read_text())
    return outcome


def assert_intact(migration: Migration) -> None:
    """Every seeded object at the destination: same bytes, Content-Type, Cache-Control."""
    client = migration.destination.client()
    for key, seeded in migration.manifest.objects.items():
        got = client.get_object(Bucket=migration.destination_bucket, Key=key)
        assert hashlib.md5(got["Body"].read()).hexdigest() == seeded.md5, key  # noqa: S324
        assert got["ContentType"] == seeded.content_type, key
        assert got.get("CacheControl") == seeded.cache_control, key
    assert not client.list_multipart_uploads(Bucket=migration.destination_bucket).get("Uploads")


@pytest.fixture
def into_seaweedfs(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    seaweedfs_server: SeaweedS3Server,
    fresh_bucket_name: BucketNames,
) -> Migration:
    """From moto (which keeps ACLs, some objects private) into SeaweedFS, with a 12 MiB video;
    small (each test reads every object)."""
    servers = (moto_servers[0], seaweedfs_server)
    migration = prepare(mastodon_db, servers, fresh_bucket_name, counts=SMALL_COUNTS)
    add_large_video(migration)
    return migration


def test_run_into_seaweedfs_keeps_bytes_and_headers_and_reruns_for_free(
    into_seaweedfs: Migration, tmp_path: Path
) -> None:
    # given
    migration = into_seaweedfs
    config = migration.config(tmp_path, copy=MULTIPART)
    # when copied without ACLs
    first = run_report(config, "--acl", "none")
    # then everything arrived, the video in three parts with AWS's multipart ETag
    assert (first["copied"], first["failed"]) == (len(migration.manifest.objects), 0)
    assert first["bytes_copied"] == migration.manifest.total_bytes
    assert_intact(migration)
    video = next(o for o in migration.manifest.objects.values() if o.size == LARGE_VIDEO_SIZE)
    client = migration.destination.client()
    body = client.get_object(Bucket=migration.destination_bucket, Key=video.key)["Body"].read()
    head = client.head_object(Bucket=migration.destination_bucket, Key=video.key)
    assert head["ETag"].strip('"') == multipart_etag(body, MULTIPART.part_size_bytes)
    # and a re-run copies nothing, and verify agrees on every object
    again = run_report(config, "--acl", "none")
    assert (again["copied"], again["bytes_copied"]) == (0, 0)
    assert again["skipped"] == len(migration.manifest.objects)
    checked = run_cli("verify", "--config", str(config), "--acl", "none", "--full")
    assert checked.returncode == 0, checked.stderr
    assert "verify: OK" in checked.stderr


def test_acl_copy_into_seaweedfs_is_refused_and_verify_finds_public_objects_private(
    into_seaweedfs: Migration, tmp_path: Path
) -> None:
    # given a source whose objects are mostly public-read, a few private
    migration = into_seaweedfs
    public = {k for k, o in migration.manifest.objects.items() if o.acl == "public-read"}
    assert public
    assert len(public) < len(migration.manifest.objects)
    config = migration.config(tmp_path, copy=MULTIPART)
    # when copied with --acl copy: SeaweedFS accepts x-amz-acl: public-read and drops it,
    # which the preflight's probe object shows before any copy
    refused = run("--config", str(config), "--acl", "copy")
    assert refused.returncode == 2, refused.stderr
    assert "kept it private" in refused.stderr
    client = migration.destination.client()
    assert not client.list_objects_v2(Bucket=migration.destination_bucket).get("Contents")
    # when copied without ACLs, verify --acl copy finds every public object private
    run_report(config, "--acl", "none")
    report = tmp_path / "verify.json"
    result = run_cli(
        "verify", "--config", str(config), "--acl", "copy", "--full", "--report", str(report)
    )
    assert result.returncode == 1, result.stderr
    found = json.loads(report.read_text())
    assert found["problems"] == {**dict.fromkeys(map(str, Problem), 0), "acl": len(public)}
    assert {f["key"] for f in found["findings"]} == public
    assert {f["detail"] for f in found["findings"]} == {"private, expected public-read"}


def test_server_side_copy_between_two_seaweedfs_buckets(
    mastodon_db: MastodonDbFactory,
    seaweedfs_server: SeaweedS3Server,
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given both buckets on one SeaweedFS (same endpoint and keys: CopyObject), a source
    # video written in parts, and no ACLs at the source
    servers = (seaweedfs_server, seaweedfs_server)
    migration = prepare(
        mastodon_db, servers, fresh_bucket_name, acl_supported=False, counts=SMALL_COUNTS
    )
    video_key = add_large_video(migration)
    config = migration.config(tmp_path, copy=MULTIPART)
    # when
    outcome = run_report(config, "--acl", "none")
    # then everything is there, the video with its source's multipart ETag
    assert (outcome["copied"], outcome["failed"]) == (len(migration.manifest.objects), 0)
    assert_intact(migration)
    client = seaweedfs_server.client()
    etags = {
        client.head_object(Bucket=bucket, Key=video_key)["ETag"]
        for bucket in (migration.source_bucket, migration.destination_bucket)
    }
    assert len(etags) == 1
    assert etags.pop().strip('"').endswith("-3")
    checked = run_cli("verify", "--config", str(config), "--acl", "none", "--full")
    assert checked.returncode == 0, checked.stderr
    # and a wrong key is refused before any copy, without a traceback or the secret
    bad = run("--config", str(migration.config(tmp_path, destination_secret="wrong-secret")))
    assert bad.returncode == 2
    assert "destination credentials were refused" in bad.stderr
    assert "wrong-secret" not in bad.stderr
    assert "Traceback" not in bad.stderr
