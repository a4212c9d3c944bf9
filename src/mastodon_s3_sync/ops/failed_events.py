"""The enumerator's failed events: what ``status`` shows and ``start --resume`` runs again.

Lambda's on-failure destination puts one JSON record per asynchronous event whose retries
are spent into the stack's failed-events queue: the event itself, with its cursor
(``type``, ``after_id``, ``run_id``), is the record's ``requestPayload``; the error is its
``responsePayload``. Resuming invokes the enumerator with that event again; the message is
deleted only once Lambda has accepted the invocation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mastodon_s3_sync.contract import DEFAULT_STACK_NAME
from mastodon_s3_sync.errors import SettingsError, SyncError
from mastodon_s3_sync.ops.stack import StackOutputs
from mastodon_s3_sync.transport.lambda_edge import EventError, parse_enumerator_event

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

SHOWN_FAILED_EVENTS = 10
"""``status`` shows at most this many failed events (one SQS receive)."""
RESUME_VISIBILITY_SECONDS = 60
"""A message being resumed is hidden this long; one not deleted (refused, or the invoke
failed) is back in the queue after it."""
ACCEPTED = 202
"""Lambda's status code for an accepted asynchronous invocation."""


@dataclass(frozen=True)
class FailedEvent:
    """One record of the failed-events queue: the event (None if unreadable) and why."""

    message_id: str
    receipt_handle: str
    event: dict[str, Any] | None
    error: str

    def cursor(self) -> str:
        """Where the enumeration stopped: run id, types and the id after which it goes on."""
        if self.event is None:
            return "an unreadable record"
        types = self.event.get("type")
        names = ", ".join(types) if isinstance(types, list) else str(types)
        after = self.event.get("after_id")
        where = f" after id {after}" if after is not None else " from the start"
        return f"run {self.event.get('run_id', '(none)')}, {names}{where}"


def read_record(message: MessageTypeDef) -> FailedEvent:
    """A queue message as a :class:`FailedEvent`."""
    event: dict[str, Any] | None = None
    error = "no reason given"
    try:
        record = json.loads(message.get("Body", ""))
    except ValueError:
        record = None
    if isinstance(record, dict):
        payload = record.get("requestPayload")
        event = payload if isinstance(payload, dict) else None
        response = record.get("responsePayload")
        if isinstance(response, dict):
            error = str(response.get("errorMessage") or response.get("errorType") or error)
        condition = record.get("requestContext", {}).get("condition")
        if condition and error == "no reason given":
            error = str(condition)  # e.g. EventAgeExceeded: the event never ran
    return FailedEvent(message["MessageId"], message["ReceiptHandle"], event, error)


def resume_command(stack_name: str) -> str:
    """The one command that resumes the failed enumerations of ``stack_name``."""
    option = "" if stack_name == DEFAULT_STACK_NAME else f" --stack {stack_name}"
    return f"mastodon-s3-sync start --resume{option}"


def peek_failed_events(sqs: SQSClient, queue_url: str) -> list[FailedEvent]:
    """Up to :data:`SHOWN_FAILED_EVENTS` records, left visible (no receive hides them)."""
    messages = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=SHOWN_FAILED_EVENTS, VisibilityTimeout=0
    ).get("Messages", [])
    return [read_record(message) for message in messages]


@dataclass(frozen=True)
class Resumed:
    """What ``start --resume`` did: events invoked again, and records left with the reason."""

    resumed: tuple[FailedEvent, ...]
    refused: tuple[tuple[FailedEvent, str], ...]


def resume_failed_events(
    lambda_: LambdaClient, sqs: SQSClient, stack: StackOutputs, now: datetime
) -> Resumed:
    """Invoke the enumerator asynchronously with each failed event, from its cursor."""
    queue_url = stack.failed_events_queue_url
    if queue_url is None:
        raise SettingsError(
            f"--resume: stack {stack.stack_name} has no failed-events queue (deployed by an "
            "earlier version): deploy it again (cdk deploy)"
        )
    resumed: list[FailedEvent] = []
    refused: list[tuple[FailedEvent, str]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=RESUME_VISIBILITY_SECONDS,
        ).get("Messages", [])
        if not messages:
            return Resumed(tuple(resumed), tuple(refused))
        for failed in map(read_record, messages):
            if failed.event is None:
                refused.append((failed, "the record holds no event"))
                continue
            try:  # the handler's own check: a rejected event would fail again
                parse_enumerator_event(failed.event, now)
            except EventError as error:
                refused.append((failed, str(error)))
                continue
            # Marked asynchronous: should it fail again, it comes back to this queue.
            event = {**failed.event, "async": True}
            response = lambda_.invoke(
                FunctionName=stack.enumerator_function,
                InvocationType="Event",
                Payload=json.dumps(event).encode(),
            )
            if response["StatusCode"] != ACCEPTED:
                raise SyncError(
                    f"resume: Lambda answered {response['StatusCode']} for {failed.cursor()}; "
                    "the event stays in the failed-events queue"
                )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=failed.receipt_handle)
            resumed.append(failed)
