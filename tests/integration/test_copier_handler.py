"""The copier Lambda handler against real S3 and SQS servers (moto) on localhost.

The handler is called as the Lambda runtime would: an SQS event built from
``tests/events`` and a stand-in context. Provider A holds the source bucket (and the
queues), provider B the destination bucket. The last test emulates the SQS event source
mapping (receive, invoke, delete what succeeded) with a dead-letter queue and a redrive.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pytest

import functions.copier.handler as handler_module
from mastodon_s3_sync.demo.media import SeedManifest, create_bucket
from mastodon_s3_sync.demo.s3servers import REGION
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.transport.messages import CopyMessage, decode, encode
from mastodon_s3_sync.transport.sqs import make_sqs_client
from tests.events.factory import (
    FakeLambdaContext,
    canned_event,
    message_ids,
    sqs_event,
    sqs_event_for_bodies,
    sqs_event_from_received,
    sqs_record,
)
from tests.support.copier_lambda import (
    METRICS_NAMESPACE,
    RUN_ID,
    Sides,
    account_rows,
    bodies,
    failed_ids,
    media_rows,
    one_body,
    refs_of,
    seed,
)
from tests.support.invariant import acl_class
from tests.support.lambda_output import Output
from tests.support.s3_servers import BucketNames

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.integration

QUEUE_SETTLE_SECONDS = 20.0
VISIBILITY_TIMEOUT_SECONDS = 1
MAX_RECEIVE_COUNT = 2


def assert_copied(sides: Sides, manifest: SeedManifest, refs: Sequence[ObjectRef]) -> None:
    """Each ref's object is at the destination: same bytes, Content-Type and ACL class."""
    for ref in refs:
        seeded = manifest.for_ref(ref)
        assert seeded is not None, ref.key
        copied = sides.destination.get_object(Bucket=sides.destination_bucket, Key=seeded.key)
        body = copied["Body"].read()
        assert hashlib.md5(body, usedforsecurity=False).hexdigest() == seeded.md5, seeded.key
        assert copied["ContentType"] == seeded.content_type, seeded.key
        assert acl_class(sides.destination, sides.destination_bucket, seeded.key) == seeded.acl


def destination_keys(sides: Sides) -> set[str]:
    """Every key in the destination bucket."""
    listing = sides.destination.list_objects_v2(Bucket=sides.destination_bucket)
    return {item["Key"] for item in listing.get("Contents", [])}


def test_batch_of_two_messages_is_copied(sides: Sides) -> None:
    # given two messages of different types, some objects private
    media = refs_of(RecordType.MEDIA_ATTACHMENTS, media_rows(110_000_000_000_000_001, 3))
    accounts = refs_of(RecordType.ACCOUNTS, account_rows(109_000_000_000_000_001, 2))
    manifest = seed(sides, [*media, *accounts], private=[110_000_000_000_000_002])
    event = sqs_event_for_bodies(
        [one_body(RecordType.MEDIA_ATTACHMENTS, media), one_body(RecordType.ACCOUNTS, accounts)]
    )

    # when
    response = handler_module.handler(event, FakeLambdaContext().as_lambda_context())

    # then
    assert response == {"batchItemFailures": []}
    assert_copied(sides, manifest, [*media, *accounts])
    assert {seeded.acl for seeded in manifest.objects.values()} == {"public-read", "private"}


def test_canned_event_is_copied(sides: Sides) -> None:
    # given the canned batch as Lambda delivers it, and the objects it refers to
    event = canned_event()
    refs = [ref for record in event["Records"] for ref in decode(record["body"]).objects]
    manifest = seed(sides, refs)

    # when
    response = handler_module.handler(event, FakeLambdaContext().as_lambda_context())

    # then
    assert response == {"batchItemFailures": []}
    assert_copied(sides, manifest, refs)


