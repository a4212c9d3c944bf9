"""A local directory as either side, through the other paths: ``--since`` delta passes,
Ctrl-C and resume, ``enumerate`` + ``worker``, and ``plan``."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import BucketSettings, CopySettings
from mastodon_s3_sync.demo.loader import insert_rows
from mastodon_s3_sync.demo.media import CACHE_CONTROL, create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import MotoS3Server
from mastodon_s3_sync.demo.seed import generate_rows
from mastodon_s3_sync.mastodon.layout import ObjectRef
from mastodon_s3_sync.storage.disk import PARTIAL_SUFFIX
from tests.support.disk_tree import prepare_disk, seed_directory
from tests.support.mastodon_db import MastodonDbFactory, all_refs, insert_videos
from tests.support.migration import SMALL_COUNTS, run
from tests.support.processes import CLI, run_cli
from tests.support.s3_servers import MOTO_ENV, BucketNames

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
VIDEO_BYTES = 24 * MIB
VIDEOS = 6
MULTIPART = CopySettings(multipart_threshold_bytes=8 * MIB, part_size_bytes=8 * MIB)
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def listing(client: S3Client, bucket: str) -> dict[str, tuple[int, str]]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {
        item["Key"]: (item["Size"], item["ETag"])
        for page in pages
        for item in page.get("Contents", [])
    }


def headers_and_privacy(client: S3Client, bucket: str, key: str) -> tuple[str, str, bool]:
    """Content-Type, Cache-Control, and whether anyone may read the object."""
    head = client.head_object(Bucket=bucket, Key=key)
    grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    public = any(grant.get("Grantee", {}).get("URI") == ALL_USERS for grant in grants)
    return head["ContentType"], head["CacheControl"], public


def report_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_since_copies_only_what_was_added_after_a_first_pass(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given an instance on local storage, copied once
    instance = prepare_disk(mastodon_db, tmp_path / "system")
    destination, bucket = moto_servers[1], fresh_bucket_name()
    create_bucket(destination.client(), bucket)
    config = tmp_path / "sync.toml"
    config.write_text(
        config_toml(
            instance.db.url,
            BucketSettings(path=str(instance.root)),
            destination.bucket_settings(bucket),
        )
    )
    report = tmp_path / "report.json"
    first = run("--config", str(config), "--report", str(report))
    assert first.returncode == 0, first.stderr
    before = listing(destination.client(), bucket)
    # and then media attached after WHEN (the seeded rows changed long before)
    when, later = "2026-06-01T00:00:00Z", datetime(2026, 6, 2)
    [[last_id]] = instance.db.conn.run("SELECT max(id) FROM media_attachments")
    rows = list(generate_rows("media_attachments", 12, seed=6, start_id=int(last_id) + 1))
    for row in rows:
        for column in row:
            if column.endswith("updated_at") and row[column] is not None:
                row[column] = later
    insert_rows(instance.db.conn, "media_attachments", rows)
    known = {ref.key for ref in instance.refs}
    added = [ref for ref in all_refs(instance.db) if ref.key not in known]
    assert added
    written = seed_directory(instance.root, added).objects
    # when
    delta = run("--config", str(config), "--report", str(report), "--since", when)
    # then exactly the new files are copied, and far fewer rows were looked at
    assert delta.returncode == 0, delta.stderr
    outcome = report_of(report)
    assert outcome["copied"] == len(written)
    assert outcome["failed"] == 0
    assert outcome["skipped"] + outcome["missing"] < len(instance.refs) // 2
    after = listing(destination.client(), bucket)
    assert set(after) - set(before) == set(written)
    assert {key: after[key] for key in before} == before


def _seed_videos(mastodon_db: MastodonDbFactory) -> tuple[str, list[ObjectRef]]:
    """A database of large videos (multipart copies, so Ctrl-C finds them mid-way)."""
    db = mastodon_db()
    insert_videos(db.conn, range(1, VIDEOS + 1), VIDEO_BYTES)
    return db.url, [ref for ref in all_refs(db) if ref.style == "original"]


def _interrupt_when(command: list[str], started: Callable[[], bool]) -> tuple[int, str]:
    """Run ``command``, send Ctrl-C (SIGINT) once ``started()``; exit status and stderr."""
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not started():
        assert child.poll() is None, f"ended before it was interrupted:\n{child.communicate()}"
        assert time.monotonic() < deadline, "no copy began within 60 s"
        time.sleep(0.02)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=120)
    return child.returncode, stderr


def test_ctrl_c_from_disk_then_a_rerun_completes(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given large videos on local storage and an empty bucket
    url, refs = _seed_videos(mastodon_db)
    root = tmp_path / "system"
    seed_directory(root, refs, large_sizes=True)
    destination, bucket = moto_servers[1], fresh_bucket_name()
    client = destination.client()
    create_bucket(client, bucket)
    config = tmp_path / "sync.toml"
    config.write_text(
        config_toml(
            url, BucketSettings(path=str(root)), destination.bucket_settings(bucket), MULTIPART
        )
    )
    report = tmp_path / "report.json"
    command = [*CLI, "run", "--config", str(config)]
    # when interrupted while an upload is open
    status, stderr = _interrupt_when(
        [*command, "--workers", "2", "--report", str(report)],
        lambda: bool(client.list_multipart_uploads(Bucket=bucket).get("Uploads")),
    )
    # then a clean stop: no upload left open, whatever is there is whole
    assert status == 130, stderr
    assert "Traceback" not in stderr
    assert report_of(report)["interrupted"] is True
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    listed = listing(client, bucket)
    assert len(listed) < len(refs)
    assert all(size == VIDEO_BYTES for size, _ in listed.values())
    # and a re-run finishes the job, which verify confirms
    rerun = run("--config", str(config), "--report", str(report))
    assert rerun.returncode == 0, rerun.stderr
    assert report_of(report)["skipped"] == len(listed)
    assert len(listing(client, bucket)) == len(refs)
    verified = run_cli("verify", "--config", str(config), env=MOTO_ENV)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_ctrl_c_to_disk_leaves_no_partial_file_then_a_rerun_completes(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given large videos in a bucket and an empty directory
    url, refs = _seed_videos(mastodon_db)
    source, bucket = moto_servers[0], fresh_bucket_name()
    create_bucket(source.client(), bucket)
    manifest = seed_bucket(source.client(), bucket, refs, large_sizes=True)
    root = tmp_path / "system"
    root.mkdir()
    config = tmp_path / "sync.toml"
    config.write_text(
        config_toml(url, source.bucket_settings(bucket), BucketSettings(path=str(root)), MULTIPART)
    )
    report = tmp_path / "report.json"
    command = [*CLI, "run", "--config", str(config)]
    # when interrupted while a file is being written
    status, stderr = _interrupt_when(
        [*command, "--workers", "2", "--report", str(report)],
        lambda: any(root.rglob(f"*{PARTIAL_SUFFIX}")),
    )
    # then a clean stop: every file under its final name is whole, no temporary one left
    assert status == 130, stderr
    assert "Traceback" not in stderr
    assert report_of(report)["interrupted"] is True
    files = [path for path in root.rglob("*") if path.is_file()]
    assert not [path for path in files if path.name.endswith(PARTIAL_SUFFIX)]
    assert len(files) < len(refs)
    for path in files:
        key = str(path.relative_to(root))
        digest = hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324
        assert digest == manifest.objects[key].md5, key
    # and a re-run finishes the job, which verify confirms
    rerun = run("--config", str(config), "--report", str(report))
    assert rerun.returncode == 0, rerun.stderr
    assert report_of(report)["skipped"] == len(files)
    assert len([path for path in root.rglob("*") if path.is_file()]) == len(refs)
    verified = run_cli("verify", "--config", str(config), env=MOTO_ENV)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_enumerate_then_worker_from_disk_equals_run_and_plan_reads_it(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given an instance on local storage (small: both paths copy it whole), two empty buckets
    # and an empty queue
    instance = prepare_disk(mastodon_db, tmp_path / "system", SMALL_COUNTS)
    destination = moto_servers[1]
    client = destination.client()
    via_queue, via_run = fresh_bucket_name(), fresh_bucket_name()
    configs = []
    for bucket in (via_queue, via_run):
        create_bucket(client, bucket)
        path = tmp_path / f"{bucket}.toml"
        path.write_text(
            config_toml(
                instance.db.url,
                BucketSettings(path=str(instance.root)),
                destination.bucket_settings(bucket),
            )
        )
        configs.append(path)
    sqs = boto3.client(
        "sqs",
        endpoint_url=destination.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    queue_url = sqs.create_queue(QueueName=fresh_bucket_name())["QueueUrl"]
    queue = ["--queue-url", queue_url, "--sqs-endpoint-url", destination.endpoint_url]
    queue += ["--region", "us-east-1"]
    # when: enumerate, a worker reading the directory, and run
    enumerated = run_cli("enumerate", "--database-url", instance.db.url, *queue, env=MOTO_ENV)
    assert enumerated.returncode == 0, enumerated.stderr
    worked = run_cli("worker", "--config", str(configs[0]), *queue, "--until-empty", env=MOTO_ENV)
    assert worked.returncode == 0, worked.stderr
    assert "0 failed" in worked.stderr
    ran = run("--config", str(configs[1]))
    assert ran.returncode == 0, ran.stderr
    # then both copied the same: every file written, with the same bytes
    copied = listing(client, via_queue)
    assert copied == listing(client, via_run)
    assert set(copied) == set(instance.manifest.objects)
    # the headers a disk side must work out: privacy from the file mode, a .gif's type
    telling = {
        key: seeded
        for key, seeded in instance.manifest.objects.items()
        if seeded.acl == "private" or key.endswith(".gif")
    }
    assert telling
    for key, seeded in telling.items():
        by_worker = headers_and_privacy(client, via_queue, key)
        assert by_worker == headers_and_privacy(client, via_run, key), key
        assert by_worker == (seeded.content_type, CACHE_CONTROL, seeded.acl == "public-read"), key
    # and plan, given the same config, lists the keys from the database
    planned = run_cli("plan", "--config", str(configs[0]), env=MOTO_ENV)
    assert planned.returncode == 0, planned.stderr
    assert set(planned.stdout.splitlines()) == {ref.key for ref in instance.refs}
