"""The enumerator Lambda handler against a real PostgreSQL and a real SQS (moto_server)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest

import functions.enumerator.handler as handler_module
from mastodon_s3_sync.contract import RUN_STARTED_MESSAGE
from mastodon_s3_sync.demo.s3servers import MotoS3Server
from mastodon_s3_sync.demo.schema import SchemaVersion
from mastodon_s3_sync.demo.seed import seed_database
from mastodon_s3_sync.errors import DatabaseError
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.ops.runs import LATEST_RUN_QUERY, run_start
from mastodon_s3_sync.transport.messages import decode
from tests.events.factory import FakeLambdaContext
from tests.support.lambda_output import CurrentStdout, Output
from tests.support.lambda_service import LambdaService
from tests.support.mastodon_db import MastodonDb, expected_keys, insert_unsafe_media
from tests.support.s3_servers import BucketNames

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

pytestmark = pytest.mark.integration

MakeDb = Callable[..., MastodonDb]
COUNTS = {"accounts": 60, "media_attachments": 150, "custom_emojis": 15, "preview_cards": 40}


class CountdownContext(FakeLambdaContext):
    """An invocation whose time runs out after a given number of clock readings."""

    def __init__(self, readings: int) -> None:
        super().__init__(invoked_function_arn="arn:aws:lambda:us-east-1:1:function:enumerator")
        self.readings = readings

    def get_remaining_time_in_millis(self) -> int:
        self.readings -= 1
        return 900_000 if self.readings > 0 else 1_000


@dataclass
class Setup:
    db: MastodonDb
    sqs: SQSClient
    queue_url: str
    lambda_service: LambdaService


@pytest.fixture
def setup(
    mastodon_db: MakeDb,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Setup]:
    """A seeded database, a queue on moto_server, the function's environment (its clients
    reach both services through the SDK's endpoint variables), a fresh container."""
    db = mastodon_db()
    seed_database(db.conn, SchemaVersion.CURRENT, COUNTS, seed=21)
    endpoint = moto_servers[0].endpoint_url
    sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    queue_url = sqs.create_queue(QueueName=fresh_bucket_name())["QueueUrl"]
    with LambdaService() as lambda_service:
        for name, value in {
            "MSS_DATABASE_URL": db.url,
            "MSS_QUEUE_URL": queue_url,
            "MSS_PAGE_SIZE": "40",
            "POWERTOOLS_METRICS_NAMESPACE": "MastodonS3SyncTest",
            "POWERTOOLS_SERVICE_NAME": "enumerator",
            "AWS_ENDPOINT_URL_SQS": endpoint,
            "AWS_ENDPOINT_URL_LAMBDA": lambda_service.endpoint_url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }.items():
            monkeypatch.setenv(name, value)
        handler_module.clients.cache_clear()
        yield Setup(db, sqs, queue_url, lambda_service)
        handler_module.clients.cache_clear()


def drain(sqs: SQSClient, queue_url: str) -> list[str]:
    bodies: list[str] = []
    while True:
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not received:
            return bodies
        bodies += [item["Body"] for item in received]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": item["ReceiptHandle"]}
                for n, item in enumerate(received)
            ],
        )