def test_message_with_an_uncopyable_object_is_reported_alone(sides: Sides, output: Output) -> None:
    # given a message whose objects copy, and one with an object in an archive storage
    # class (GetObject: 403 InvalidObjectState, not retried) beside one that copies
    good = refs_of(RecordType.MEDIA_ATTACHMENTS, media_rows(110_000_000_000_000_101, 2))
    (archived, sibling) = refs_of(RecordType.MEDIA_ATTACHMENTS, media_rows(1_201, 1))
    manifest = seed(sides, [*good, sibling])
    sides.source.put_object(
        Bucket=sides.source_bucket,
        Key=archived.key,
        Body=b"\x89PNG\r\n\x1a\n frozen",
        ContentType="image/png",
        StorageClass="GLACIER",
    )
    good_record = sqs_record(one_body(RecordType.MEDIA_ATTACHMENTS, good))
    bad_record = sqs_record(one_body(RecordType.MEDIA_ATTACHMENTS, [archived, sibling]))

    # when
    response = handler_module.handler(
        sqs_event([good_record, bad_record]), FakeLambdaContext().as_lambda_context()
    )

    # then
    assert response == {"batchItemFailures": [{"itemIdentifier": bad_record["messageId"]}]}
    assert_copied(sides, manifest, [*good, sibling])
    assert archived.key not in destination_keys(sides)
    (failed,) = output.logs("message failed")
    assert failed["message_id"] == bad_record["messageId"]
    assert "1 failed" in failed["reason"]
    assert "InvalidObjectState" in failed["reason"]
    (warning,) = output.logs("object failed")
    assert warning["key"] == archived.key

    # when the object is restored and the failed message delivered again
    sides.source.restore_object(
        Bucket=sides.source_bucket, Key=archived.key, RestoreRequest={"Days": 1}
    )
    retry = sqs_record(bad_record["body"], message_id=bad_record["messageId"], receive_count=2)
    response = handler_module.handler(sqs_event([retry]), FakeLambdaContext().as_lambda_context())

    # then only the object that failed is copied; the sibling is skipped
    assert response == {"batchItemFailures": []}
    assert archived.key in destination_keys(sides)
    assert [doc["ObjectsCopied"] for doc in output.metrics("ObjectsCopied")][-1] == [1.0]
    assert [doc["ObjectsSkipped"] for doc in output.metrics("ObjectsSkipped")] == [[1.0]]


POISON_BODIES = {
    "not JSON": ("copy accounts/avatars/000/000/001 please", "not JSON"),
    "wrong version": (
        json.dumps({"version": 2, "run_id": RUN_ID, "type": "accounts", "objects": []}),
        "unsupported message version 2",
    ),
    "dot-dot key": (
        encode(
            CopyMessage(
                RUN_ID,
                RecordType.ACCOUNTS,
                (
                    ObjectRef(
                        RecordType.ACCOUNTS,
                        1,
                        "avatar",
                        "original",
                        "accounts/avatars/../../secrets/original/x.jpg",
                    ),
                ),
            )
        ),
        "is not a storage key",
    ),
}


@pytest.mark.parametrize("kind", sorted(POISON_BODIES))
def test_poison_message_fails_alone_and_is_logged(sides: Sides, output: Output, kind: str) -> None:
    # given a good message before and after a poison one
    refs = refs_of(RecordType.ACCOUNTS, account_rows(109_000_000_000_000_301, 2))
    manifest = seed(sides, refs)
    poison_body, reason = POISON_BODIES[kind]
    first, poison, last = (
        sqs_record(one_body(RecordType.ACCOUNTS, refs[:1])),
        sqs_record(poison_body),
        sqs_record(one_body(RecordType.ACCOUNTS, refs[1:])),
    )

    # when
    response = handler_module.handler(
        sqs_event([first, poison, last]), FakeLambdaContext().as_lambda_context()
    )

    # then
    assert response == {"batchItemFailures": [{"itemIdentifier": poison["messageId"]}]}
    assert_copied(sides, manifest, refs)
    (logged,) = output.logs("undecodable message")
    assert logged["message_id"] == poison["messageId"]
    assert reason in logged["reason"]


def test_undecodable_message_is_not_logged_under_the_previous_message(
    sides: Sides, output: Output
) -> None:
    # given a good message, then an undecodable one, in one batch
    refs = refs_of(RecordType.ACCOUNTS, account_rows(109_000_000_000_000_351, 1))
    seed(sides, refs)
    good, poison = sqs_record(one_body(RecordType.ACCOUNTS, refs)), sqs_record("{}")

    # when
    failed = failed_ids(sqs_event([good, poison]), FakeLambdaContext())

    # then the poison's log line names no run or type (it has none)
    assert failed == [poison["messageId"]]
    (logged,) = output.logs("undecodable message")
    assert logged["message_id"] == poison["messageId"]
    assert {key: logged[key] for key in ("run_id", "type") if key in logged} == {}


