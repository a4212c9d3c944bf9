"""``run --from-report``: a verify's findings copied again, and nothing else.

After a copy, four destination objects are damaged the ways verify tells apart (deleted,
truncated, a wrong Content-Type, a public object made private); verify --full reports them.
A fifth object damaged *after* that verify is not in the report: the repair must leave it
alone, which shows it copies exactly the findings, not everything that differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mastodon_s3_sync.storage.protocol import ALL_USERS_URI
from tests.support.migration import Migration
from tests.support.processes import run_cli

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


def is_public(client: S3Client, bucket: str, key: str) -> bool:
    grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    return any(grant.get("Grantee", {}).get("URI") == ALL_USERS_URI for grant in grants)


def test_from_report_copies_exactly_the_findings(
    small_migration: Migration,
    tmp_path: Path,
) -> None:
    # given a finished copy
    config = str(small_migration.config(tmp_path))
    assert run_cli("run", "--config", config).returncode == 0
    legacy = {ref.alternates[0] for ref in small_migration.manifest.legacy}
    public = [
        seeded
        for key, seeded in small_migration.manifest.objects.items()
        if seeded.acl == "public-read" and key not in legacy and not seeded.multipart
    ]
    deleted, truncated, retyped, hidden, later = public[:5]
    client, bucket = small_migration.destination.client(), small_migration.destination_bucket
    # and four objects damaged before a verify
    client.delete_object(Bucket=bucket, Key=deleted.key)
    client.put_object(Bucket=bucket, Key=truncated.key, Body=b"short", ACL="public-read")
    client.copy_object(
        Bucket=bucket,
        Key=retyped.key,
        CopySource={"Bucket": bucket, "Key": retyped.key},
        MetadataDirective="REPLACE",
        ContentType="application/x-wrong",
        CacheControl=retyped.cache_control,
        ACL="public-read",
    )
    client.put_object_acl(Bucket=bucket, Key=hidden.key, ACL="private")
    verify_report = tmp_path / "verify.json"
    verified = run_cli("verify", "--config", config, "--full", "--report", str(verify_report))
    assert verified.returncode == 1, verified.stderr
    findings = json.loads(verify_report.read_text())["findings"]
    assert {finding["key"] for finding in findings} == {
        deleted.key,
        truncated.key,
        retyped.key,
        hidden.key,
    }
    # and a fifth damaged after it
    client.put_object_acl(Bucket=bucket, Key=later.key, ACL="private")
    # when
    run_report = tmp_path / "repair.json"
    repaired = run_cli(
        "run", "--config", config, "--from-report", str(verify_report), "--report", str(run_report)
    )
    # then exactly the four findings were copied, with their bytes, headers and ACL
    assert repaired.returncode == 0, repaired.stderr
    outcome = json.loads(run_report.read_text())
    assert outcome["copied"] == 4, repaired.stderr
    assert outcome["skipped"] == 0
    for seeded in (deleted, truncated, retyped, hidden):
        got = client.get_object(Bucket=bucket, Key=seeded.key)
        assert got["ContentLength"] == seeded.size, seeded.key
        assert got["ContentType"] == seeded.content_type, seeded.key
        assert is_public(client, bucket, seeded.key), seeded.key
    assert not is_public(client, bucket, later.key)  # not in the report: left alone


def test_from_report_refuses_a_report_of_other_buckets(
    migration: Migration,
    tmp_path: Path,
) -> None:
    # given a verify report of another destination, and a file that is no verify report
    config = str(migration.config(tmp_path))
    other = tmp_path / "other.json"
    other.write_text(
        json.dumps(
            {
                "source": {"bucket": migration.source_bucket, "key_prefix": ""},
                "destination": {"bucket": "elsewhere", "key_prefix": "", "endpoint_url": None},
                "findings": [],
            }
        )
    )
    not_verify = tmp_path / "run.json"
    not_verify.write_text(json.dumps({"copied": 3}))
    # when / then
    for report, expected in ((other, "verified another source"), (not_verify, "not a report")):
        done = run_cli("run", "--config", config, "--from-report", str(report))
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr
