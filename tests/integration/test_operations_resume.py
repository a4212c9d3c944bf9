"""A failed or stalled enumeration: ``status`` shows where it stopped, ``start --resume``
goes on from there.

moto serves CloudFormation (a stand-in stack with the failed-events queue and its outputs),
SQS and CloudWatch. moto's Lambda does not run asynchronous invocations to an on-failure
destination, so the queue's records are canned, shaped as Lambda writes them (the "Invocation
record" of the AWS Lambda developer guide); the event inside is one the enumerator really
sends. The re-invocations go to :class:`LambdaService`, which records each payload.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from mastodon_s3_sync.cli import main
from mastodon_s3_sync.contract import METRICS_NAMESPACE
from mastodon_s3_sync.demo.s3servers import REGION, MotoS3Server
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.ops.failed_events import resume_failed_events
from mastodon_s3_sync.ops.stack import AwsClients, find_stack
from mastodon_s3_sync.ops.status import STALL_AFTER, read_status
from mastodon_s3_sync.transport import lambda_metrics
from mastodon_s3_sync.transport.enumeration import Cursor
from mastodon_s3_sync.transport.lambda_edge import continuation_event, parse_enumerator_event
from tests.support.lambda_output import Output
from tests.support.lambda_service import LambdaService
from tests.support.stack_fixture import AWS_ENV, Deployed, ingest, template

pytestmark = pytest.mark.integration

RUN_ID = "20261127T061500Z-3f9a1c"


def with_failed_events_queue() -> str:
    """The stand-in stack, plus the failed-events queue and its two outputs."""
    document = json.loads(template())
    document["Resources"]["FailedEventsQueue"] = {"Type": "AWS::SQS::Queue"}
    document["Outputs"]["FailedEventsQueueUrl"] = {"Value": {"Ref": "FailedEventsQueue"}}
    document["Outputs"]["FailedEventsQueueArn"] = {
        "Value": {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}
    }
    return json.dumps(document)


@pytest.fixture
def deployed(
    moto_servers: tuple[MotoS3Server, MotoS3Server], clients: AwsClients
) -> Iterator[Deployed]:
    """A stack of this test's own, with a failed-events queue."""
    name = f"Ops-{uuid.uuid4().hex[:10]}"
    clients.cloudformation.create_stack(StackName=name, TemplateBody=with_failed_events_queue())
    yield Deployed(moto_servers[0], clients, find_stack(clients.cloudformation, name))
    clients.cloudformation.delete_stack(StackName=name)


def failed_event(after_id: int) -> dict[str, Any]:
    """A continuation event of media_attachments, as the enumerator invokes itself with."""
    request = parse_enumerator_event(
        {"type": "media_attachments", "run_id": RUN_ID}, datetime.now(UTC)
    )
    cursor = Cursor((RecordType.MEDIA_ATTACHMENTS,), after_id, None, None)
    return continuation_event(request, cursor)


def destination_record(event: Any, error: str = "database: connection refused") -> str:
    """What Lambda sends to an on-failure destination when the retries are spent."""
    return json.dumps(
        {
            "version": "1.0",
            "timestamp": "2026-11-27T07:01:12.345Z",
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:E:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3,
            },
            "requestPayload": event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {"errorMessage": error, "errorType": "DatabaseError"},
        }
    )