def test_no_object_starts_within_the_time_guard(
    sides: Sides, output: Output, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an invocation with less time left than the guard
    monkeypatch.setenv("MSS_TIME_GUARD_SECONDS", "30")
    refs = refs_of(RecordType.MEDIA_ATTACHMENTS, media_rows(110_000_000_000_000_401, 2))
    seed(sides, refs)
    event = sqs_event_for_bodies([one_body(RecordType.MEDIA_ATTACHMENTS, refs)])

    # when
    failed = failed_ids(event, FakeLambdaContext.with_remaining(29))

    # then
    assert failed == message_ids(event)
    assert destination_keys(sides) == set()
    (logged,) = output.logs("message failed")
    assert f"{len(refs)} not started before the time guard" in logged["reason"]


def test_metrics_count_copied_objects_per_type(sides: Sides, output: Output) -> None:
    # given
    refs = refs_of(RecordType.MEDIA_ATTACHMENTS, media_rows(110_000_000_000_000_501, 2))
    seed(sides, refs)
    event = sqs_event_for_bodies([one_body(RecordType.MEDIA_ATTACHMENTS, refs)])

    # when
    assert failed_ids(event, FakeLambdaContext()) == []

    # then
    (document,) = output.metrics("ObjectsCopied")
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRICS_NAMESPACE
    assert any("Type" in dimensions for dimensions in directive["Dimensions"])
    assert document["Type"] == "media_attachments"
    value = document["ObjectsCopied"]
    assert (value if isinstance(value, list) else [value]) == [len(refs)]


@pytest.mark.parametrize(
    ("acl", "private_objects"), [("none", None), ("none", "copy"), ("copy", None)]
)
def test_private_objects_in_the_copier_lambda(
    sides: Sides,
    output: Output,
    monkeypatch: pytest.MonkeyPatch,
    acl: str,
    private_objects: str | None,
) -> None:
    # given a message whose first media row the database marks private (a suspended
    # account's), all of it public at the source
    refs = refs_of(RecordType.MEDIA_ATTACHMENTS, media_rows(110_000_000_000_000_601, 2))
    refs = [replace(ref, private=ref.record_id == refs[0].record_id) for ref in refs]
    private = {ref.key for ref in refs if ref.private}
    seed(sides, refs)
    monkeypatch.setenv("MSS_ACL", acl)
    if private_objects is not None:
        monkeypatch.setenv("MSS_PRIVATE_OBJECTS", private_objects)
    event = sqs_event_for_bodies([one_body(RecordType.MEDIA_ATTACHMENTS, refs)])

    # when
    assert failed_ids(event, FakeLambdaContext()) == []

    # then with no ACLs kept they are withheld (logged, counted), unless told to copy them;
    # with each object's ACL they are written private and logged as leaking at the source
    copied = destination_keys(sides)
    withheld = {line["key"] for line in output.logs("object withheld")}
    leaking = {line["key"] for line in output.logs("object written private, public at the source")}
    if acl == "none" and private_objects is None:
        assert (copied, withheld, leaking) == ({r.key for r in refs} - private, private, set())
        (document,) = output.metrics("ObjectsWithheld")
        value = document["ObjectsWithheld"]
        assert (value if isinstance(value, list) else [value]) == [len(private)]
    elif acl == "none":
        assert (copied, withheld, leaking) == ({r.key for r in refs}, set(), set())
    else:
        assert (copied, withheld, leaking) == ({r.key for r in refs}, set(), private)
        for key in private:
            assert acl_class(sides.destination, sides.destination_bucket, key) == "private"


@dataclass
class Queues:
    """A work queue that dead-letters after :data:`MAX_RECEIVE_COUNT` receives."""

    sqs: SQSClient
    url: str
    arn: str
    dlq_url: str


@pytest.fixture
def queues(sides: Sides, fresh_bucket_name: BucketNames) -> Iterator[Queues]:
    """The queue and its dead-letter queue, on provider A."""
    sqs = make_sqs_client(sides.provider_a.endpoint_url, REGION)
    name = fresh_bucket_name()
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = queue_arn(sqs, dlq_url)
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            ),
        },
    )["QueueUrl"]
    yield Queues(sqs, url, queue_arn(sqs, url), dlq_url)
    sqs.delete_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=dlq_url)


