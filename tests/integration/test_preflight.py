"""The preflight refuses, against real local servers, in seconds and before any copy.

Each case points ``run`` or ``verify`` at a provider that differs the way real ones do:
rclone's server answers GetObjectAcl with 500 (an ACL-less provider), SeaweedFS accepts a
canned ACL and keeps the object private, a SeaweedFS key that may only read, a report path
that cannot be written, a source bucket that holds none of what the database references.
Each ends with one line, exit status 2, and an untouched destination bucket.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import AclMode, CopySettings
from mastodon_s3_sync.copying.preflight import SOURCE_PROBE_ENOUGH
from mastodon_s3_sync.demo.media import create_bucket
from mastodon_s3_sync.demo.s3servers import MotoS3Server, RcloneS3Server, SeaweedS3Server
from tests.support.faultproxy import FaultProxy, Operation
from tests.support.mastodon_db import MastodonDbFactory
from tests.support.migration import SMALL_COUNTS, Migration, prepare
from tests.support.processes import run_cli
from tests.support.s3_servers import BucketNames

pytestmark = pytest.mark.integration

PROG = "mastodon-s3-sync: error: "
REFUSAL_SECONDS = 10


def refused(command: str, *args: str) -> str:
    """Run ``command ARGS``; assert it refused within the time limit with exit 2 and one
    error line; return that line."""
    started = time.monotonic()
    done = run_cli(command, *args, timeout=60)
    seconds = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert seconds < REFUSAL_SECONDS, f"refused after {seconds:.1f} s"
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith(PROG)]
    assert len(errors) == 1, done.stderr
    return errors[0]


def destination_keys(migration: Migration) -> list[str]:
    listed = migration.destination.client().list_objects_v2(Bucket=migration.destination_bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def config(migration: Migration, tmp_path: Path, acl: AclMode) -> str:
    return str(migration.config(tmp_path, copy=CopySettings(acl=acl)))


def test_destination_without_object_acls_refuses_run_and_verify(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given a destination whose GetObjectAcl answers 500 and --acl copy
    migration = prepare(
        mastodon_db, (moto_servers[0], rclone_servers[0]), fresh_bucket_name, counts=SMALL_COUNTS
    )
    settings = config(migration, tmp_path, AclMode.COPY)
    # when / then
    line = refused("run", "--config", settings)
    assert "GetObjectAcl" in line, line
    assert "--acl none" in line, line
    assert destination_keys(migration) == []
    # verify reads the destination's ACLs too: refused before minutes of retries
    migration.destination.client().put_object(
        Bucket=migration.destination_bucket, Key="accounts/avatars/a.png", Body=b"x"
    )
    line = refused("verify", "--config", settings)
    assert "GetObjectAcl" in line, line
    assert "--acl" in line, line


def test_destination_that_drops_canned_acls_refuses(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    seaweedfs_server: SeaweedS3Server,
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given SeaweedFS, which accepts x-amz-acl: public-read and keeps the object private
    migration = prepare(
        mastodon_db, (moto_servers[0], seaweedfs_server), fresh_bucket_name, counts=SMALL_COUNTS
    )
    # when / then
    line = refused("run", "--config", config(migration, tmp_path, AclMode.PUBLIC_READ))
    assert "kept it private" in line, line
    assert "--acl none" in line, line
    assert destination_keys(migration) == []


def test_read_only_destination_refuses(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    seaweedfs_server: SeaweedS3Server,
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given destination keys that may read and list, not write
    migration = prepare(
        mastodon_db, (moto_servers[0], seaweedfs_server), fresh_bucket_name, counts=SMALL_COUNTS
    )
    reader_id, reader_secret = seaweedfs_server.reader_key_pair
    source = migration.source.bucket_settings(migration.source_bucket)
    destination = dataclasses.replace(
        seaweedfs_server.bucket_settings(migration.destination_bucket),
        access_key_id=reader_id,
        secret_access_key=reader_secret,
    )
    path = tmp_path / "read-only.toml"
    path.write_text(
        config_toml(migration.db.url, source, destination, CopySettings(acl=AclMode.NONE))
    )
    # when / then
    line = refused("run", "--config", str(path))
    assert "refused a test write" in line, line
    assert "[destination]" in line, line
    assert reader_secret not in line
    assert destination_keys(migration) == []


@pytest.mark.parametrize("where", ["missing-directory", "a-directory", "read-only-directory"])
def test_report_path_that_cannot_be_written_refuses(
    where: str,
    small_migration: Migration,
    tmp_path: Path,
) -> None:
    # given a report path that would fail only after the copy
    report = {
        "missing-directory": tmp_path / "no" / "such" / "report.json",
        "a-directory": tmp_path,
        "read-only-directory": _unwritable_directory(tmp_path) / "report.json",
    }[where]
    # when / then
    line = refused(
        "run", "--config", config(small_migration, tmp_path, AclMode.COPY), "--report", str(report)
    )
    assert "--report" in line, line
    assert destination_keys(small_migration) == []
    assert not report.is_file()


def test_source_without_the_referenced_objects_refuses_unless_allowed(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given a source bucket that exists but is empty (a wrong bucket or key prefix)
    migration = prepare(mastodon_db, moto_servers, fresh_bucket_name)
    empty = fresh_bucket_name()
    create_bucket(migration.source.client(), empty)
    migration.source_bucket = empty
    settings = config(migration, tmp_path, AclMode.PUBLIC_READ)
    # when / then
    line = refused("run", "--config", settings)
    assert f"source bucket {empty!r}" in line, line
    assert "--allow-missing" in line, line
    assert destination_keys(migration) == []
    # and --allow-missing goes on: everything is missing, nothing fails
    allowed = run_cli("run", "--config", settings, "--allow-missing")
    assert allowed.returncode == 0, allowed.stderr
    assert "missing" in allowed.stderr


def test_preflight_summary_before_the_copy(
    migration: Migration,
    tmp_path: Path,
) -> None:
    # given a good migration
    report = tmp_path / "report.json"
    done = run_cli(
        "run", "--config", config(migration, tmp_path, AclMode.COPY), "--report", str(report)
    )
    # then one preflight line says what was checked, and no probe object is left behind
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("preflight (")]
    for found in ("report: ", "source ACLs: ", "keeps ACL public-read", "source objects: "):
        assert found in line, line
    assert not any("mastodon-s3-sync-probe" in key for key in destination_keys(migration))
    assert report.is_file()


def _unwritable_directory(tmp_path: Path) -> Path:
    """A directory this user cannot create files in: a mode-0500 one, or for root (who
    writes anywhere else) sysfs, where no one can create a file."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        return locked
    return Path("/sys")


