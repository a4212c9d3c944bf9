"""``enumerate`` + ``worker`` over a real SQS queue (moto_server) give what ``run`` gives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.demo.media import create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import MotoS3Server
from mastodon_s3_sync.demo.schema import SchemaVersion
from mastodon_s3_sync.demo.seed import seed_database
from tests.support.mastodon_db import MastodonDb, all_refs
from tests.support.processes import run_cli
from tests.support.s3_servers import MOTO_ENV, BucketNames

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

MakeDb = Callable[..., MastodonDb]


def listing(client: S3Client, bucket: str) -> dict[str, tuple[int, str]]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {
        item["Key"]: (item["Size"], item["ETag"])
        for page in pages
        for item in page.get("Contents", [])
    }


def config(
    path: Path, url: str, source: MotoS3Server, destination: MotoS3Server, buckets: tuple[str, str]
) -> Path:
    # no keys in the file: credentials come from the standard AWS environment (MOTO_ENV)
    source_side, destination_side = (
        replace(server.bucket_settings(bucket), access_key_id=None, secret_access_key=None)
        for server, bucket in ((source, buckets[0]), (destination, buckets[1]))
    )
    path.write_text(config_toml(url, source_side, destination_side))
    return path


def test_enumerate_then_worker_until_empty_equals_run(
    mastodon_db: MakeDb,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given a seeded source, two empty destinations without ACLs and an empty queue, and a
    # suspended account whose media must not land where anyone could read it
    db = mastodon_db()
    seed_database(
        db.conn,
        SchemaVersion.CURRENT,
        {"accounts": 30, "media_attachments": 60, "custom_emojis": 10, "preview_cards": 20},
        seed=11,
    )
    source, destination = moto_servers
    source_bucket, via_queue, via_run = (
        fresh_bucket_name(),
        fresh_bucket_name(),
        fresh_bucket_name(),
    )
    create_bucket(source.client(), source_bucket)
    for bucket in (via_queue, via_run):
        create_bucket(destination.client(), bucket)
    [[account_id]] = db.conn.run("SELECT min(id) FROM accounts WHERE domain IS NULL")
    db.conn.run("UPDATE accounts SET suspended_at = now() WHERE id = :a", a=account_id)
    db.conn.run(
        "UPDATE media_attachments SET account_id = :a WHERE id IN (SELECT id FROM "
        "media_attachments WHERE file_file_name <> '' ORDER BY id LIMIT 3)",
        a=account_id,
    )
    refs = all_refs(db)
    private = {ref.key for ref in refs if ref.private}
    assert private
    seed_bucket(source.client(), source_bucket, refs, missing_every=19, legacy_every=23)
    sqs = boto3.client(
        "sqs",
        endpoint_url=source.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    queue_url = sqs.create_queue(QueueName=fresh_bucket_name())["QueueUrl"]
    queue = ["--queue-url", queue_url, "--sqs-endpoint-url", source.endpoint_url]
    queue += ["--region", "us-east-1"]
    # when: enumerate where the database is, then a worker elsewhere
    enumerated = run_cli("enumerate", "--database-url", db.url, *queue, env=MOTO_ENV)
    assert enumerated.returncode == 0, enumerated.stderr
    assert f"{len(refs):,} objects sent" in enumerated.stderr
    worker_config = config(
        tmp_path / "worker.toml", db.url, source, destination, (source_bucket, via_queue)
    )
    acl = ["--acl", "none"]
    worked = run_cli(
        "worker", "--config", str(worker_config), *queue, *acl, "--until-empty", env=MOTO_ENV
    )
    assert worked.returncode == 0, worked.stderr
    assert "0 failed" in worked.stderr
    assert f"withheld {len(private):,} objects Mastodon made private" in worked.stderr
    # and the same with run
    run_config = config(
        tmp_path / "run.toml", db.url, source, destination, (source_bucket, via_run)
    )
    ran = run_cli("run", "--config", str(run_config), *acl, env=MOTO_ENV)
    assert ran.returncode == 0, ran.stderr
    assert f"withheld {len(private):,} objects Mastodon made private" in ran.stderr
    # then
    client = destination.client()
    copied = listing(client, via_queue)
    assert copied == listing(client, via_run)
    assert len(copied) > 100
    assert not private & set(copied)
