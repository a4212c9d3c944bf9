"""The copy queue, its dead-letter queue, and the enumerator's failed-events queue.

The copy queue's visibility timeout is :data:`VISIBILITY_TIMEOUT_FACTOR` times the copier
timeout; a message that fails ``max_receive_count`` times goes to a dead-letter queue that
keeps it longer than the copy queue would (:data:`DEAD_LETTER_RETENTION` >
:data:`COPY_QUEUE_RETENTION`). An enumerator event whose retries are spent lands, with its
cursor, in the failed-events queue (``start --resume`` reads it). All are encrypted and
refuse plain HTTP.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .config import StackConfig

VISIBILITY_TIMEOUT_FACTOR = 6
"""Copy queue visibility timeout = this x the copier timeout (AWS guidance for Lambda)."""
COPY_QUEUE_RETENTION = Duration.days(4)
DEAD_LETTER_RETENTION = Duration.days(14)
"""SQS's longest; longer than the copy queue's, as messages keep their first enqueue time."""


def queues(scope: Construct, config: StackConfig) -> tuple[sqs.Queue, sqs.Queue]:
    """The dead-letter queue, then the copy queue that sends it what keeps failing."""
    dead_letter_queue = sqs.Queue(
        scope,
        "DeadLetterQueue",
        retention_period=DEAD_LETTER_RETENTION,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
    )
    copy_queue = sqs.Queue(
        scope,
        "CopyQueue",
        visibility_timeout=Duration.seconds(
            VISIBILITY_TIMEOUT_FACTOR * config.copier_timeout_seconds
        ),
        retention_period=COPY_QUEUE_RETENTION,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        dead_letter_queue=sqs.DeadLetterQueue(
            max_receive_count=config.max_receive_count, queue=dead_letter_queue
        ),
    )
    return dead_letter_queue, copy_queue


def failed_events_queue(scope: Construct) -> sqs.Queue:
    """Where Lambda puts an enumerator event (and its cursor) whose retries are spent."""
    return sqs.Queue(
        scope,
        "FailedEventsQueue",
        retention_period=DEAD_LETTER_RETENTION,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
    )
