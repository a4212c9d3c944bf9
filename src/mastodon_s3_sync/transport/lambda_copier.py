"""The copier function's work per SQS record: decode it, copy its objects, report them.

The handler builds the clients and the runtime once per container and passes them in,
with its logger. A record that must be retried raises, so Powertools' ``BatchProcessor``
lists it in ``batchItemFailures``. Nothing here imports the database side (pg8000,
paramiko): the copier's asset leaves those out.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, NamedTuple

from mastodon_s3_sync.config.settings import CopySettings
from mastodon_s3_sync.contract import MADE_PRIVATE_MESSAGE, object_log_message
from mastodon_s3_sync.copying.copier import Copier
from mastodon_s3_sync.copying.memory import return_large_buffers_to_the_os
from mastodon_s3_sync.copying.results import CopyOptions, CopyResult
from mastodon_s3_sync.outcomes import Outcome, Tally
from mastodon_s3_sync.transport import lambda_metrics
from mastodon_s3_sync.transport.assembly import Buckets, copier_for
from mastodon_s3_sync.transport.messages import CopyMessage, MessageError, decode
from mastodon_s3_sync.transport.worker import MessageFailed, copy_message

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext


class CopierRuntime(NamedTuple):
    """What a copier container keeps between invocations: the copier and its threads."""

    copier: Copier
    pool: ThreadPoolExecutor

    @classmethod
    def start(cls, buckets: Buckets, copy: CopySettings) -> CopierRuntime:
        """A copier over ``buckets`` (clients the handler built) and ``copy.workers`` threads.

        Freed object buffers go back to the OS: a warm container copies for hours.
        """
        return_large_buffers_to_the_os()
        copier = copier_for(buckets, CopyOptions(copy))
        return cls(copier, ThreadPoolExecutor(copy.workers, thread_name_prefix="copier"))


def decode_record(record: SQSRecord, logger: Logger) -> CopyMessage:
    """The record's message; an undecodable one is logged with its id and reason, and raised."""
    try:
        return decode(record.body)
    except MessageError as error:
        logger.error("undecodable message", message_id=record.message_id, reason=str(error))
        raise


def copy_record(
    record: SQSRecord,
    message: CopyMessage,
    context: LambdaContext,
    runtime: CopierRuntime,
    guard_seconds: float,
    logger: Logger,
) -> None:
    """Copy the message's objects, starting none when less than ``guard_seconds`` of the
    invocation is left, and report them; raises :class:`MessageFailed` when the message
    must be retried (its finished objects are skipped then)."""
    with logger.append_context_keys(
        run_id=message.run_id, type=str(message.record_type), message_id=record.message_id
    ):
        try:
            results = copy_message(
                runtime.copier,
                message,
                runtime.pool,
                lambda: context.get_remaining_time_in_millis() / 1000,
                guard_seconds,
            )
        except MessageFailed as failure:
            report(message, failure.results, logger)
            logger.error("message failed", reason=str(failure))
            raise
        report(message, results, logger)


def report(message: CopyMessage, results: Sequence[CopyResult], logger: Logger) -> None:
    """Metrics per outcome, one log line per missing, withheld or failed key (``missing``
    lists them), and one per object written private though public at the source."""
    for result in results:
        if result.outcome in (Outcome.MISSING, Outcome.WITHHELD, Outcome.FAILED):
            logger.warning(
                object_log_message(result.outcome),
                key=result.ref.key,
                outcome=result.outcome.value,
                reason=result.reason,
            )
        elif result.made_private:
            logger.warning(MADE_PRIVATE_MESSAGE, key=result.ref.key)
    lambda_metrics.emit_outcomes(message.record_type, Tally.of(results))
