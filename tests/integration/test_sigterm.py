"""SIGTERM stops ``run``, ``worker``, ``verify`` and ``demo`` as cleanly as Ctrl-C does.

systemd, Docker and Kubernetes stop programs with SIGTERM. Each command here runs as a
real child process, gets the signal in the middle of its work, and must stop as on Ctrl-C:
multipart uploads aborted, the report written, the demo's servers stopped; exit status 143
(130 for Ctrl-C).
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import BucketSettings, CopySettings
from mastodon_s3_sync.demo.media import create_bucket, seed_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.s3servers import MotoS3Server
from mastodon_s3_sync.demo.schema import SchemaVersion, create_schema
from tests.support.faultproxy import Fault, FaultProxy, FaultRule, Operation
from tests.support.mastodon_db import MastodonDb, all_refs, insert_videos
from tests.support.processes import Child, is_running, listening_pids, run_cli
from tests.support.s3_servers import MOTO_ENV, BucketNames

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
VIDEOS = 4
MULTIPART = CopySettings(multipart_threshold_bytes=8 * MIB, part_size_bytes=8 * MIB)


@dataclass(frozen=True)
class Videos:
    """A database of large videos and a source bucket holding them (multipart copies, so
    a signal finds uploads open), on one moto server; the other is the destination."""

    database_url: str
    source: BucketSettings
    destination: MotoS3Server

    def config(self, path: Path, destination_bucket: str, endpoint: str | None = None) -> Path:
        """A config file copying the videos into ``destination_bucket`` (reached through
        ``endpoint`` when given)."""
        create_bucket(self.destination.client(), destination_bucket)
        destination = self.destination.bucket_settings(destination_bucket)
        if endpoint is not None:
            destination = replace(destination, endpoint_url=endpoint)
        path.write_text(config_toml(self.database_url, self.source, destination, MULTIPART))
        return path


@pytest.fixture(scope="module")
def videos(
    postgres: LocalPostgres, moto_servers: tuple[MotoS3Server, MotoS3Server]
) -> Iterator[Videos]:
    name = f"mastodon_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name)
    db = MastodonDb(url, postgres.connect(name), name, SchemaVersion.CURRENT)
    create_schema(db.conn, db.version)
    insert_videos(db.conn, range(1, VIDEOS + 1), 24 * MIB)
    refs = [ref for ref in all_refs(db) if ref.style == "original"]
    source, destination = moto_servers
    bucket = f"sigterm-{uuid.uuid4().hex[:8]}"
    create_bucket(source.client(), bucket)
    seed_bucket(source.client(), bucket, refs, large_sizes=True, multipart_threshold=15 * MIB)
    yield Videos(url, source.bucket_settings(bucket), destination)
    db.conn.close()
    postgres.drop_database(name)


def wait_for_an_open_upload(client: S3Client, bucket: str, child: Child) -> None:
    """Until a multipart upload is under way at the destination."""
    deadline = time.monotonic() + 120
    while not client.list_multipart_uploads(Bucket=bucket).get("Uploads"):
        assert child.process.poll() is None, f"ended before any upload:\n{child.stderr}"
        assert time.monotonic() < deadline, f"no upload began:\n{child.stderr}"
        time.sleep(0.05)


def assert_stopped_cleanly(client: S3Client, bucket: str, report: Path) -> None:
    """Stopped mid-way: no upload left open, every object there whole, the report says it
    was interrupted."""
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert len(listed) < VIDEOS
    for item in listed:
        assert item["Size"] == 24 * MIB
    assert json.loads(report.read_text())["interrupted"] is True


def test_sigterm_stops_run_cleanly(
    videos: Videos, fresh_bucket_name: BucketNames, tmp_path: Path
) -> None:
    # given a run copying large videos, an upload under way
    bucket, report = fresh_bucket_name(), tmp_path / "run.json"
    config = videos.config(tmp_path / "sync.toml", bucket)
    with Child(
        ["run", "--config", str(config), "--workers", "2", "--report", str(report)]
    ) as child:
        wait_for_an_open_upload(videos.destination.client(), bucket, child)
        # when
        child.signal(signal.SIGTERM)
        status = child.finish(timeout=120)
    # then
    assert status == 143, child.stderr
    assert "Traceback" not in child.stderr
    assert "stopping: finishing the objects in flight (SIGTERM again quits now)" in child.stderr
    assert_stopped_cleanly(videos.destination.client(), bucket, report)


def test_sigterm_stops_worker_cleanly(
    videos: Videos, fresh_bucket_name: BucketNames, tmp_path: Path
) -> None:
    # given the videos' references in a queue, and a worker copying them
    bucket, report = fresh_bucket_name(), tmp_path / "worker.json"
    config = videos.config(tmp_path / "sync.toml", bucket)
    endpoint = videos.destination.endpoint_url
    sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    queue_url = sqs.create_queue(QueueName=bucket)["QueueUrl"]
    queue = ["--queue-url", queue_url, "--sqs-endpoint-url", endpoint, "--region", "us-east-1"]
    enumerated = run_cli("enumerate", "--database-url", videos.database_url, *queue, env=MOTO_ENV)
    assert enumerated.returncode == 0, enumerated.stderr
    command = ["worker", "--config", str(config), *queue, "--workers", "2"]
    with Child([*command, "--report", str(report)], env=MOTO_ENV) as child:
        wait_for_an_open_upload(videos.destination.client(), bucket, child)
        # when
        child.signal(signal.SIGTERM)
        status = child.finish(timeout=120)
    # then
    assert status == 143, child.stderr
    assert "Traceback" not in child.stderr
    assert_stopped_cleanly(videos.destination.client(), bucket, report)


@pytest.mark.parametrize(
    ("signum", "status", "said"),
    [(signal.SIGTERM, 143, "interrupted (SIGTERM)"), (signal.SIGINT, 130, "interrupted")],
    ids=["SIGTERM", "Ctrl-C"],
)
def test_verify_stops_alike_on_sigterm_and_ctrl_c(
    videos: Videos,
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
    signum: signal.Signals,
    status: int,
    said: str,
) -> None:
    # given a verify whose every HEAD at the destination takes seconds (an empty
    # destination: each missing object is confirmed with one)
    bucket = fresh_bucket_name()
    slow = FaultRule(Fault.DELAY, operations=(Operation.HEAD,), seconds=3)
    with FaultProxy(videos.destination.endpoint_url, rules=[slow]) as proxy:
        config = videos.config(tmp_path / "sync.toml", bucket, proxy.url)
        with Child(["verify", "--config", str(config)]) as child:
            deadline = time.monotonic() + 120
            while not proxy.stats.injected_by_fault()[Fault.DELAY]:
                assert child.process.poll() is None, f"ended early:\n{child.stderr}"
                assert time.monotonic() < deadline, f"no HEAD came:\n{child.stderr}"
                time.sleep(0.05)
            # when
            child.signal(signum)
            exit_status = child.finish(timeout=60)
    # then
    assert exit_status == status, child.stderr
    assert child.lines[-1] == f"mastodon-s3-sync: {said}", child.stderr
    assert "Traceback" not in child.stderr


def test_sigterm_stops_the_demo_and_every_server_it_started(tmp_path: Path) -> None:
    # given `demo --keep`, running
    with Child(["demo", "--keep", "--quick", "--reports", str(tmp_path)]) as child:
        child.wait_for("running; Ctrl-C (or SIGTERM) stops everything", timeout=600)
        ports = [int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", child.stderr)]
        servers = {pid for port in set(ports) for pid in listening_pids(port)}
        assert len(set(ports)) == 3, child.stderr  # PostgreSQL and two S3 servers
        assert len(servers) == 3, child.stderr
        # when
        child.signal(signal.SIGTERM)
        status = child.finish(timeout=120)
    # then: every server it started is gone
    assert status == 143, child.stderr
    assert child.lines[-1] == "stopped the sandbox", child.stderr
    assert not {pid for pid in servers if is_running(pid)}
    assert not {pid for port in ports for pid in listening_pids(port)}
