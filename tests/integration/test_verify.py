"""``mastodon-s3-sync verify`` against real S3 servers: every kind of difference found,
nothing reported on an exact copy, and the request count of the listing-based design."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mastodon_s3_sync.copying.verify import Problem
from mastodon_s3_sync.demo.media import create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import MotoS3Server, RcloneS3Server
from mastodon_s3_sync.demo.schema import SchemaVersion
from mastodon_s3_sync.demo.seed import seed_database
from mastodon_s3_sync.mastodon.layout import ObjectRef
from mastodon_s3_sync.storage.listing import family_and_directory
from tests.support.mastodon_db import MastodonDbFactory, all_refs
from tests.support.migration import COUNTS, SMALL_COUNTS, Migration, prepare, run
from tests.support.processes import run_cli
from tests.support.s3_servers import BucketNames

pytestmark = pytest.mark.integration


def copied(migration: Migration, tmp_path: Path) -> Path:
    config = migration.config(tmp_path)
    result = run("--config", str(config))
    assert result.returncode == 0, result.stderr
    return config


def test_an_exact_copy_verifies_with_listings_only(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given a complete copy of a source where every referenced object exists
    db = mastodon_db()
    seed_database(db.conn, SchemaVersion.CURRENT, COUNTS, seed=11)
    refs = all_refs(db)
    source, destination = moto_servers
    names = fresh_bucket_name(), fresh_bucket_name()
    create_bucket(source.client(), names[0])
    create_bucket(destination.client(), names[1])
    manifest = seed_bucket(source.client(), names[0], refs)
    migration = Migration(db, source, destination, *names, refs, manifest)
    config = copied(migration, tmp_path)
    report = tmp_path / "verify.json"
    # when verified without header sampling
    result = run_cli("verify", "--config", str(config), "--sample", "0", "--report", str(report))
    # then everything is there, and the only requests are one listing page per family
    # and side (each family holds fewer than 1,000 keys): no request per object
    assert result.returncode == 0, result.stderr
    assert "verify: OK" in result.stderr
    outcome = json.loads(report.read_text())
    assert outcome["objects"] == outcome["matching"] == len(refs)
    assert outcome["problems"] == dict.fromkeys(map(str, Problem), 0)
    families = {family_and_directory(ref.key)[0] for ref in refs}  # type: ignore[index]
    # the preflight HeadBucket runs in its own client; these are the check's requests
    assert outcome["requests"] == {"ListObjectsV2": 2 * len(families)}


def _mutate(migration: Migration) -> dict[str, str]:
    """One object of each kind of difference at the destination; returns key -> problem."""
    client, bucket = migration.destination.client(), migration.destination_bucket
    present = list(migration.manifest.objects)
    public = [k for k in present if migration.manifest.objects[k].acl == "public-read"]
    missing, resized, retyped, hidden = present[0], present[1], public[2], public[3]
    client.delete_object(Bucket=bucket, Key=missing)
    body = client.get_object(Bucket=bucket, Key=resized)["Body"].read()
    client.put_object(Bucket=bucket, Key=resized, Body=body + b"!", ACL="public-read")
    original = client.get_object(Bucket=bucket, Key=retyped)
    client.put_object(
        Bucket=bucket,
        Key=retyped,
        Body=original["Body"].read(),
        ContentType="application/octet-stream",
        CacheControl=original["CacheControl"],
        ACL="public-read",
    )
    client.put_object_acl(Bucket=bucket, Key=hidden, ACL="private")
    return {missing: "missing", resized: "size", retyped: "header", hidden: "acl"}


def test_verify_finds_each_kind_of_difference(
    small_migration: Migration,
    tmp_path: Path,
) -> None:
    # given a copy (with files gone at the source and legacy placements) that is then damaged
    config = copied(small_migration, tmp_path)
    report = tmp_path / "verify.json"
    assert run_cli("verify", "--config", str(config), "--full").returncode == 0
    damaged = _mutate(small_migration)
    # when
    result = run_cli("verify", "--config", str(config), "--full", "--report", str(report))
    # then each difference is reported once, with its key, and nothing else
    assert result.returncode == 1, result.stderr
    outcome = json.loads(report.read_text())
    found = {entry["key"]: entry["problem"] for entry in outcome["findings"]}
    assert found == damaged
    assert outcome["absent_at_source"] == len(small_migration.manifest.missing)
    assert sorted(e["key"] for e in outcome["absent_at_source_keys"]) == sorted(
        ref.key for ref in small_migration.manifest.missing
    )
    assert f"{len(damaged)} problems" in result.stderr


def test_a_sample_costs_four_requests_per_sampled_object(
    migration: Migration,
    tmp_path: Path,
) -> None:
    config = copied(migration, tmp_path)
    report = tmp_path / "verify.json"
    result = run_cli("verify", "--config", str(config), "--sample", "25", "--report", str(report))
    assert result.returncode == 0, result.stderr
    outcome = json.loads(report.read_text())
    requests = outcome["requests"]
    assert outcome["sampled"] == 25
    assert requests["GetObjectAcl"] == 2 * 25
    # HEADs: the sample on both sides, plus lookups no listing could answer (refs whose
    # canonical key is not at the source: their alternates, and the destination check)
    unlisted: list[ObjectRef] = [
        ref for ref in migration.refs if ref.key not in migration.manifest.objects
    ]
    per_unlisted = max(len(ref.alternates) for ref in unlisted) + 1
    assert 2 * 25 <= requests["HeadObject"] <= 2 * 25 + per_unlisted * len(unlisted)


def test_acl_checks_on_a_provider_without_acls_are_refused_at_start(
    mastodon_db: MastodonDbFactory,
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    migration = prepare(
        mastodon_db, rclone_servers, fresh_bucket_name, acl_supported=False, counts=SMALL_COUNTS
    )
    config = migration.config(tmp_path)
    assert run("--config", str(config), "--acl", "none").returncode == 0
    refused = run_cli("verify", "--config", str(config), "--acl", "copy")
    assert refused.returncode == 2
    assert "GetObjectAcl" in refused.stderr
    assert "--acl" in refused.stderr
    # without ACL checks the same copy verifies, headers compared on every object
    report = tmp_path / "verify.json"
    checked = run_cli(
        "verify", "--config", str(config), "--acl", "none", "--full", "--report", str(report)
    )
    assert checked.returncode == 0, checked.stderr
    outcome = json.loads(report.read_text())
    assert outcome["sampled"] == outcome["matching"] == len(migration.manifest.objects)