def test_status_shows_the_failed_event_its_cursor_and_the_resume_command(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # given an enumeration whose retries are spent
    queue = deployed.stack.failed_events_queue_url
    assert queue is not None
    deployed.clients.sqs.send_message(
        QueueUrl=queue, MessageBody=destination_record(failed_event(109348221534720133))
    )
    # when
    assert main(deployed.cli("status", "--run-id", RUN_ID)) == 0
    # then
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3:] == [
        "failed-events queue: 1 events: an enumeration stopped at",
        f"  run {RUN_ID}, media_attachments after id 109348221534720133: "
        "database: connection refused",
        f"resume it: mastodon-s3-sync start --resume --stack {deployed.stack.stack_name}",
    ]
    # and looking did not hide it
    (depth,) = [
        deployed.clients.sqs.get_queue_attributes(
            QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
    ]
    assert depth == "1"


def test_resume_invokes_the_enumerator_from_each_cursor_and_deletes_only_what_it_sent(
    deployed: Deployed,
) -> None:
    # given two failed enumerations and a record whose event the enumerator would refuse
    queue = deployed.stack.failed_events_queue_url
    assert queue is not None
    sqs = deployed.clients.sqs
    events = [failed_event(1_000), failed_event(2_000)]
    for event in events:
        sqs.send_message(QueueUrl=queue, MessageBody=destination_record(event))
    sqs.send_message(QueueUrl=queue, MessageBody=destination_record({"type": "statuses"}))
    with LambdaService() as service:
        lambda_ = boto3.client(
            "lambda",
            endpoint_url=service.endpoint_url,
            region_name=REGION,
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        # when
        done = resume_failed_events(lambda_, sqs, deployed.stack, datetime.now(UTC))
    # then each is invoked again, asynchronously, from where it stopped
    assert [(i.function_name, i.invocation_type) for i in service.invocations] == [
        (deployed.stack.enumerator_function, "Event")
    ] * 2
    payloads = sorted(service.invocations, key=lambda i: int(i.payload["after_id"]))
    assert [i.payload for i in payloads] == events
    assert all(i.payload["async"] is True for i in payloads)
    assert len(done.resumed) == 2
    # and the refused record stays in the queue (hidden while resume ran), with its reason
    ((_, reason),) = done.refused
    assert "unknown type 'statuses'" in reason
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert (
        attributes["ApproximateNumberOfMessages"],
        attributes["ApproximateNumberOfMessagesNotVisible"],
    ) == ("0", "1")


def test_resume_command_prints_what_it_resumed(
    deployed_with_function: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a stack with the failed-events queue in the docker-free moto (invoke answers 202)
    deployed = deployed_with_function
    clients = deployed.clients
    name = f"Ops-{uuid.uuid4().hex[:10]}"
    clients.cloudformation.create_stack(StackName=name, TemplateBody=with_failed_events_queue())
    stack = find_stack(clients.cloudformation, name)
    assert stack.failed_events_queue_url is not None
    clients.sqs.send_message(
        QueueUrl=stack.failed_events_queue_url, MessageBody=destination_record(failed_event(7))
    )
    args = deployed.cli("start", "--resume")
    args[args.index(deployed.stack.stack_name)] = name
    try:
        # when
        code = main(args)
        again = main(args)
    finally:
        clients.cloudformation.delete_stack(StackName=name)
    # then
    out = capsys.readouterr().out.splitlines()
    assert code == again == 0
    assert out == [
        f"resumed: run {RUN_ID}, media_attachments after id 7",
        f"follow it: mastodon-s3-sync status --run-id {RUN_ID} --stack {name} --watch",
        "nothing to resume: the failed-events queue is empty",
    ]


def test_resume_takes_no_types_and_needs_the_queue(
    deployed: Deployed, deployed_without_queue: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(deployed.cli("start", "all", "--resume", "--dry-run")) == 2
    assert capsys.readouterr().err == (
        "mastodon-s3-sync: error: start --resume: takes no all or --dry-run: each failed "
        "event says what to enumerate\n"
    )
    with pytest.raises(SettingsError, match="has no failed-events queue"):
        resume_failed_events(
            deployed.clients.lambda_,
            deployed.clients.sqs,
            deployed_without_queue.stack,
            datetime.now(UTC),
        )


@pytest.fixture
def deployed_without_queue(
    moto_servers: tuple[MotoS3Server, MotoS3Server], clients: AwsClients
) -> Iterator[Deployed]:
    """A stack deployed by an earlier version: no failed-events queue."""
    name = f"Ops-{uuid.uuid4().hex[:10]}"
    clients.cloudformation.create_stack(StackName=name, TemplateBody=template())
    yield Deployed(moto_servers[0], clients, find_stack(clients.cloudformation, name))
    clients.cloudformation.delete_stack(StackName=name)


def emitted(output: Output) -> list[dict[str, Any]]:
    """The EMF documents printed since the last call."""
    documents = [document for document in output.read() if "_aws" in document]
    output.documents.clear()
    return documents


def test_status_shows_an_enumeration_that_stopped_without_a_trace(
    deployed: Deployed,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a run begun an hour ago: two enumerations begun, one finished, the other's
    # last invocation 40 minutes ago and nothing since (no failed event either)
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    run_id = f"{now - timedelta(hours=1):%Y%m%dT%H%M%SZ}-5ta11d"
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", deployed.stack.stack_name)
    output = Output(capsys)
    cloudwatch = deployed.clients.cloudwatch
    lambda_metrics.emit_chain(RecordType.ACCOUNTS, started=True, finished=True)
    lambda_metrics.emit_chain(RecordType.MEDIA_ATTACHMENTS, started=True, finished=False)
    ingest(cloudwatch, emitted(output), now - timedelta(minutes=50))
    lambda_metrics.emit_enumerated(RecordType.MEDIA_ATTACHMENTS, 500)
    ingest(cloudwatch, emitted(output), now - timedelta(minutes=40))
    clients = deployed.clients
    # when
    snapshot = read_status(clients.cloudwatch, clients.sqs, deployed.stack, run_id, now)
    # then
    assert (snapshot.enumeration.unfinished, snapshot.enumeration.stalled) == (1, True)
    assert timedelta(minutes=40) > STALL_AFTER
    # and while it still moves, it is no stall
    lambda_metrics.emit_enumerated(RecordType.MEDIA_ATTACHMENTS, 500)
    ingest(cloudwatch, emitted(output), now - timedelta(minutes=5))
    moving = read_status(clients.cloudwatch, clients.sqs, deployed.stack, run_id, now)
    assert (moving.enumeration.unfinished, moving.enumeration.stalled) == (1, False)
