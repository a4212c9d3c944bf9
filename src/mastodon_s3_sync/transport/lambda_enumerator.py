"""The enumerator function's work, from event to response.

Parse the event, enumerate the database into the queue until the time guard, invoke the
function again with a continuation event when it stopped early, emit the enumerated
metrics, answer. A failure of an asynchronous invocation raises (Lambda retries it, then
sends the event with its cursor to the failed-events queue); a waiting caller gets
``{"ok": false, ...}`` (see :mod:`.lambda_edge`). The handler passes its clients and
settings (as factories: a rejected event touches neither AWS nor the secrets) and its
logger.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mastodon_s3_sync.config.lambda_env import EnumeratorSettings
from mastodon_s3_sync.contract import RUN_STARTED_MESSAGE, SKIP_BACKUPS, object_log_message
from mastodon_s3_sync.errors import SyncError
from mastodon_s3_sync.mastodon.catalog import Catalog
from mastodon_s3_sync.mastodon.database import open_database
from mastodon_s3_sync.mastodon.layout import ObjectRef
from mastodon_s3_sync.mastodon.selection import Selection, select
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.transport import lambda_metrics
from mastodon_s3_sync.transport.enumeration import EnumerationResult, enumerate_to_queue
from mastodon_s3_sync.transport.lambda_edge import (
    EnumeratorRequest,
    EventError,
    continuation_event,
    enumerator_response,
    parse_enumerator_event,
)
from mastodon_s3_sync.transport.sqs import SqsSink

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient

DRY_RUN_STARTED_MESSAGE = "dry run started"
"""The first log line of a dry run (``status`` looks for :data:`RUN_STARTED_MESSAGE`)."""
LEFT_OUT_MESSAGE = "type left out"
"""Logged once per kind an invocation does not walk, with its ``type`` and ``reason``."""


@dataclass(frozen=True)
class EnumeratorClients:
    """The enumerator's AWS clients: the copy queue's, and Lambda's to continue itself."""

    sqs: SQSClient
    functions: LambdaClient


def run_enumerator(
    event: object,
    context: LambdaContext,
    clients: Callable[[], EnumeratorClients],
    settings: Callable[[], EnumeratorSettings],
    logger: Logger,
) -> dict[str, Any]:
    """Enumerate, send, continue if needed; returns counts and where it stopped.

    ``clients`` and ``settings`` are called once the event is accepted. A settings or
    database error is an answer (``ok`` false, with the run id) to a synchronous caller,
    and raised for an asynchronous one. A rejected event is always an answer: a retry
    would fail the same way, and it holds no cursor to resume from.
    """
    try:
        request = parse_enumerator_event(event, datetime.now(UTC))
    except EventError as error:
        logger.error("rejected event", reason=str(error))
        return {"ok": False, "error": str(error)}
    logger.append_keys(run_id=request.run_id)
    logger.info(DRY_RUN_STARTED_MESSAGE if request.dry_run else RUN_STARTED_MESSAGE)
    aws = clients()
    try:
        result = _enumerate(request, context, aws.sqs, settings(), logger)
    except SyncError as error:
        logger.exception("enumeration failed", asynchronous=request.asynchronous)
        if request.asynchronous:
            raise
        return {"ok": False, "run_id": request.run_id, "error": str(error)}
    for line in result.left_out:
        logger.info(LEFT_OUT_MESSAGE, type=str(line.record_type), reason=line.reason)
    if result.stopped_at is not None:
        next_event = continuation_event(request, result.stopped_at)
        aws.functions.invoke(
            FunctionName=context.invoked_function_arn,
            InvocationType="Event",
            Payload=json.dumps(next_event).encode(),
        )
        logger.info("continuing in a new invocation", next_event=next_event)
    if not request.dry_run:
        for record_type, count in result.counts.items():
            lambda_metrics.emit_enumerated(record_type, count.objects)
        lambda_metrics.emit_chain(
            request.cursor.types[0],
            started=not request.continued,
            finished=result.stopped_at is None,
        )
    return enumerator_response(
        result, dry_run=request.dry_run, continued=result.stopped_at is not None
    )


def _enumerate(
    request: EnumeratorRequest,
    context: LambdaContext,
    sqs: SQSClient,
    settings: EnumeratorSettings,
    logger: Logger,
) -> EnumerationResult:
    """The catalog walk into the queue (a dry run only counts), until the time guard."""
    guard_ms = settings.time_guard_seconds * 1000

    def log_refused(ref: ObjectRef, reason: str) -> None:
        # A key not sent is logged as the copier logs a failed one: `missing --failed` lists it.
        logger.warning(
            object_log_message(Outcome.FAILED),
            key=ref.key,
            outcome=Outcome.FAILED.value,
            reason=reason,
            type=str(ref.record_type),
        )

    sink = None if request.dry_run else SqsSink(sqs, settings.sending_queue_url())
    selection = _selection(request, settings)
    try:
        with open_database(settings.database, settings.bastion) as conn:
            catalog = Catalog(
                conn, page_size=settings.database.page_size, key_prefix=settings.source_key_prefix
            )
            return enumerate_to_queue(
                catalog,
                sink,
                request.cursor,
                request.filter,
                request.run_id,
                should_stop=lambda: context.get_remaining_time_in_millis() < guard_ms,
                on_refused=log_refused,
                selection=selection,
            )
    finally:
        if sink is not None:
            sink.close()


def _selection(request: EnumeratorRequest, settings: EnumeratorSettings) -> Selection:
    """The event's types, less backups when the event or the function's settings say so."""
    skip_backups = None
    if request.skip_backups:
        skip_backups = "skip_backups (event)"
    elif settings.skip_backups:
        skip_backups = f"{SKIP_BACKUPS} ([copy] skip_backups)"
    skip_remote_cache = "skip_remote_cache (event)" if request.filter.skip_remote_cache else None
    return select(
        request.cursor.types, skip_backups=skip_backups, skip_remote_cache=skip_remote_cache
    )
