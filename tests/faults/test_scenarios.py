"""Fault scenarios: ``run`` (and the queue copier) against misbehaving providers and database.

Each scenario seeds a small Mastodon (PostgreSQL) and a source bucket, puts a
:class:`FaultProxy` in front of one or both S3 servers, runs the real command, and ends
with :func:`check_invariant`: every object intact at the destination or listed with a
reason, nothing corrupt, nothing unasked-for, no multipart upload left open. Outcome counts
go into the fault matrix printed at the end of the session.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import CopySettings
from mastodon_s3_sync.demo.media import SeedManifest, create_bucket, seed_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.s3servers import LocalS3Server, MotoS3Server
from mastodon_s3_sync.demo.schema import SchemaVersion
from mastodon_s3_sync.demo.seed import seed_database
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from tests.support.faultproxy import (
    MULTIPART_OPERATIONS,
    Fault,
    FaultProxy,
    FaultRule,
    Operation,
    mixed_faults,
)
from tests.support.invariant import MATRIX, Verdict, check_invariant, open_uploads
from tests.support.mastodon_db import MastodonDb, all_refs, insert_videos
from tests.support.processes import CLI, run_cli
from tests.support.s3_servers import BucketNames

MakeDb = Callable[..., MastodonDb]
MIB = 1024 * 1024
COUNTS = {"accounts": 24, "media_attachments": 45, "custom_emojis": 8, "preview_cards": 16}
LARGE_VIDEOS = 3
LARGE_SIZE = 12 * MIB
MULTIPART = CopySettings(workers=8, multipart_threshold_bytes=8 * MIB, part_size_bytes=5 * MIB)
# Object operations; HeadBucket is left alone (the start-up check has its own scenario).
OBJECT_OPERATIONS = (
    Operation.GET,
    Operation.HEAD,
    Operation.PUT,
    Operation.LIST,
    Operation.ACL,
    Operation.DELETE,
    *MULTIPART_OPERATIONS,
)


@dataclass
class Scene:
    """A seeded database and source bucket, an empty destination bucket, maybe proxies."""

    db: MastodonDb
    source: LocalS3Server
    destination: LocalS3Server
    source_bucket: str
    destination_bucket: str
    refs: list[ObjectRef]
    manifest: SeedManifest
    tmp_path: Path

    def config(
        self,
        *,
        source_url: str | None = None,
        destination_url: str | None = None,
        copy: CopySettings = MULTIPART,
        database_url: str | None = None,
    ) -> Path:
        """A config file reaching the buckets directly or through the given proxy URLs."""
        source = self.source.bucket_settings(self.source_bucket)
        destination = self.destination.bucket_settings(self.destination_bucket)
        if source_url is not None:
            source = replace(source, endpoint_url=source_url)
        if destination_url is not None:
            destination = replace(destination, endpoint_url=destination_url)
        path = self.tmp_path / "sync.toml"
        path.write_text(config_toml(database_url or self.db.url, source, destination, copy))
        return path

    def verdict(
        self,
        report: dict[str, Any],
        *,
        may_vanish: frozenset[str] = frozenset(),
        check_acl: bool = True,
    ) -> Verdict:
        """The invariant, checked directly against the destination server."""
        return check_invariant(
            refs=self.refs,
            manifest=self.manifest,
            destination=self.destination.client(),
            bucket=self.destination_bucket,
            report=report,
            may_vanish=may_vanish,
            check_acl=check_acl,
        )


def seed_scene(
    mastodon_db: MakeDb,
    servers: tuple[LocalS3Server, LocalS3Server],
    names: BucketNames,
    tmp_path: Path,
    *,
    counts: dict[str, int] = COUNTS,
    videos: int = 0,
) -> Scene:
    db = mastodon_db()
    seed_database(db.conn, SchemaVersion.CURRENT, counts, seed=8)
    insert_videos(db.conn, range(9_000_000, 9_000_000 + videos), LARGE_SIZE)
    refs = all_refs(db)
    source, destination = servers
    source_bucket, destination_bucket = names(), names()
    create_bucket(source.client(), source_bucket)
    create_bucket(destination.client(), destination_bucket)
    large = [ref for ref in refs if ref.expected_size == LARGE_SIZE and ref.style == "original"]
    small = [ref for ref in refs if ref not in large]
    manifest = seed_bucket(
        source.client(),
        source_bucket,
        small,
        private_record_ids={ref.record_id for ref in small[::5]},
        missing_every=23,
        legacy_every=11,
    )
    if large:
        big = seed_bucket(source.client(), source_bucket, large, large_sizes=True)
        manifest.objects.update(big.objects)
    return Scene(
        db, source, destination, source_bucket, destination_bucket, refs, manifest, tmp_path
    )


def wait_until(condition: Callable[[], bool], child: subprocess.Popen[Any]) -> None:
    """Poll ``condition`` while the run goes on; fail if the run ends first or in a minute."""
    deadline = time.monotonic() + 60
    while not condition():
        assert child.poll() is None, "the run ended before the scenario could act"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.01)


def run_command(*args: str) -> list[str]:
    return [*CLI, "run", *args]


def run_with_report(
    scene: Scene, config: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = scene.tmp_path / "report.json"
    report.unlink(missing_ok=True)
    result = run_cli("run", "--config", str(config), "--report", str(report), *extra)
    assert "Traceback" not in result.stderr, result.stderr
    assert report.exists(), result.stderr
    return result, json.loads(report.read_text())


@pytest.fixture
def scene(
    mastodon_db: MakeDb,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> Scene:
    return seed_scene(mastodon_db, moto_servers, fresh_bucket_name, tmp_path, videos=LARGE_VIDEOS)


def test_ten_percent_mixed_faults_on_every_operation(scene: Scene) -> None:
    # given both providers faulting 10% of every object operation, 2% of answers delayed
    rules = [
        *mixed_faults(0.10, OBJECT_OPERATIONS),
        FaultRule(Fault.DELAY, OBJECT_OPERATIONS, rate=0.02, seconds=0.3),
    ]
    with (
        FaultProxy(scene.source.endpoint_url, rules=rules, seed=1) as source,
        FaultProxy(scene.destination.endpoint_url, rules=rules, seed=2) as destination,
    ):
        config = scene.config(source_url=source.url, destination_url=destination.url)
        # when
        result, report = run_with_report(scene, config)
        injected = source.stats.total_injected + destination.stats.total_injected
    # then every object is intact or listed; the retries absorbed the faults
    verdict = scene.verdict(report)
    MATRIX.record("10% mixed faults, both sides", verdict.counts, f"{injected} faults injected")
    verdict.assert_holds()
    assert injected >= 40
    assert report["failed"] == 0, report["failed_keys"]
    assert result.returncode == 0, result.stderr


def test_destination_hard_down_for_a_while_then_back(scene: Scene) -> None:
    # given a destination that goes down (503 to everything) for 4 s once copying began
    with FaultProxy(scene.destination.endpoint_url) as destination:
        config = scene.config(destination_url=destination.url)
        report_path = scene.tmp_path / "report.json"
        child = subprocess.Popen(
            run_command("--config", str(config), "--report", str(report_path)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: destination.stats.forwarded.get(Operation.PUT, 0) >= 5, child)
        destination.set_rules([FaultRule.hard_down(4.0)])
        # when the run goes on through the outage
        _, stderr = child.communicate(timeout=240)
        refused = sum(
            count
            for (_, fault), count in destination.stats.injected.items()
            if fault is Fault.UNAVAILABLE_503
        )
    # then the outage cost time, not objects
    report = json.loads(report_path.read_text())
    verdict = scene.verdict(report)
    MATRIX.record("destination down 4 s mid-run", verdict.counts, f"{refused} requests refused")
    verdict.assert_holds()
    assert refused >= 8
    assert report["failed"] == 0, report["failed_keys"]
    assert child.returncode == 0, stderr


def test_provider_down_at_start_is_refused_clearly(scene: Scene) -> None:
    with FaultProxy(scene.source.endpoint_url, rules=[FaultRule.hard_down(600)]) as source:
        url = source.url
        result = run_cli("run", "--config", str(scene.config(source_url=url)))
    assert result.returncode == 2
    assert f"source bucket {scene.source_bucket!r} at {url}" in result.stderr
    assert "answered 503" in result.stderr
    assert "Traceback" not in result.stderr
    assert not open_uploads(scene.destination.client(), scene.destination_bucket)
    MATRIX.record("source down at start", {}, "refused before any copy, exit 2")


def terminate_backends(postgres: LocalPostgres, database: str) -> int:
    """Cut the run's database connections from another session; how many were cut."""
    admin = postgres.connect("postgres")
    try:
        rows = admin.run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :name AND application_name = 'mastodon-s3-sync'",
            name=database,
        )
    finally:
        admin.close()
    return len(rows or [])