def queue_arn(sqs: SQSClient, url: str) -> str:
    """The ARN of the queue at ``url``."""
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def message_counts(sqs: SQSClient, url: str) -> tuple[int, int]:
    """Messages visible and in flight."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def run_event_source(queues: Queues) -> dict[str, int]:
    """Emulate the event source mapping until the queue is empty; receives per body.

    Receive up to 10, invoke the handler with them, delete those not reported failed;
    failed ones come back after the visibility timeout, or go to the dead-letter queue.
    """
    receives: dict[str, int] = {}
    deadline = time.monotonic() + QUEUE_SETTLE_SECONDS
    while True:
        assert time.monotonic() < deadline, "the queue did not settle"
        received = queues.sqs.receive_message(
            QueueUrl=queues.url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        if not received:
            if message_counts(queues.sqs, queues.url) == (0, 0):
                return receives
            time.sleep(VISIBILITY_TIMEOUT_SECONDS + 0.1)
            continue
        event = sqs_event_from_received(received, queues.arn)
        failed = set(failed_ids(event, FakeLambdaContext()))
        for record in event["Records"]:
            receives[record["body"]] = int(record["attributes"]["ApproximateReceiveCount"])
        done = [message for message in received if message["MessageId"] not in failed]
        if done:
            queues.sqs.delete_message_batch(
                QueueUrl=queues.url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
                    for n, message in enumerate(done)
                ],
            )


def redrive(queues: Queues) -> int:
    """Move every dead-lettered message back to the queue (moto has no message move task)."""
    moved = 0
    while True:
        received = queues.sqs.receive_message(QueueUrl=queues.dlq_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not received:
            return moved
        queues.sqs.send_message_batch(
            QueueUrl=queues.url,
            Entries=[
                {"Id": str(n), "MessageBody": message["Body"]} for n, message in enumerate(received)
            ],
        )
        queues.sqs.delete_message_batch(
            QueueUrl=queues.dlq_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
                for n, message in enumerate(received)
            ],
        )
        moved += len(received)


def test_failed_messages_dead_letter_then_redrive_completes(
    sides: Sides,
    queues: Queues,
    fresh_bucket_name: BucketNames,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given messages on the queue, and a destination bucket that does not exist yet
    media = refs_of(RecordType.MEDIA_ATTACHMENTS, media_rows(110_000_000_000_000_601, 3))
    accounts = refs_of(RecordType.ACCOUNTS, account_rows(109_000_000_000_000_601, 3))
    manifest = seed(sides, [*media, *accounts])
    sent = [
        *bodies(RecordType.MEDIA_ATTACHMENTS, media[:3]),
        *bodies(RecordType.MEDIA_ATTACHMENTS, media[3:]),
        *bodies(RecordType.ACCOUNTS, accounts),
    ]
    missing_bucket = fresh_bucket_name()
    monkeypatch.setenv("MSS_DESTINATION_BUCKET", missing_bucket)
    queues.sqs.send_message_batch(
        QueueUrl=queues.url,
        Entries=[{"Id": str(n), "MessageBody": body} for n, body in enumerate(sent)],
    )

    # when every delivery fails (NoSuchBucket)
    receives = run_event_source(queues)

    # then each message was tried maxReceiveCount times and dead-lettered
    assert receives == dict.fromkeys(sent, MAX_RECEIVE_COUNT)
    assert message_counts(queues.sqs, queues.url) == (0, 0)
    assert message_counts(queues.sqs, queues.dlq_url) == (len(sent), 0)

    # when the bucket exists and the dead letters are redriven
    create_bucket(sides.destination, missing_bucket)
    assert redrive(queues) == len(sent)
    receives = run_event_source(queues)

    # then everything is copied once and both queues are empty
    assert receives == dict.fromkeys(sent, 1)
    assert message_counts(queues.sqs, queues.url) == (0, 0)
    assert message_counts(queues.sqs, queues.dlq_url) == (0, 0)
    redriven = replace(sides, destination_bucket=missing_bucket)
    assert_copied(redriven, manifest, [*media, *accounts])
    assert destination_keys(redriven) == set(manifest.objects)
