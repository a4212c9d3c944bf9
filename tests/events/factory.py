"""SQS events for the copier handler, built from the canned batch, and a stand-in context.

``sqs_batch.json`` is a batch exactly as the Lambda SQS event source mapping delivers it.
The factory keeps that shape and varies only what a test cares about: bodies, message
ids, receive counts, or messages really received from a queue. There is no Lambda runtime
here, so :class:`FakeLambdaContext` plays its context object, with a deadline a test sets.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, cast

from aws_lambda_powertools.utilities.typing import LambdaContext

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef

SQS_BATCH = Path(__file__).with_name("sqs_batch.json")
LAMBDA_MAX_TIMEOUT_SECONDS = 900.0
"""A fresh :class:`FakeLambdaContext` has this much time left, as a 15-minute function."""


class SqsAttributes(TypedDict):
    """The system attributes the event source mapping puts on each record."""

    ApproximateReceiveCount: str
    SentTimestamp: str
    SenderId: str
    ApproximateFirstReceiveTimestamp: str


class SqsRecord(TypedDict):
    """One message of an SQS event, as Lambda delivers it."""

    messageId: str
    receiptHandle: str
    body: str
    attributes: SqsAttributes
    messageAttributes: dict[str, Any]
    md5OfBody: str
    eventSource: str
    eventSourceARN: str
    awsRegion: str


@cache
def _canned_text() -> str:
    return SQS_BATCH.read_text(encoding="utf-8")


def canned_event() -> dict[str, Any]:
    """A fresh copy of ``sqs_batch.json``, unchanged."""
    event: dict[str, Any] = json.loads(_canned_text())
    return event


def canned_records() -> list[SqsRecord]:
    """The records of the canned batch, checked to have exactly the fields of :class:`SqsRecord`."""
    records = canned_event()["Records"]
    for record in records:
        if set(record) != SqsRecord.__required_keys__:
            raise ValueError(f"{SQS_BATCH.name}: record fields {sorted(record)} drifted")
        if set(record["attributes"]) != SqsAttributes.__required_keys__:
            raise ValueError(f"{SQS_BATCH.name}: attributes {sorted(record['attributes'])}")
    return cast(list[SqsRecord], records)


def _now_ms() -> str:
    return str(int(time.time() * 1000))


def sqs_record(
    body: str,
    *,
    message_id: str | None = None,
    receive_count: int = 1,
    receipt_handle: str | None = None,
    queue_arn: str | None = None,
) -> SqsRecord:
    """A record like the canned ones, carrying ``body``; unset ids are fresh, times are now."""
    if receive_count < 1:
        raise ValueError("a delivered message has been received at least once")
    record = copy.deepcopy(canned_records()[0])
    sent = _now_ms()
    record["messageId"] = message_id or str(uuid.uuid4())
    record["receiptHandle"] = receipt_handle or f"AQEB{secrets.token_urlsafe(96)}"
    record["body"] = body
    record["md5OfBody"] = hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()
    record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    record["attributes"]["SentTimestamp"] = sent
    record["attributes"]["ApproximateFirstReceiveTimestamp"] = sent
    if queue_arn is not None:
        record["eventSourceARN"] = queue_arn
        record["awsRegion"] = _region_of(queue_arn)
    return record


def sqs_event(records: Iterable[SqsRecord]) -> dict[str, Any]:
    """The event Lambda passes to the handler for ``records``."""
    return {"Records": [dict(record) for record in records]}


def sqs_event_for_bodies(bodies: Iterable[str], *, receive_count: int = 1) -> dict[str, Any]:
    """An event with one fresh record per body, in order."""
    return sqs_event(sqs_record(body, receive_count=receive_count) for body in bodies)


def sqs_event_from_received(messages: Sequence[MessageTypeDef], queue_arn: str) -> dict[str, Any]:
    """The event the event source mapping builds from messages it received from a queue.

    The messages must have been received with their system attributes (at least
    ``ApproximateReceiveCount``).
    """
    records: list[SqsRecord] = []
    for message in messages:
        attributes = message.get("Attributes", {})
        if "ApproximateReceiveCount" not in attributes:
            raise ValueError("receive the messages with MessageSystemAttributeNames=['All']")
        record = sqs_record(
            message["Body"],
            message_id=message["MessageId"],
            receive_count=int(attributes["ApproximateReceiveCount"]),
            receipt_handle=message["ReceiptHandle"],
            queue_arn=queue_arn,
        )
        made = record["attributes"]
        record["attributes"] = {
            "ApproximateReceiveCount": made["ApproximateReceiveCount"],
            "SentTimestamp": attributes.get("SentTimestamp", made["SentTimestamp"]),
            "SenderId": attributes.get("SenderId", made["SenderId"]),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", made["ApproximateFirstReceiveTimestamp"]
            ),
        }
        record["md5OfBody"] = message.get("MD5OfBody", record["md5OfBody"])
        records.append(record)
    return sqs_event(records)


def message_ids(event: dict[str, Any]) -> list[str]:
    """The message ids of an event's records, in order."""
    return [str(record["messageId"]) for record in event["Records"]]


def _region_of(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) < 6 or parts[:3] != ["arn", "aws", "sqs"]:
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    return parts[3]


class LambdaRuntimeContext(Protocol):
    """What a Lambda context object offers, and all that :class:`FakeLambdaContext` mimics."""

    @property
    def function_name(self) -> str: ...

    @property
    def function_version(self) -> str: ...

    @property
    def invoked_function_arn(self) -> str: ...

    @property
    def memory_limit_in_mb(self) -> int: ...

    @property
    def aws_request_id(self) -> str: ...

    @property
    def log_group_name(self) -> str: ...

    @property
    def log_stream_name(self) -> str: ...

    def get_remaining_time_in_millis(self) -> int: ...


@dataclass
class FakeLambdaContext:
    """The context the Lambda runtime would pass; time left runs down to ``deadline``.

    ``deadline`` is a :func:`time.monotonic` value; :meth:`set_remaining` moves it.
    """

    function_name: str = "mastodon-s3-sync-copier"
    function_version: str = "$LATEST"
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:mastodon-s3-sync-copier"
    )
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/mastodon-s3-sync-copier"
    log_stream_name: str = field(
        default_factory=lambda: f"2026/11/27/[$LATEST]{secrets.token_hex(16)}"
    )
    deadline: float = field(default_factory=lambda: time.monotonic() + LAMBDA_MAX_TIMEOUT_SECONDS)

    @classmethod
    def with_remaining(cls, seconds: float) -> FakeLambdaContext:
        """A context of an invocation that has ``seconds`` left."""
        context = cls()
        context.set_remaining(seconds)
        return context

    def set_remaining(self, seconds: float) -> None:
        """Let the invocation end ``seconds`` from now."""
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until ``deadline``, never negative (as the runtime reports it)."""
        return max(0, int((self.deadline - time.monotonic()) * 1000))

    def as_lambda_context(self) -> LambdaContext:
        """This fake where a handler's signature names Powertools' ``LambdaContext``.

        Powertools' class is a nominal type that cannot be instantiated with values; the
        protocol checks below keep the fake and that class offering the same members.
        """
        return cast(LambdaContext, self)


if TYPE_CHECKING:
    _powertools_offers: type[LambdaRuntimeContext] = LambdaContext
    _fake_offers: type[LambdaRuntimeContext] = FakeLambdaContext