def test_every_object_arrives_exactly_once(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    response = handler_module.handler({"type": "all"}, FakeLambdaContext().as_lambda_context())
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    enumerated = {m["Type"]: m["ObjectsEnumerated"] for m in metrics if "ObjectsEnumerated" in m}
    assert response["ok"] is True, response
    assert response["continued"] is False
    messages = [decode(body) for body in drain(setup.sqs, setup.queue_url)]
    sent = Counter(ref.key for message in messages for ref in message.objects)
    assert sent == expected_keys(setup.db)
    counts = response["counts"]
    # every kind but imports, whose table a current database no longer has: it says so
    assert set(counts) == {str(t) for t in RecordType if t != RecordType.IMPORTS}
    assert response["left_out"] == {"imports": "no table (Mastodon 4.4+)"}
    assert sum(c["objects"] for c in counts.values()) == sum(sent.values())
    assert sum(c["messages"] for c in counts.values()) == len(messages)
    # one metric per type that sent objects (a zero is not emitted), with that count
    assert enumerated == {t: [c["objects"]] for t, c in counts.items() if c["objects"]}
    assert set(COUNTS) <= set(enumerated)


@pytest.mark.parametrize(
    ("event", "environment", "reason"),
    [
        ({"skip_backups": True}, {}, "skipped by skip_backups (event)"),
        ({}, {"MSS_SKIP_BACKUPS": "true"}, "skipped by MSS_SKIP_BACKUPS ([copy] skip_backups)"),
    ],
)
def test_backups_are_left_out_when_the_event_or_the_stack_says_so(
    setup: Setup,
    monkeypatch: pytest.MonkeyPatch,
    event: dict[str, Any],
    environment: dict[str, str],
    reason: str,
) -> None:
    # given users' archive downloads in the database
    seed_database(setup.db.conn, SchemaVersion.CURRENT, {"backups": 5}, seed=4)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # when
    response = handler_module.handler(
        {"type": ["backups", "custom_emojis"], **event}, FakeLambdaContext().as_lambda_context()
    )
    # then no backup is sent, and the answer says why
    assert response["ok"] is True, response
    assert response["left_out"] == {"backups": reason}
    assert set(response["counts"]) == {"custom_emojis"}
    messages = [decode(body) for body in drain(setup.sqs, setup.queue_url)]
    assert {message.record_type for message in messages} == {RecordType.CUSTOM_EMOJIS}


def test_each_invocation_logs_the_run_id_it_uses_where_status_finds_it(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an event without a run id (as README's aws lambda invoke sends), and a dry run
    monkeypatch.setattr(handler_module.logger.registered_handler, "stream", CurrentStdout())
    output = Output(capsys)
    context = FakeLambdaContext().as_lambda_context()
    # when
    response = handler_module.handler({"type": "custom_emojis"}, context)
    dry = handler_module.handler({"type": "custom_emojis", "dry_run": True}, context)
    # then the run's start line carries the id it made, the line status's query looks for
    started = output.logs(RUN_STARTED_MESSAGE)
    assert [line["run_id"] for line in started] == [response["run_id"]]
    assert run_start(response["run_id"]) <= datetime.now(UTC)
    assert f"filter message = {json.dumps(RUN_STARTED_MESSAGE)} and ispresent(run_id)" in (
        LATEST_RUN_QUERY
    )
    # and a dry run is no run to follow
    assert [line["run_id"] for line in output.logs("dry run started")] == [dry["run_id"]]
    # and the next invocation (same warm container) does not carry the previous run id
    handler_module.handler({"type": "statuses"}, context)
    (rejected,) = output.logs("rejected event")
    assert "run_id" not in rejected


def test_refused_keys_are_logged_as_failed_and_not_counted_as_enumerated(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a media attachment whose file name makes keys the copier would refuse
    insert_unsafe_media(setup.db)
    monkeypatch.setattr(handler_module.logger.registered_handler, "stream", CurrentStdout())
    output = Output(capsys)
    # when
    response = handler_module.handler(
        {"type": "media_attachments"}, FakeLambdaContext().as_lambda_context()
    )
    # then the metric and the answer count only what was sent
    sent = [ref for body in drain(setup.sqs, setup.queue_url) for ref in decode(body).objects]
    count = response["counts"]["media_attachments"]
    enumerated = output.metrics("ObjectsEnumerated")
    assert [document["ObjectsEnumerated"] for document in enumerated] == [[len(sent)]]
    assert count["objects"] == len(sent)
    # and each refused key is logged as the copier logs a failed one, with the run id
    failed = output.logs("object failed")
    assert len(failed) == count["refused_keys"] >= 1
    for line in failed:
        assert line["outcome"] == "failed"
        assert line["key"].startswith("media_attachments/files/")
        assert line["reason"] == f"refused key {line['key']!r}: has a . or .. path segment"
        assert (line["run_id"], line["type"]) == (response["run_id"], "media_attachments")
        assert line["level"] == "WARNING"
    assert not {line["key"] for line in failed} & {ref.key for ref in sent}


def test_continues_in_new_invocations_until_done(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = "20261127T061500Z-long"
    event: dict[str, Any] = {"type": ["accounts", "media_attachments"], "run_id": run_id}
    output = Output(capsys)
    responses = []
    for _ in range(100):
        context = CountdownContext(readings=45).as_lambda_context()
        responses.append(handler_module.handler(event, context))
        if not responses[-1]["continued"]:
            break
        invocation = setup.lambda_service.invocations[-1]
        assert invocation.invocation_type == "Event"
        assert invocation.function_name == context.invoked_function_arn
        # marked: should it fail, it raises, so Lambda keeps the event and its cursor
        assert (invocation.payload["async"], invocation.payload["continued"]) == (True, True)
        event = invocation.payload
    assert len(responses) > 3
    assert len(setup.lambda_service.invocations) == len(responses) - 1
    assert responses[-1]["stopped_at"] is None
    messages = [decode(body) for body in drain(setup.sqs, setup.queue_url)]
    assert {message.run_id for message in messages} == {run_id}
    sent = Counter(ref.key for message in messages for ref in message.objects)
    wanted = Counter(
        key
        for key in expected_keys(setup.db).elements()
        if key.split("/")[0 if not key.startswith("cache/") else 1]
        in ("accounts", "media_attachments")
    )
    assert sent == wanted
    # one enumeration begun and finished, however many invocations it took (status)
    assert [m["EnumerationsStarted"] for m in output.metrics("EnumerationsStarted")] == [[1.0]]
    assert [m["EnumerationsFinished"] for m in output.metrics("EnumerationsFinished")] == [[1.0]]


@pytest.fixture
def unreachable_database(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """The function's database URL names a database the real server does not have."""
    monkeypatch.setenv("MSS_DATABASE_URL", setup.db.url.rsplit("/", 1)[0] + "/no_such_db")


@pytest.mark.parametrize(
    ("marks", "raises"),
    [
        ({"async": True}, True),  # start, start --resume, the self-continuation
        ({}, True),  # a hand-made --invocation-type Event run: nobody reads an answer
        ({"async": False}, False),  # a caller who waits says so
        ({"dry_run": True}, False),  # a dry run waits for its counts
    ],
)
def test_a_failure_raises_when_nobody_waits_and_answers_a_caller_who_does(
    setup: Setup, unreachable_database: None, marks: dict[str, Any], raises: bool
) -> None:
    event = {"type": "accounts", "run_id": "20261127T061500Z-fa11ed", "after_id": "42", **marks}
    context = FakeLambdaContext().as_lambda_context()
    if raises:
        # Lambda retries it, then puts the event, cursor and all, in the failed-events queue
        with pytest.raises(DatabaseError, match="no_such_db"):
            handler_module.handler(event, context)
    else:
        answer = handler_module.handler(event, context)
        assert answer["ok"] is False
        assert answer["run_id"] == event["run_id"]
        assert "no_such_db" in answer["error"]
    assert drain(setup.sqs, setup.queue_url) == []
    assert setup.lambda_service.invocations == []


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({}, "type is required"),
        ({"type": "statuses"}, "unknown type 'statuses'"),
        ({"type": "all", "limit": 0}, "limit must be at least 1"),
        ({"type": "all", "limit": "ten"}, "limit must be a whole number"),
        ({"type": "all", "after_id": 1.5}, "after_id must be a whole number"),
        ({"type": "all", "since": "yesterday"}, "since"),
        ({"type": "all", "dry_run": "yes"}, "dry_run must be true or false"),
        ({"type": "all", "tpye": "x"}, "unknown field(s) tpye"),
        ({"type": "all", "run_id": "my-run"}, "run_id must be a run id like 20261127T061500Z-"),
        (["all"], "must be a JSON object"),
    ],
)
def test_bad_events_are_refused_and_nothing_is_sent(setup: Setup, event: Any, reason: str) -> None:
    response = handler_module.handler(event, FakeLambdaContext().as_lambda_context())
    assert response["ok"] is False
    assert reason in response["error"]
    assert drain(setup.sqs, setup.queue_url) == []


def test_dry_run_counts_and_sends_nothing(setup: Setup) -> None:
    response = handler_module.handler(
        {"type": "custom_emojis", "dry_run": True}, FakeLambdaContext().as_lambda_context()
    )
    assert response["ok"] is True
    assert response["counts"]["custom_emojis"]["objects"] > 0
    assert drain(setup.sqs, setup.queue_url) == []
