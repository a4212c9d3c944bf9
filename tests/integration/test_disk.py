"""Mastodon's local file storage as either side: disk -> moto / rclone, moto -> disk."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore.exceptions
import pytest

from mastodon_s3_sync.cli import main
from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import BucketSettings, CopySettings
from mastodon_s3_sync.copying.copier import Copier
from mastodon_s3_sync.copying.results import CopyOptions
from mastodon_s3_sync.demo.media import CACHE_CONTROL, create_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.s3servers import LocalS3Server, MotoS3Server, RcloneS3Server
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.storage.disk import PARTIAL_SUFFIX, DiskObjects, disk_bucket
from mastodon_s3_sync.storage.s3 import Bucket
from tests.support.disk_tree import prepare_disk
from tests.support.mastodon_db import MastodonDbFactory
from tests.support.migration import SMALL_COUNTS, Migration, run
from tests.support.processes import run_cli
from tests.support.s3_servers import BucketNames

if TYPE_CHECKING:
    from mypy_boto3_s3.literals import ObjectCannedACLType

pytestmark = pytest.mark.integration

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
KIB = 1024


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324


def disk_settings(root: Path) -> BucketSettings:
    return BucketSettings(path=str(root))


def report_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@pytest.fixture(params=["moto", "rclone"])
def s3_server(
    request: pytest.FixtureRequest,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server],
) -> LocalS3Server:
    return moto_servers[1] if request.param == "moto" else rclone_servers[1]


def test_disk_to_s3_uploads_what_mastodon_would_have(
    mastodon_db: MastodonDbFactory,
    s3_server: LocalS3Server,
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given an instance on local storage: private files 0600, missing and legacy files
    instance = prepare_disk(mastodon_db, tmp_path / "system", SMALL_COUNTS)
    objects = instance.manifest.objects
    assert instance.manifest.missing
    assert instance.manifest.legacy
    gif_holding_jpeg = [
        key
        for key, seeded in objects.items()
        if key.endswith(".gif") and seeded.content_type == "image/jpeg"
    ]
    small = [key for key, seeded in objects.items() if seeded.ref.style == "small"]
    private = [key for key, seeded in objects.items() if seeded.acl == "private"]
    assert gif_holding_jpeg
    assert small
    assert private
    assert all(stat.S_IMODE((instance.root / key).stat().st_mode) == 0o600 for key in private)
    bucket = fresh_bucket_name()
    create_bucket(s3_server.client(), bucket)
    config = tmp_path / "sync.toml"
    config.write_text(
        config_toml(
            instance.db.url, disk_settings(instance.root), s3_server.bucket_settings(bucket)
        )
    )
    has_acls = isinstance(s3_server, MotoS3Server)
    acl = () if has_acls else ("--acl", "none")  # rclone serve s3 keeps no ACLs
    report = tmp_path / "report.json"
    # when
    first = run("--config", str(config), "--report", str(report), *acl)
    # then every file is there with Mastodon's headers, private ones private
    assert first.returncode == 0, first.stderr
    assert "listing the destination…" in first.stderr.splitlines()  # a directory is not listed
    outcome = report_of(report)
    assert outcome["copied"] == len(objects)
    assert outcome["failed"] == 0
    assert outcome["missing"] == len(instance.manifest.missing)
    assert outcome["bytes_copied"] == instance.manifest.total_bytes
    client = s3_server.client()
    for key, seeded in objects.items():
        got = client.get_object(Bucket=bucket, Key=key)
        assert md5(got["Body"].read()) == seeded.md5, key
        assert got["ContentType"] == seeded.content_type, key
        assert got["CacheControl"] == CACHE_CONTROL, key
        if has_acls:
            grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
            public = any(grant.get("Grantee", {}).get("URI") == ALL_USERS for grant in grants)
            assert ("public-read" if public else "private") == seeded.acl, key
    reported = {entry["key"] for entry in json.loads(report.read_text())["missing_keys"]}
    assert reported == {ref.key for ref in instance.manifest.missing}
    # a re-run copies nothing
    again = run("--config", str(config), "--report", str(report), *acl)
    assert again.returncode == 0, again.stderr
    outcome = report_of(report)
    assert (outcome["copied"], outcome["bytes_copied"]) == (0, 0)
    assert outcome["skipped"] == len(objects)
    # and verify agrees (sizes, privacy from the file modes, headers Mastodon would send)
    verify = ("verify", "--config", str(config), *acl)
    verified = run_cli(*verify)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # but not when an upload's Content-Type is what a guess by extension gives
    key = gif_holding_jpeg[0]
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=(instance.root / key).read_bytes(),
        ContentType="image/gif",
        CacheControl=CACHE_CONTROL,
    )
    guessed = run_cli(*verify)
    assert guessed.returncode != 0
    assert f"header   {key}  ContentType: 'image/gif', source 'image/jpeg'" in guessed.stderr


def test_s3_to_disk_writes_files_with_modes_and_skips_by_stat(
    migration: Migration,
    tmp_path: Path,
) -> None:
    # given a seeded bucket and an empty directory
    root = tmp_path / "system"
    root.mkdir()
    config = tmp_path / "sync.toml"
    source = migration.source.bucket_settings(migration.source_bucket)
    config.write_text(config_toml(migration.db.url, source, disk_settings(root)))
    report = tmp_path / "report.json"
    # when
    first = run("--config", str(config), "--report", str(report))
    # then each object is a file with its bytes, private ones 0600, the others 0644
    assert first.returncode == 0, first.stderr
    assert report_of(report)["copied"] == len(migration.manifest.objects)
    for key, seeded in migration.manifest.objects.items():
        path = root / key
        assert md5(path.read_bytes()) == seeded.md5, key
        expected = 0o600 if seeded.acl == "private" else 0o644
        assert stat.S_IMODE(path.stat().st_mode) == expected, key
    assert not list(root.rglob(f"*{PARTIAL_SUFFIX}"))
    # a re-run copies 0 bytes: the skip checks come from stat
    again = run("--config", str(config), "--report", str(report))
    assert again.returncode == 0, again.stderr
    outcome = report_of(report)
    assert (outcome["copied"], outcome["bytes_copied"]) == (0, 0)
    assert "one stat per file" in again.stdout + again.stderr
    # and no ACLs means no privacy on disk: refused
    unsafe = run("--config", str(config), "--acl", "none")
    assert unsafe.returncode == 2
    assert "--acl none with a directory as the destination" in unsafe.stderr


def _one_object_copier(
    server: MotoS3Server,
    bucket: str,
    destination: Bucket,
    body: bytes,
    acl: ObjectCannedACLType,
) -> tuple[Copier, ObjectRef]:
    ref = ObjectRef(
        RecordType.MEDIA_ATTACHMENTS,
        7,
        "file",
        "original",
        "media_attachments/files/000/000/007/original/big.mp4",
    )
    server.client().put_object(
        Bucket=bucket, Key=ref.key, Body=body, ContentType="video/mp4", ACL=acl
    )
    settings = server.bucket_settings(bucket)
    source = Bucket(server.client(), bucket, settings.key_prefix, "source")
    options = CopyOptions(
        CopySettings(multipart_threshold_bytes=64 * KIB, part_size_bytes=64 * KIB)
    )
    return Copier(source, destination, options), ref


def test_large_object_to_disk_is_written_in_parts_then_renamed(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames, tmp_path: Path
) -> None:
    server, bucket = moto_servers[0], fresh_bucket_name()
    create_bucket(server.client(), bucket)
    body = os.urandom(300 * KIB)
    copier, ref = _one_object_copier(
        server, bucket, disk_bucket(disk_settings(tmp_path), "destination"), body, "private"
    )
    result = copier.copy(ref)
    assert result.outcome is Outcome.COPIED
    written = tmp_path / ref.key
    assert written.read_bytes() == body
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert [path.name for path in written.parent.iterdir()] == ["big.mp4"]


def test_public_files_get_the_configured_mode(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames, tmp_path: Path
) -> None:
    server, bucket = moto_servers[0], fresh_bucket_name()
    create_bucket(server.client(), bucket)
    settings = BucketSettings(path=str(tmp_path), file_mode=0o640)
    copier, ref = _one_object_copier(
        server, bucket, disk_bucket(settings, "destination"), b"video", "public-read"
    )
    assert copier.copy(ref).outcome is Outcome.COPIED
    assert stat.S_IMODE((tmp_path / ref.key).stat().st_mode) == 0o640


KILLED_WRITER = """
import sys, time
from pathlib import Path
from mastodon_s3_sync.storage.disk import DiskObjects, disk_client
client = disk_client(DiskObjects(Path(sys.argv[1])))
key = sys.argv[2]
upload = client.create_multipart_upload(Bucket="-", Key=key)["UploadId"]
client.upload_part(Bucket="-", Key=key, UploadId=upload, PartNumber=1, Body=b"x" * 70000)
print("half written", flush=True)
time.sleep(60)
"""


def test_a_killed_write_leaves_no_file_under_its_name_and_the_next_copy_cleans_up(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames, tmp_path: Path
) -> None:
    # given a writer killed (SIGKILL) half-way through the file
    key = "media_attachments/files/000/000/007/original/big.mp4"
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path), key], stdout=subprocess.PIPE
    ) as writer:
        assert writer.stdout is not None
        assert writer.stdout.readline() == b"half written\n"
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    final = tmp_path / key
    leftovers = list(final.parent.glob(f"*{PARTIAL_SUFFIX}"))
    # then nothing is under the final name, only a temporary file
    assert not final.exists()
    assert len(leftovers) == 1
    # and the next copy of that key writes the whole file and removes the leftover
    server, bucket = moto_servers[0], fresh_bucket_name()
    create_bucket(server.client(), bucket)
    body = os.urandom(200 * KIB)
    copier, ref = _one_object_copier(
        server, bucket, disk_bucket(disk_settings(tmp_path), "destination"), body, "public-read"
    )
    assert copier.copy(ref).outcome is Outcome.COPIED
    assert final.read_bytes() == body
    assert stat.S_IMODE(final.stat().st_mode) == 0o644
    assert not leftovers[0].exists()


def test_a_streamed_write_that_ends_short_or_changed_leaves_no_file(tmp_path: Path) -> None:
    objects = DiskObjects(tmp_path)
    body = os.urandom(300 * KIB)
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324
    pieces = [
        memoryview(body)[start : start + 100 * KIB] for start in range(0, len(body), 100 * KIB)
    ]
    short, changed = "accounts/avatars/short.png", "accounts/avatars/changed.png"
    with pytest.raises(botocore.exceptions.ClientError, match="IncompleteBody"):
        objects.put_stream(short, pieces[:2], len(body), {"ContentMD5": md5})
    with pytest.raises(botocore.exceptions.ClientError, match="BadDigest"):
        objects.put_stream(
            changed, [*pieces[:2], memoryview(bytes(100 * KIB))], len(body), {"ContentMD5": md5}
        )
    assert list((tmp_path / "accounts/avatars").iterdir()) == []
    written = objects.put_stream(short, pieces, len(body), {"ContentMD5": md5})
    assert written["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'  # noqa: S324
    assert (tmp_path / short).read_bytes() == body


def test_no_write_leaves_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "system", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "media_attachments").symlink_to(outside)
    objects = DiskObjects(root)
    for key in (
        "media_attachments/files/000/000/001/original/a.png",  # through the symlink
        "../outside/a.png",
        "accounts/../../outside/a.png",
        "/etc/passwd-copy",
    ):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            objects.put_object(key, b"data", {})
        assert refused.value.response["Error"]["Code"] == "AccessDenied", key
    assert list(outside.iterdir()) == []
    assert [path.name for path in root.iterdir()] == ["media_attachments"]


def test_a_symlink_out_of_the_source_root_is_not_read(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames, tmp_path: Path
) -> None:
    root, outside = tmp_path / "system", tmp_path / "secret"
    (root / "accounts/avatars/000/000/001/original").mkdir(parents=True)
    outside.write_bytes(b"not media")
    link = root / "accounts/avatars/000/000/001/original/a.png"
    link.symlink_to(outside)
    server, bucket = moto_servers[1], fresh_bucket_name()
    create_bucket(server.client(), bucket)
    settings = server.bucket_settings(bucket)
    copier = Copier(
        disk_bucket(disk_settings(root), "source"),
        Bucket(server.client(), bucket, settings.key_prefix, "destination"),
        CopyOptions(CopySettings()),
    )
    ref = ObjectRef(RecordType.ACCOUNTS, 1, "avatar", "original", str(link.relative_to(root)))
    result = copier.copy_or_fail(ref)
    assert result.outcome is Outcome.FAILED
    assert "outside" in result.reason
    assert "Contents" not in server.client().list_objects_v2(Bucket=bucket)


def test_config_check_shows_the_local_storage_root_of_the_env_file(
    tmp_path: Path,
    postgres: LocalPostgres,
    mastodon_db: MastodonDbFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given Mastodon's .env.production with local storage, in its Rails root
    db = mastodon_db()
    live = tmp_path / "live"
    (live / "public" / "system").mkdir(parents=True)
    env = live / ".env.production"
    env.write_text(
        f"DB_HOST={postgres.host}\nDB_PORT={postgres.port}\nDB_NAME={db.name}\n"
        f"DB_USER={postgres.user}\nDB_PASS={postgres.password}\nS3_ENABLED=false\n"
    )
    destination = tmp_path / "copy"
    destination.mkdir()
    # when
    status = main(
        ["config", "check", "--mastodon-env", str(env), "--destination", str(destination)]
    )
    output = capsys.readouterr().out
    # then the source is public/system beside it, with the rule that gave it
    assert status == 0, output
    root = live / "public" / "system"
    assert any(
        str(root) in line and "PAPERCLIP_ROOT_PATH unset: public/system" in line
        for line in output.splitlines()
    ), output
    assert f"OK   source bucket: directory '{root}' is there and readable" in output
    assert f"OK   destination bucket: directory '{destination}' is there and writable" in output
