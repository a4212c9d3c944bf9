"""The copier side of the fan-out: one message's objects copied; a worker that drains a queue."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mastodon_s3_sync.copying.copier import Copier
from mastodon_s3_sync.copying.results import CopyResult
from mastodon_s3_sync.errors import SyncError
from mastodon_s3_sync.outcomes import Outcome, RunTotals
from mastodon_s3_sync.transport.messages import CopyMessage, MessageError, decode

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class MessageFailed(SyncError):
    """Some objects of a message failed or were not attempted: the message must be retried."""

    def __init__(self, reason: str, results: Sequence[CopyResult]) -> None:
        super().__init__(reason)
        self.results = results


def copy_message(
    copier: Copier,
    message: CopyMessage,
    pool: ThreadPoolExecutor,
    time_left: Callable[[], float],
    guard_seconds: float,
) -> list[CopyResult]:
    """Copy a message's objects in parallel; new objects start only while ``time_left()``
    exceeds ``guard_seconds``. Raises :class:`MessageFailed` unless every object ended
    copied, skipped or missing (a retry then skips what was done)."""

    survey = copier.survey()  # a message's objects are in id order: a few list requests
    sightings = [survey.sight(ref) for ref in message.objects]

    def one(ref_index: int) -> CopyResult | None:
        if time_left() <= guard_seconds:
            return None
        return copier.copy_or_fail(message.objects[ref_index], sightings[ref_index])

    outcomes = list(pool.map(one, range(len(message.objects))))
    results = [result for result in outcomes if result is not None]
    failed = [result for result in results if result.outcome == Outcome.FAILED]
    not_started = len(outcomes) - len(results)
    if failed or not_started:
        first = f"; first failure: {failed[0].ref.key}: {failed[0].reason}" if failed else ""
        raise MessageFailed(
            f"{len(failed)} failed, {not_started} not started before the time guard{first}",
            results,
        )
    return results


@dataclass
class WorkerTotals:
    """What a worker did: outcomes per type, and messages done, failed, undecodable."""

    totals: RunTotals = field(default_factory=RunTotals)
    messages_done: int = 0
    messages_failed: int = 0
    messages_undecodable: int = 0


def _queue_is_empty(sqs: SQSClient, queue_url: str) -> bool:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(int(value) == 0 for value in attributes.values())


def run_worker(
    sqs: SQSClient,
    queue_url: str,
    copier: Copier,
    pool: ThreadPoolExecutor,
    *,
    until_empty: bool,
    stop: threading.Event,
    on_message: Callable[[str, Sequence[CopyResult], str], None],
) -> WorkerTotals:
    """Receive, copy, delete what succeeded; failed messages return after their visibility
    timeout (and reach the dead-letter queue after the receive limit).

    With ``until_empty`` it returns once the queue has no message left, visible or not;
    otherwise it runs until ``stop`` is set. ``on_message(id, results, error)`` hears each.
    """
    done = WorkerTotals()

    def time_left() -> float:
        return 0.0 if stop.is_set() else math.inf

    while not stop.is_set():
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1 if until_empty else 20
        ).get("Messages", [])
        if not received:
            if until_empty and _queue_is_empty(sqs, queue_url):
                break
            continue
        finished = []
        for item in received:
            if stop.is_set():
                break  # the rest returns to the queue after its visibility timeout
            try:
                message = decode(item["Body"])
            except MessageError as error:
                done.messages_undecodable += 1
                on_message(item["MessageId"], (), f"undecodable: {error}")
                continue
            try:
                results: Sequence[CopyResult] = copy_message(copier, message, pool, time_left, 0)
                error_text = ""
            except MessageFailed as failure:
                results, error_text = failure.results, str(failure)
            for result in results:
                done.totals.add(result.ref.record_type, result)
            on_message(item["MessageId"], results, error_text)
            if error_text:
                done.messages_failed += 1
            else:
                done.messages_done += 1
                finished.append(item)
        if finished:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": item["ReceiptHandle"]}
                    for n, item in enumerate(finished)
                ],
            )
    done.totals.interrupted = stop.is_set()
    return done