def test_a_rerun_asks_each_bucket_once_and_few_source_objects(
    migration: Migration,
    tmp_path: Path,
) -> None:
    # given a migration already copied
    first = run_cli("run", "--config", config(migration, tmp_path, AclMode.NONE))
    assert first.returncode == 0, first.stderr
    # when it runs again with every request counted at both sides
    source_settings = migration.source.bucket_settings(migration.source_bucket)
    destination_settings = migration.destination.bucket_settings(migration.destination_bucket)
    with (
        FaultProxy(migration.source.endpoint_url) as source_proxy,
        FaultProxy(migration.destination.endpoint_url) as destination_proxy,
    ):
        path = tmp_path / "counted.toml"
        source = dataclasses.replace(source_settings, endpoint_url=source_proxy.url)
        destination = dataclasses.replace(destination_settings, endpoint_url=destination_proxy.url)
        path.write_text(config_toml(migration.db.url, source, destination))
        done = run_cli("run", "--config", str(path), "--acl", "none")
        at_source, at_destination = source_proxy.stats, destination_proxy.stats
    assert done.returncode == 0, done.stderr
    # then each bucket was asked HeadBucket once (the copier's clients reuse the answer),
    assert at_source.forwarded[Operation.BUCKET] == 1
    assert at_destination.forwarded[Operation.BUCKET] == 1
    # the destination took one probe write, deleted again,
    assert at_destination.forwarded[Operation.PUT] == 1
    assert at_destination.forwarded[Operation.DELETE] == 1
    # and the source was asked for no more objects than the preflight needed to find
    [line] = [line for line in done.stderr.splitlines() if line.startswith("preflight (")]
    assert f"{SOURCE_PROBE_ENOUGH} of the first {SOURCE_PROBE_ENOUGH} referenced" in line, line
    assert at_source.forwarded[Operation.HEAD] == SOURCE_PROBE_ENOUGH
