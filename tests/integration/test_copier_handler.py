"""The copier Lambda handler against real S3 and SQS servers (moto) on localhost.

The handler is called as the Lambda runtime would: an SQS event built from
``tests/events`` and a stand-in context. Provider A holds the source bucket (and the
queues), provider B the destination bucket. The last test emulates the SQS event source
mapping (receive, invoke, delete what succeeded) with a dead-letter queue and a redrive.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

import functions.copier.handler as handler_module
from mastodon_s3_sync.demo.media import SeedManifest, create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import REGION, MotoS3Server
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType, Row, objects_for_row
from mastodon_s3_sync.transport.messages import CopyMessage, MessagePacker, decode, encode
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
from tests.integration.conftest import BucketNames

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.integration

RUN_ID = "20261127T061500Z-c0ffee"
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
METRICS_NAMESPACE = "MastodonS3SyncTest"
QUEUE_SETTLE_SECONDS = 20.0
VISIBILITY_TIMEOUT_SECONDS = 1
MAX_RECEIVE_COUNT = 2


@dataclass(frozen=True)
class Sides:
    """The source bucket on provider A and the destination bucket on provider B."""

    source: S3Client
    destination: S3Client
    source_bucket: str
    destination_bucket: str
    provider_a: MotoS3Server


@pytest.fixture
def sides(
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Sides]:
    """Fresh buckets, the function's environment, and a fresh container (no cached copier)."""
    provider_a, provider_b = moto_servers
    source, destination = provider_a.client(), provider_b.client()
    source_bucket, destination_bucket = fresh_bucket_name(), fresh_bucket_name()
    create_bucket(source, source_bucket)
    create_bucket(destination, destination_bucket)
    for side, server, bucket in (
        ("SOURCE", provider_a, source_bucket),
        ("DESTINATION", provider_b, destination_bucket),
    ):
        monkeypatch.setenv(f"MSS_{side}_BUCKET", bucket)
        monkeypatch.setenv(f"MSS_{side}_ENDPOINT_URL", server.endpoint_url)
        monkeypatch.setenv(f"MSS_{side}_REGION", REGION)
        monkeypatch.setenv(f"MSS_{side}_ADDRESSING_STYLE", "path")
    monkeypatch.setenv("MSS_COPIER_THREADS", "4")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "copier")
    handler_module.runtime.cache_clear()
    yield Sides(source, destination, source_bucket, destination_bucket, provider_a)
    if handler_module.runtime.cache_info().currsize:
        _copier, pool = handler_module.runtime()
        pool.shutdown(wait=True)
    handler_module.runtime.cache_clear()


class Output:
    """The JSON documents (log entries, EMF metrics) the handler printed during a test."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self.documents: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """All documents printed so far in this test."""
        for line in self._capsys.readouterr().out.splitlines():
            try:
                document = json.loads(line)
            except ValueError:
                continue
            if isinstance(document, dict):
                self.documents.append(document)
        return self.documents

    def logs(self, message: str) -> list[dict[str, Any]]:
        """Log entries whose message is ``message``."""
        return [doc for doc in self.read() if doc.get("message") == message]

    def metrics(self, name: str) -> list[dict[str, Any]]:
        """EMF documents carrying metric ``name``."""
        return [
            doc
            for doc in self.read()
            if "_aws" in doc
            and any(
                metric["Name"] == name
                for directive in doc["_aws"]["CloudWatchMetrics"]
                for metric in directive["Metrics"]
            )
        ]


class CurrentStdout:
    """A stream that writes to whatever ``sys.stdout`` is at the time, as Lambda's is."""

    def write(self, text: str) -> int:
        """Write ``text`` to the current stdout."""
        return sys.stdout.write(text)

    def flush(self) -> None:
        """Flush the current stdout."""
        sys.stdout.flush()


@pytest.fixture
def output(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Output:
    """What the handler prints: Powertools log lines and EMF metric documents (JSON)."""
    # The logger kept the sys.stdout of the handler module's import (at collection);
    # capture replaces sys.stdout per test phase, so write to whichever is current.
    monkeypatch.setattr(handler_module.logger.registered_handler, "stream", CurrentStdout())
    return Output(capsys)


def media_rows(first_id: int, count: int) -> list[Row]:
    """Local PNG media attachments: an original and a small each."""
    return [
        {
            "id": first_id + n,
            "file_file_name": f"{first_id + n:016x}.png",
            "file_content_type": "image/png",
            "file_file_size": 4096,
            "remote_url": None,
        }
        for n in range(count)
    ]


def account_rows(first_id: int, count: int) -> list[Row]:
    """Local accounts with a JPEG avatar."""
    return [
        {
            "id": first_id + n,
            "avatar_file_name": f"{first_id + n:016x}.jpg",
            "avatar_content_type": "image/jpeg",
            "avatar_file_size": 2048,
            "domain": None,
        }
        for n in range(count)
    ]


def refs_of(record_type: RecordType, rows: Sequence[Row]) -> list[ObjectRef]:
    """Every object of ``rows``."""
    return [ref for row in rows for ref in objects_for_row(record_type, row)]


def bodies(record_type: RecordType, refs: Sequence[ObjectRef]) -> list[str]:
    """The message bodies the enumerator would send for ``refs``."""
    packer = MessagePacker(RUN_ID, record_type)
    packed = [body for body in map(packer.add, refs) if body is not None]
    last = packer.flush()
    return [*packed, last] if last is not None else packed


def one_body(record_type: RecordType, refs: Sequence[ObjectRef]) -> str:
    """The single message body for ``refs`` (few enough to fit in one)."""
    (body,) = bodies(record_type, refs)
    return body


def seed(sides: Sides, refs: Sequence[ObjectRef], private: Sequence[int] = ()) -> SeedManifest:
    """Write ``refs`` to the source bucket, as Mastodon would have."""
    return seed_bucket(sides.source, sides.source_bucket, refs, private_record_ids=private)


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


def acl_class(client: S3Client, bucket: str, key: str) -> str:
    """``public-read`` when everyone may read the object, else ``private``."""
    grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    public = any(
        grant.get("Grantee", {}).get("URI") == ALL_USERS
        and grant.get("Permission") in ("READ", "FULL_CONTROL")
        for grant in grants
    )
    return "public-read" if public else "private"


def destination_keys(sides: Sides) -> set[str]:
    """Every key in the destination bucket."""
    listing = sides.destination.list_objects_v2(Bucket=sides.destination_bucket)
    return {item["Key"] for item in listing.get("Contents", [])}


def failed_ids(event: dict[str, Any], context: FakeLambdaContext) -> list[str]:
    """Invoke the handler; the ids Lambda returns to the queue.

    Those listed in ``batchItemFailures``, or all of them when the handler raised because
    every record failed (Powertools' ``BatchProcessingError``: Lambda retries the batch).
    """
    try:
        response = handler_module.handler(event, context.as_lambda_context())
    except BatchProcessingError:
        return message_ids(event)
    identifiers = [failure["itemIdentifier"] for failure in response["batchItemFailures"]]
    assert all(isinstance(identifier, str) for identifier in identifiers)
    return [str(identifier) for identifier in identifiers]


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
