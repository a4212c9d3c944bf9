"""Lambda entry point: enumerate Mastodon's objects from its database into the copy queue.

Event: {"type": "accounts" | "media_attachments" | "custom_emojis" | "preview_cards" | "all",
"after_id"?, "limit"?, "since"?, "skip_remote_cache"?, "dry_run"?, "run_id"?}.
Before its time runs out it invokes itself asynchronously to continue where it stopped.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext

from mastodon_s3_sync.config.lambda_env import (
    bastion_settings,
    database_settings,
    source_key_prefix,
    time_guard_seconds,
)
from mastodon_s3_sync.contract import QUEUE_URL, RUN_STARTED_MESSAGE
from mastodon_s3_sync.errors import SyncError
from mastodon_s3_sync.mastodon.catalog import Catalog
from mastodon_s3_sync.mastodon.database import open_database
from mastodon_s3_sync.mastodon.layout import ObjectRef
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.transport import lambda_metrics
from mastodon_s3_sync.transport.enumeration import enumerate_to_queue
from mastodon_s3_sync.transport.lambda_edge import (
    EventError,
    continuation_event,
    enumerator_response,
    parse_enumerator_event,
)
from mastodon_s3_sync.transport.sqs import SqsSink

logger = Logger()


def read_secret(arn: str) -> dict[str, Any]:
    """A JSON secret from Secrets Manager, cached by Powertools."""
    secret: dict[str, Any] = parameters.get_secret(arn, transform="json")
    return secret


@cache
def clients() -> tuple[Any, Any]:
    """SQS and Lambda clients, once per container."""
    return boto3.client("sqs"), boto3.client("lambda")


def log_refused(ref: ObjectRef, reason: str) -> None:
    """A key not sent, logged as the copier logs a failed one (``missing --failed`` lists it)."""
    logger.warning(
        f"object {Outcome.FAILED.value}",
        key=ref.key,
        outcome=Outcome.FAILED.value,
        reason=reason,
        type=str(ref.record_type),
    )


# clear_state: a warm container's next invocation must not log the previous run id.
@logger.inject_lambda_context(log_event=True, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Enumerate, send, continue if needed; returns counts and where it stopped."""
    try:
        request = parse_enumerator_event(event, datetime.now(UTC))
    except EventError as error:
        logger.error("rejected event", reason=str(error))
        return {"ok": False, "error": str(error)}
    logger.append_keys(run_id=request.run_id)
    logger.info("dry run started" if request.dry_run else RUN_STARTED_MESSAGE)  # status finds it
    guard_ms = time_guard_seconds(os.environ) * 1000
    sqs, lambda_client = clients()
    sink = None if request.dry_run else SqsSink(sqs, os.environ[QUEUE_URL])
    try:
        database = database_settings(os.environ, read_secret)
        with open_database(database, bastion_settings(os.environ, read_secret)) as conn:
            catalog = Catalog(
                conn, page_size=database.page_size, key_prefix=source_key_prefix(os.environ)
            )
            result = enumerate_to_queue(
                catalog,
                sink,
                request.cursor,
                request.filter,
                request.run_id,
                should_stop=lambda: context.get_remaining_time_in_millis() < guard_ms,
                on_refused=log_refused,
            )
    except SyncError as error:
        logger.exception("enumeration failed")
        return {"ok": False, "run_id": request.run_id, "error": str(error)}
    finally:
        if sink is not None:
            sink.close()
    if result.stopped_at is not None:
        next_event = continuation_event(request, result.stopped_at)
        lambda_client.invoke(
            FunctionName=context.invoked_function_arn,
            InvocationType="Event",
            Payload=json.dumps(next_event).encode(),
        )
        logger.info("continuing in a new invocation", next_event=next_event)
    if not request.dry_run:
        for record_type, count in result.counts.items():
            lambda_metrics.emit(
                record_type, {"ObjectsEnumerated": (count.objects, MetricUnit.Count)}
            )
    return enumerator_response(
        result, dry_run=request.dry_run, continued=result.stopped_at is not None
    )