def test_database_connection_dropped_mid_enumeration(scene: Scene, postgres: LocalPostgres) -> None:
    # given a run that reads small pages and copies slowly (50 ms per destination request)
    with FaultProxy(scene.destination.endpoint_url, delay=0.05) as destination:
        config = scene.config(destination_url=destination.url)
        report_path = scene.tmp_path / "report.json"
        child = subprocess.Popen(
            run_command("--config", str(config), "--report", str(report_path), "--page-size", "5"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: destination.stats.forwarded.get(Operation.PUT, 0) >= 10, child)
        # when the database connection is cut under it
        assert terminate_backends(postgres, scene.db.name) == 1
        _, stderr = child.communicate(timeout=120)
    # then a clear failure (exit 3), the report says so, and what was written is whole
    assert child.returncode == 3, stderr
    assert "lost the database connection" in stderr
    assert "a re-run resumes" in stderr
    assert "Traceback" not in stderr
    first = json.loads(report_path.read_text())
    assert first["interrupted"] is True
    assert "lost the database connection" in first["error"]
    assert 10 <= first["copied"] < len(scene.manifest.objects)
    assert not open_uploads(scene.destination.client(), scene.destination_bucket)
    # and a re-run finishes the job, skipping what was copied
    result, report = run_with_report(scene, scene.config())
    assert result.returncode == 0, result.stderr
    assert report["skipped"] >= first["copied"]
    verdict = scene.verdict(report)
    MATRIX.record(
        "database connection cut, then re-run",
        verdict.counts,
        f"exit 3 after {first['copied']} copied; re-run skipped {report['skipped']}",
    )
    verdict.assert_holds()


def test_copier_killed_mid_object_then_rerun_leaves_no_upload(scene: Scene) -> None:
    # given a run whose part uploads are slow (1 s each)
    slow_parts = [FaultRule(Fault.DELAY, (Operation.UPLOAD_PART,), seconds=1.0)]
    with FaultProxy(scene.destination.endpoint_url, rules=slow_parts) as destination:
        config = scene.config(destination_url=destination.url)
        child = subprocess.Popen(
            run_command("--config", str(config)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(
            lambda: not (destination.stats.forwarded.get(Operation.UPLOAD_PART, 0) < 1), child
        )
        # when it is killed in the middle of multipart uploads
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    orphans = open_uploads(scene.destination.client(), scene.destination_bucket)
    assert orphans, "the kill should have left multipart uploads open"
    # then a re-run copies everything and aborts the uploads the killed run left
    result, report = run_with_report(scene, scene.config())
    assert result.returncode == 0, result.stderr
    verdict = scene.verdict(report)
    MATRIX.record(
        "copier SIGKILLed mid-multipart, then re-run",
        verdict.counts,
        f"{len(orphans)} upload(s) left by the kill, aborted by the re-run",
    )
    verdict.assert_holds()


def delete_row_and_files(scene: Scene, ref: ObjectRef) -> None:
    """What Mastodon does when a post's media is deleted: the row goes, then its files."""
    table = str(ref.record_type)
    scene.db.conn.run(f"DELETE FROM {table} WHERE id = :id", id=ref.record_id)
    client = scene.source.client()
    for key in (ref.key, *ref.alternates):
        client.delete_object(Bucket=scene.source_bucket, Key=key)


def test_rows_deleted_while_their_objects_are_being_copied(scene: Scene) -> None:
    # given two media originals whose source GET is held back, two whose destination PUT is
    originals = [
        ref
        for ref in scene.refs
        if ref.record_type is RecordType.MEDIA_ATTACHMENTS
        and ref.style == "original"
        and scene.manifest.for_ref(ref) is not None
        and (scene.manifest.for_ref(ref) or ref).key == ref.key
        and ref.expected_size != LARGE_SIZE
    ]
    during_get, during_put = originals[:2], originals[2:4]
    held = {ref.key: ref for ref in (*during_get, *during_put)}

    def pattern(refs: list[ObjectRef]) -> str:
        return "^(" + "|".join(re.escape(ref.key) for ref in refs) + ")$"

    hold_get = [
        FaultRule(Fault.DELAY, (Operation.GET,), key_pattern=pattern(during_get), seconds=2)
    ]
    hold_put = [
        FaultRule(Fault.DELAY, (Operation.PUT,), key_pattern=pattern(during_put), seconds=2)
    ]
    deleted: set[str] = set()
    with (
        FaultProxy(scene.source.endpoint_url, rules=hold_get) as source,
        FaultProxy(scene.destination.endpoint_url, rules=hold_put) as destination,
    ):
        config = scene.config(source_url=source.url, destination_url=destination.url)
        report_path = scene.tmp_path / "report.json"
        child = subprocess.Popen(
            run_command("--config", str(config), "--report", str(report_path)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # when each row and its files are deleted while its copy is held up
        deadline = time.monotonic() + 60
        while len(deleted) < len(held) and child.poll() is None:
            assert time.monotonic() < deadline
            for _, _, key in [*source.recent, *destination.recent]:
                if key in held and key not in deleted:
                    delete_row_and_files(scene, held[key])
                    deleted.add(key)
            time.sleep(0.01)
        _, stderr = child.communicate(timeout=120)
    # then each is either copied whole or reported missing; everything else is intact
    assert deleted == set(held)
    report = json.loads(report_path.read_text())
    assert child.returncode == 0, stderr
    missing = {entry["key"] for entry in report["missing_keys"]}
    assert {ref.key for ref in during_get} <= missing
    verdict = scene.verdict(report, may_vanish=frozenset(held))
    MATRIX.record(
        "rows deleted while being copied",
        verdict.counts,
        "2 deleted during GET (missing), 2 during PUT (copied)",
    )
    verdict.assert_holds()
    assert verdict.counts["deleted meanwhile"] == len(held)
