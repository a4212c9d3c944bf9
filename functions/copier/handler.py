"""Lambda entry point: copy the objects of each SQS message; report failed messages.

A message fails (and is retried, then dead-lettered) when any of its objects failed or
was not started before the invocation's time guard; its finished objects are skipped
on retry. Undecodable messages fail too, logged with their id and reason.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from mastodon_s3_sync.config.lambda_env import bucket_settings, copy_settings, time_guard_seconds
from mastodon_s3_sync.transport.assembly import open_buckets
from mastodon_s3_sync.transport.lambda_copier import CopierRuntime, copy_record, decode_record

logger = Logger()
# A batch whose every message failed still answers batchItemFailures (no function error).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def read_secret(arn: str) -> dict[str, Any]:
    """A JSON secret from Secrets Manager, cached by Powertools."""
    return parameters.get_secret(arn, transform="json")


@cache
def runtime() -> CopierRuntime:
    """Both sides' clients, the copier and its threads: once per container, at its first
    decodable message."""
    copy = copy_settings(os.environ)
    source = bucket_settings(os.environ, "source", read_secret)
    destination = bucket_settings(os.environ, "destination", read_secret)
    return CopierRuntime.start(open_buckets(source, destination, copy.workers), copy)


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    """Copy one message's objects; raise to mark the message failed."""
    message = decode_record(record, logger)
    copy_record(record, message, lambda_context, runtime(), time_guard_seconds(os.environ), logger)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """SQS batch in, ``batchItemFailures`` out."""
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
