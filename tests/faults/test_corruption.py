"""Bodies changed in flight: refused by the destination, retried, never stored.

The copier sends the source's ETag (its MD5) as Content-MD5 without hashing the body, so a
byte changed on either leg — in the source's answer or in the upload — makes the
destination answer ``BadDigest``. A :class:`FaultProxy` flips one byte of a share of the
bodies. The destination is ``rclone serve s3``, which checks Content-MD5 as S3 does
(moto_server does not); it keeps no ACLs, so these copies use ``acl = none``. Every object
must end intact, and no corrupt object may ever have been stored (the copier deletes a
write whose ETag is wrong: no DeleteObject may have been needed).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

import functions.copier.handler as handler_module
from mastodon_s3_sync.config.settings import AclMode
from mastodon_s3_sync.demo.media import create_bucket
from mastodon_s3_sync.demo.s3servers import MotoS3Server, RcloneS3Server
from mastodon_s3_sync.mastodon.layout import RecordType
from tests.events.factory import FakeLambdaContext, sqs_event_for_bodies
from tests.faults.test_scenarios import MULTIPART, MakeDb, Scene, run_with_report, seed_scene
from tests.support.copier_lambda import Sides, bodies, media_rows, refs_of, seed
from tests.support.faultproxy import Fault, FaultProxy, FaultRule, Operation
from tests.support.invariant import MATRIX
from tests.support.s3_servers import BucketNames

pytestmark = pytest.mark.faults

SMALL = {"accounts": 12, "media_attachments": 30, "custom_emojis": 4, "preview_cards": 8}
NO_ACLS = replace(MULTIPART, acl=AclMode.NONE)

PREFLIGHT_DELETES = 1
"""``run``'s preflight writes one probe object to the destination and deletes it."""


def corrupting(operation: Operation, rate: float) -> list[FaultRule]:
    return [FaultRule(Fault.CORRUPT_BODY, (operation,), rate=rate)]


@pytest.fixture
def scene(
    mastodon_db: MakeDb,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> Scene:
    servers = (moto_servers[0], rclone_servers[1])
    return seed_scene(mastodon_db, servers, fresh_bucket_name, tmp_path, counts=SMALL)


@pytest.mark.parametrize(
    ("side", "operation"),
    [("source", Operation.GET), ("destination", Operation.PUT)],
    ids=["changed-in-the-download", "changed-in-the-upload"],
)
def test_run_refuses_a_body_changed_in_flight_and_copies_it_again(
    scene: Scene, side: str, operation: Operation
) -> None:
    # given one leg changing a byte in an eighth of its bodies
    with (
        FaultProxy(scene.source.endpoint_url) as source,
        FaultProxy(scene.destination.endpoint_url) as destination,
    ):
        faulty = source if side == "source" else destination
        faulty.set_rules(corrupting(operation, 0.12))
        config = scene.config(source_url=source.url, destination_url=destination.url, copy=NO_ACLS)
        # when
        result, report = run_with_report(scene, config)
        changed = faulty.stats.total_injected
        written = destination.stats.forwarded
    # then every changed body was refused and copied again: all intact, none stored corrupt
    verdict = scene.verdict(report, check_acl=False)
    MATRIX.record(f"1/8 of the bodies changed ({side})", verdict.counts, f"{changed} changed")
    verdict.assert_holds()
    assert changed >= 6
    assert report["failed"] == 0, report["failed_keys"]
    assert written.get(Operation.PUT, 0) >= len(scene.manifest.objects) + changed
    # refused up front, never stored then removed
    assert written.get(Operation.DELETE, 0) == PREFLIGHT_DELETES
    assert result.returncode == 0, result.stderr


def test_run_fails_an_object_whose_every_download_is_changed_and_stores_nothing(
    scene: Scene,
) -> None:
    # given every GET of one object answered with a changed body
    victim = next(seeded for seeded in scene.manifest.objects.values() if seeded.size > 0)
    rule = FaultRule(Fault.CORRUPT_BODY, (Operation.GET,), key_pattern=f"^{victim.key}$")
    with (
        FaultProxy(scene.source.endpoint_url, rules=[rule]) as source,
        FaultProxy(scene.destination.endpoint_url) as destination,
    ):
        config = scene.config(source_url=source.url, destination_url=destination.url, copy=NO_ACLS)
        # when
        _, report = run_with_report(scene, config)
        deletes = destination.stats.forwarded.get(Operation.DELETE, 0)
    # then it failed, saying why; the destination refused each attempt and holds nothing
    reasons = {entry["key"]: entry["reason"] for entry in report["failed_keys"]}
    assert "differs from ETag" in reasons[victim.key], reasons
    assert "after 3 attempts" in reasons[victim.key]
    assert deletes == PREFLIGHT_DELETES
    listing = scene.destination.client().list_objects_v2(
        Bucket=scene.destination_bucket, Prefix=victim.key
    )
    assert listing.get("KeyCount", 0) == 0


def test_copier_lambda_refuses_changed_bodies_and_copies_them_again(
    sides: Sides,
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server],
    fresh_bucket_name: BucketNames,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a destination on rclone, and both legs changing a byte in a sixth of the bodies
    rclone = rclone_servers[1]
    bucket = fresh_bucket_name()
    create_bucket(rclone.client(), bucket)
    refs = refs_of(RecordType.MEDIA_ATTACHMENTS, media_rows(111_000_000_000_000_001, 12))
    manifest = seed(sides, refs)
    with (
        FaultProxy(
            sides.provider_a.endpoint_url, rules=corrupting(Operation.GET, 0.15), seed=4
        ) as source,
        FaultProxy(
            rclone.endpoint_url, rules=corrupting(Operation.PUT, 0.15), seed=5
        ) as destination,
    ):
        monkeypatch.setenv("MSS_SOURCE_ENDPOINT_URL", source.url)
        monkeypatch.setenv("MSS_DESTINATION_ENDPOINT_URL", destination.url)
        monkeypatch.setenv("MSS_DESTINATION_BUCKET", bucket)
        # moto_server takes any key pair; rclone only its own
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", rclone.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rclone.secret_access_key)
        monkeypatch.setenv("MSS_ACL", "none")
        event = sqs_event_for_bodies(bodies(RecordType.MEDIA_ATTACHMENTS, refs))
        # when
        response = handler_module.handler(event, FakeLambdaContext().as_lambda_context())
        changed = source.stats.total_injected + destination.stats.total_injected
        deletes = destination.stats.forwarded.get(Operation.DELETE, 0)
    # then
    assert response == {"batchItemFailures": []}
    assert source.stats.total_injected >= 2
    assert destination.stats.total_injected >= 2, changed
    assert deletes == 0
    destination_client = rclone.client()
    for ref in refs:
        seeded = manifest.for_ref(ref)
        assert seeded is not None
        got = destination_client.get_object(Bucket=bucket, Key=seeded.key)
        body = got["Body"].read()
        assert hashlib.md5(body, usedforsecurity=False).hexdigest() == seeded.md5, seeded.key
