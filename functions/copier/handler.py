"""Lambda entry point: copy the objects of each SQS message; report failed messages.

A message fails (and is retried, then dead-lettered) when any of its objects failed or
was not started before the invocation's time guard; its finished objects are skipped
on retry. Undecodable messages fail too, logged with their id and reason.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from mastodon_s3_sync.config.lambda_env import (
    bucket_settings,
    copy_settings,
    time_guard_seconds,
)
from mastodon_s3_sync.copying.copier import Copier
from mastodon_s3_sync.copying.memory import return_large_buffers_to_the_os
from mastodon_s3_sync.copying.results import CopyOptions, CopyResult
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.transport import lambda_metrics
from mastodon_s3_sync.transport.assembly import build_copier
from mastodon_s3_sync.transport.messages import CopyMessage, MessageError, decode
from mastodon_s3_sync.transport.worker import MessageFailed, copy_message

logger = Logger()
# A batch whose every message failed still answers batchItemFailures (no function error).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def read_secret(arn: str) -> dict[str, Any]:
    """A JSON secret from Secrets Manager, cached by Powertools."""
    secret: dict[str, Any] = parameters.get_secret(arn, transform="json")
    return secret


@cache
def runtime() -> tuple[Copier, ThreadPoolExecutor]:
    """The copier and its threads, built once per container from the environment."""
    return_large_buffers_to_the_os()
    copy = copy_settings(os.environ)
    source = bucket_settings(os.environ, "source", read_secret)
    destination = bucket_settings(os.environ, "destination", read_secret)
    copier = build_copier(source, destination, CopyOptions(copy), copy.workers)
    return copier, ThreadPoolExecutor(copy.workers, thread_name_prefix="copier")


def report(message: CopyMessage, results: Sequence[CopyResult]) -> None:
    """Metrics per outcome, and one log line per missing or failed key."""
    counts = {outcome: 0 for outcome in Outcome}
    copied_bytes = 0
    for result in results:
        counts[result.outcome] += 1
        copied_bytes += result.bytes_copied
        if result.outcome in (Outcome.MISSING, Outcome.FAILED):
            logger.warning(
                f"object {result.outcome.value}",
                key=result.ref.key,
                outcome=result.outcome.value,
                reason=result.reason,
            )
    lambda_metrics.emit(
        message.record_type,
        {
            "ObjectsCopied": (counts[Outcome.COPIED], MetricUnit.Count),
            "ObjectsSkipped": (counts[Outcome.SKIPPED], MetricUnit.Count),
            "ObjectsMissing": (counts[Outcome.MISSING], MetricUnit.Count),
            "ObjectsFailed": (counts[Outcome.FAILED], MetricUnit.Count),
            "BytesCopied": (copied_bytes, MetricUnit.Bytes),
        },
    )


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    """Copy one message's objects; raise to mark the message failed."""
    try:
        message = decode(record.body)
    except MessageError as error:
        logger.error("undecodable message", message_id=record.message_id, reason=str(error))
        raise
    copier, pool = runtime()
    guard = time_guard_seconds(os.environ)
    with logger.append_context_keys(
        run_id=message.run_id, type=str(message.record_type), message_id=record.message_id
    ):
        try:
            results = copy_message(
                copier,
                message,
                pool,
                lambda: lambda_context.get_remaining_time_in_millis() / 1000,
                guard,
            )
        except MessageFailed as failure:
            report(message, failure.results)
            logger.error("message failed", reason=str(failure))
            raise
        report(message, results)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """SQS batch in, ``batchItemFailures`` out."""
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
