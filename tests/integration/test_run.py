"""``mastodon-s3-sync run`` and the copier against real S3 servers on localhost."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mastodon_s3_sync.config.settings import AclMode, CopySettings
from mastodon_s3_sync.copying.copier import Copier
from mastodon_s3_sync.copying.results import CopyOptions
from mastodon_s3_sync.demo.media import SeedManifest, create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import MotoS3Server, RcloneS3Server
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.storage.s3 import Bucket
from tests.support.mastodon_db import MastodonDb, all_refs, insert_videos
from tests.support.migration import Migration, prepare, run
from tests.support.processes import CLI
from tests.support.s3_servers import MOTO_ENV, BucketNames

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

MakeDb = Callable[..., MastodonDb]
MIB = 1024 * 1024
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def acl_class(client: S3Client, bucket: str, key: str) -> str:
    grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    public = any(g.get("Grantee", {}).get("URI") == ALL_USERS for g in grants)
    return "public-read" if public else "private"


def assert_destination_matches(migration: Migration, *, check_acl: bool) -> None:
    client = migration.destination.client()
    for key, seeded in migration.manifest.objects.items():
        got = client.get_object(Bucket=migration.destination_bucket, Key=key)
        body = got["Body"].read()
        assert hashlib.md5(body).hexdigest() == seeded.md5, key  # noqa: S324
        assert got["ContentType"] == seeded.content_type, key
        assert got.get("CacheControl") == seeded.cache_control, key
        if check_acl:
            assert acl_class(client, migration.destination_bucket, key) == seeded.acl, key


def test_run_between_two_providers_keeps_bytes_headers_and_acl(
    migration: Migration,
    tmp_path: Path,
) -> None:
    # given a seeded source with private objects, legacy placements and missing files
    assert migration.manifest.missing
    assert migration.manifest.legacy
    assert any(o.acl == "private" for o in migration.manifest.objects.values())
    assert any(
        o.content_type == "image/jpeg" and o.key.endswith(".gif")
        for o in migration.manifest.objects.values()
    ), "the dataset should hold a preview card whose key lies about its content"
    config, report = migration.config(tmp_path), tmp_path / "report.json"
    # when
    first = run("--config", str(config), "--report", str(report))
    # then
    assert first.returncode == 0, first.stderr
    outcome = json.loads(report.read_text())
    assert outcome["copied"] == len(migration.manifest.objects)
    assert outcome["failed"] == 0
    assert outcome["bytes_copied"] == migration.manifest.total_bytes
    assert sorted(entry["key"] for entry in outcome["missing_keys"]) == sorted(
        ref.key for ref in migration.manifest.missing
    )
    assert all(isinstance(entry["record_id"], str) for entry in outcome["missing_keys"])
    assert_destination_matches(migration, check_acl=True)
    # and a second run copies nothing
    second = run("--config", str(config), "--report", str(report))
    assert second.returncode == 0, second.stderr
    again = json.loads(report.read_text())
    assert (again["copied"], again["bytes_copied"], again["failed"]) == (0, 0, 0)
    assert again["skipped"] == len(migration.manifest.objects)


def test_run_against_credential_checking_servers(
    mastodon_db: MakeDb,
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    migration = prepare(mastodon_db, rclone_servers, fresh_bucket_name, acl_supported=False)
    config = migration.config(tmp_path)
    result = run("--config", str(config), "--acl", "none", "--workers", "8")
    assert result.returncode == 0, result.stderr
    assert_destination_matches(migration, check_acl=False)
    # wrong credentials on one side: a clear error before any copy
    bad = run("--config", str(migration.config(tmp_path, destination_secret="wrong")))
    assert bad.returncode == 2
    assert "destination credentials were refused" in bad.stderr
    assert "wrong" not in bad.stderr
    assert "Traceback" not in bad.stderr


def test_acl_copy_needs_get_object_acl_and_says_so(
    mastodon_db: MakeDb,
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    migration = prepare(mastodon_db, rclone_servers, fresh_bucket_name, acl_supported=False)
    started = time.monotonic()
    result = run("--config", str(migration.config(tmp_path)), "--type", "custom_emojis")
    # refused at start (one ACL read, one retry), not after each object's retries
    assert time.monotonic() - started < 15
    assert result.returncode == 2
    assert "answered GetObjectAcl with" in result.stderr
    assert "a provider without ACLs needs --acl public-read, private or none" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("mode", [AclMode.PUBLIC_READ, AclMode.PRIVATE, AclMode.NONE])
def test_fixed_acl_modes(
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    mode: AclMode,
) -> None:
    source, destination = moto_servers
    source_bucket, destination_bucket = fresh_bucket_name(), fresh_bucket_name()
    create_bucket(source.client(), source_bucket)
    create_bucket(destination.client(), destination_bucket)
    refs = [
        ObjectRef(RecordType.ACCOUNTS, n, "avatar", "original", f"accounts/avatars/{n}.png")
        for n in range(1, 5)
    ]
    manifest = seed_bucket(source.client(), source_bucket, refs, private_record_ids={1, 2})
    copier = Copier(
        Bucket(source.client(), source_bucket, "", "source"),
        Bucket(destination.client(), destination_bucket, "", "destination"),
        CopyOptions(CopySettings(acl=mode)),
    )
    assert {copier.copy(ref).outcome for ref in refs} == {Outcome.COPIED}
    client = destination.client()
    classes = {acl_class(client, destination_bucket, key) for key in manifest.objects}
    # moto, like S3, makes an object private when no ACL is sent
    assert classes == {"public-read" if mode == AclMode.PUBLIC_READ else "private"}


def test_multipart_copy_of_a_large_object_leaves_no_upload_behind(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames
) -> None:
    source, destination = moto_servers
    source_bucket, destination_bucket = fresh_bucket_name(), fresh_bucket_name()
    create_bucket(source.client(), source_bucket)
    create_bucket(destination.client(), destination_bucket)
    ref = ObjectRef(
        RecordType.MEDIA_ATTACHMENTS, 9, "file", "original", "media/big.mp4", (), 21 * MIB
    )
    manifest = seed_bucket(
        source.client(), source_bucket, [ref], large_sizes=True, multipart_threshold=15 * MIB
    )
    copier = Copier(
        Bucket(source.client(), source_bucket, "", "source"),
        Bucket(destination.client(), destination_bucket, "", "destination"),
        CopyOptions(
            CopySettings(
                acl=AclMode.COPY, multipart_threshold_bytes=8 * MIB, part_size_bytes=8 * MIB
            )
        ),
    )
    result = copier.copy(ref)
    assert (result.outcome, result.bytes_copied) == (Outcome.COPIED, 21 * MIB)
    client = destination.client()
    got = client.get_object(Bucket=destination_bucket, Key="media/big.mp4")
    assert hashlib.md5(got["Body"].read()).hexdigest() == manifest.objects["media/big.mp4"].md5  # noqa: S324
    assert got["ETag"].strip('"').endswith("-3")  # three 8 MiB parts: 8 + 8 + 5
    assert got["ContentType"] == "video/mp4"
    assert not client.list_multipart_uploads(Bucket=destination_bucket).get("Uploads")


def test_server_side_copy_within_one_provider(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames
) -> None:
    server = moto_servers[0]
    source_bucket, destination_bucket = fresh_bucket_name(), fresh_bucket_name()
    create_bucket(server.client(), source_bucket)
    create_bucket(server.client(), destination_bucket)
    refs = [
        ObjectRef(RecordType.PREVIEW_CARDS, n, "image", "original", f"preview_cards/{n}.gif")
        for n in range(1, 4)
    ]
    manifest = seed_bucket(server.client(), source_bucket, refs, private_record_ids={2})
    copier = Copier(
        Bucket(server.client(), source_bucket, "", "source"),
        Bucket(server.client(), destination_bucket, "", "destination"),
        CopyOptions(server_side=True),
    )
    assert [copier.copy(ref).outcome for ref in refs] == [Outcome.COPIED] * 3
    client = server.client()
    for key, seeded in manifest.objects.items():
        got = client.get_object(Bucket=destination_bucket, Key=key)
        assert hashlib.md5(got["Body"].read()).hexdigest() == seeded.md5  # noqa: S324
        assert (got["ContentType"], got["CacheControl"]) == ("image/jpeg", seeded.cache_control)
        assert acl_class(client, destination_bucket, key) == seeded.acl


def test_bad_buckets_and_endpoints_are_clear_errors(
    mastodon_db: MakeDb,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
) -> None:
    db = mastodon_db()
    source, destination = moto_servers
    existing = fresh_bucket_name()
    create_bucket(source.client(), existing)
    common = ["--database-url", db.url, "--source", f"s3://{existing}"]
    common += ["--source-endpoint-url", source.endpoint_url, "--source-region", "us-east-1"]
    # credentials from the standard AWS environment (MOTO_ENV), for both sides
    unknown = run(
        *common,
        "--destination",
        "s3://no-such-bucket-here",
        "--destination-endpoint-url",
        destination.endpoint_url,
        env=MOTO_ENV,
    )
    assert unknown.returncode == 2
    assert "destination bucket 'no-such-bucket-here' does not exist" in unknown.stderr
    closed = run(
        *common,
        "--destination",
        f"s3://{existing}-x",
        "--destination-endpoint-url",
        "http://127.0.0.1:9",
        env=MOTO_ENV,
    )
    assert closed.returncode == 2
    assert "cannot reach the destination endpoint http://127.0.0.1:9" in closed.stderr
    missing = run("--database-url", db.url, "--source", f"s3://{existing}")
    assert missing.returncode == 2
    assert "no destination bucket" in missing.stderr
    for result in (unknown, closed, missing):
        assert "Traceback" not in result.stderr


def test_interrupting_leaves_no_partial_object_and_a_rerun_completes(
    mastodon_db: MakeDb,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given eight 24 MiB videos (multipart, so an interrupt catches uploads mid-way; with three
    # workers, five are not begun when it comes)
    db = mastodon_db()
    insert_videos(db.conn, range(1, 9), 24 * MIB)
    refs = [ref for ref in all_refs(db) if ref.style == "original"]
    source, destination = moto_servers
    migration = Migration(
        db, source, destination, fresh_bucket_name(), fresh_bucket_name(), refs, SeedManifest()
    )
    create_bucket(source.client(), migration.source_bucket)
    create_bucket(destination.client(), migration.destination_bucket)
    migration.manifest = seed_bucket(
        source.client(),
        migration.source_bucket,
        refs,
        large_sizes=True,
        multipart_threshold=15 * MIB,
    )
    multipart = CopySettings(multipart_threshold_bytes=8 * MIB, part_size_bytes=8 * MIB)
    config, report = migration.config(tmp_path, copy=multipart), tmp_path / "report.json"
    command = [*CLI, "run", "--config", str(config)]
    command += ["--workers", "3", "--report", str(report)]
    # when interrupted while copying
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = destination.client()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not client.list_multipart_uploads(
        Bucket=migration.destination_bucket
    ).get("Uploads"):
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=120)
    # then: a clean stop, no upload left open, whatever is there is whole
    assert child.returncode == 130, stderr
    assert "interrupted" in stderr
    assert json.loads(report.read_text())["interrupted"] is True
    assert not client.list_multipart_uploads(Bucket=migration.destination_bucket).get("Uploads")
    listed = client.list_objects_v2(Bucket=migration.destination_bucket).get("Contents", [])
    assert len(listed) < len(refs)
    for item in listed:
        assert item["Size"] == 24 * MIB
    # and a re-run finishes the job
    rerun = run("--config", str(config), "--report", str(report))
    assert rerun.returncode == 0, rerun.stderr
    final: dict[str, Any] = json.loads(report.read_text())
    assert final["copied"] + final["skipped"] == len(refs)
    assert final["skipped"] == len(listed)
    assert_destination_matches(migration, check_acl=True)
