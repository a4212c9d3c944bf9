"""Fan-out over a queue: the enumerator side (database -> messages) and the copier side
(one message -> its objects copied), shared by the Lambda handlers and the CLI.

The enumerator stops at a row boundary when asked (a Lambda running out of time) and
returns a cursor to continue from; every object of the rows before the cursor has been
sent, so chained invocations send each object exactly once.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import boto3
from botocore.config import Config

from .catalog import Catalog, CatalogFilter
from .copier import Copier, CopyResult, Outcome
from .engine import RunTotals, Tally
from .errors import SyncError
from .layout import ObjectRef, RecordType, unsafe_key_reason
from .messages import CopyMessage, MessageError, MessagePacker, decode
from .s3 import RETRY_ATTEMPTS

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

SQS_BATCH_ENTRIES = 10
SQS_BATCH_BYTES = 256 * 1024
SEND_ATTEMPTS = 6
SENDS_IN_FLIGHT = 4


class QueueError(SyncError):
    """Messages could not be sent to the queue."""


class MessageSink(Protocol):
    """Where message bodies go: SQS, or a list in tests and benchmarks."""

    def send(self, body: str) -> None: ...

    def flush(self) -> None: ...


class SqsSink:
    """Sends bodies with ``SendMessageBatch``: 10 per call, several calls in flight,
    entries reported ``Failed`` retried with backoff. :meth:`flush` waits for all."""

    def __init__(self, client: SQSClient, queue_url: str, in_flight: int = SENDS_IN_FLIGHT):
        self._client = client
        self._queue_url = queue_url
        self._pool = ThreadPoolExecutor(in_flight, thread_name_prefix="sqs-send")
        self._pending: list[Future[None]] = []
        self._batch: list[str] = []
        self._batch_bytes = 0

    def send(self, body: str) -> None:
        """Queue one body for sending."""
        size = len(body.encode())
        if self._batch and (
            len(self._batch) == SQS_BATCH_ENTRIES or self._batch_bytes + size > SQS_BATCH_BYTES
        ):
            self._submit()
        self._batch.append(body)
        self._batch_bytes += size

    def _submit(self) -> None:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        running = []
        for future in self._pending:
            if future.done():
                future.result()  # a failed send stops the enumeration now
            else:
                running.append(future)
        if len(running) >= SENDS_IN_FLIGHT * 2:  # bounded memory: wait for the oldest
            running.pop(0).result()
        self._pending = [*running, self._pool.submit(self._send_batch, batch)]

    def _send_batch(self, bodies: list[str]) -> None:
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies)
        ]
        for attempt in range(1, SEND_ATTEMPTS + 1):
            response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            failed = {item["Id"]: item for item in response.get("Failed", [])}
            if not failed:
                return
            permanent = [item for item in failed.values() if item.get("SenderFault")]
            if permanent or attempt == SEND_ATTEMPTS:
                item = (permanent or list(failed.values()))[0]
                raise QueueError(
                    f"SQS refused {len(failed)} message(s): {item.get('Code')}: "
                    f"{item.get('Message', '')}"
                )
            entries = [entry for entry in entries if entry["Id"] in failed]
            time.sleep(min(2**attempt * 0.05, 2) * random.uniform(0.5, 1))  # noqa: S311
        raise AssertionError("unreachable")

    def flush(self) -> None:
        """Send what is batched and wait for every call; raises the first failure."""
        if self._batch:
            self._submit()
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        """Stop the sender threads."""
        self._pool.shutdown(wait=True)


@dataclass
class TypeCount:
    """What the enumeration of one type produced."""

    rows: int = 0
    objects: int = 0
    """Objects sent (or, in a dry run, that would be); refused ones are not among them."""
    messages: int = 0
    expected_bytes: int = 0
    refused_keys: int = 0
    """Objects not sent: their key is no plain storage key (``..``, NUL, ...)."""


@dataclass(frozen=True)
class Cursor:
    """Where an enumeration continues: remaining types, after which id of the first,
    rows left of the first, and the per-type row limit of the others."""

    types: tuple[RecordType, ...]
    after_id: int | None = None
    rows_left: int | None = None
    limit: int | None = None


@dataclass
class EnumerationResult:
    """Counts per type, and the cursor to continue from when stopped early."""

    run_id: str
    counts: dict[RecordType, TypeCount] = field(default_factory=dict)
    stopped_at: Cursor | None = None


def refusal(ref: ObjectRef) -> str | None:
    """Why the copier would refuse ``ref`` (a key that is no plain storage key), worded
    as it words it; None when it would copy it."""
    for key in (ref.key, *ref.alternates):
        if (unsafe := unsafe_key_reason(key)) is not None:
            return f"refused key {key[:100]!r}: {unsafe}"
    return None


def enumerate_to_queue(
    catalog: Catalog,
    sink: MessageSink | None,
    cursor: Cursor,
    filt: CatalogFilter,
    run_id: str,
    should_stop: Callable[[], bool] = lambda: False,
    on_refused: Callable[[ObjectRef, str], None] = lambda ref, reason: None,
) -> EnumerationResult:
    """Send every object of the selected rows, packed into messages (``sink`` None: count).

    ``filt``'s ``after_id`` and ``limit`` are taken from the cursor. Checked between
    rows, ``should_stop`` ends the walk with :attr:`EnumerationResult.stopped_at` set.
    An object the copier would refuse is not sent (it would fail its whole message):
    ``on_refused(ref, reason)`` hears it, and it is counted apart.
    """
    result = EnumerationResult(run_id)
    for index, record_type in enumerate(cursor.types):
        after_id = cursor.after_id if index == 0 else None
        rows_left = cursor.rows_left if index == 0 else cursor.limit
        count = result.counts.setdefault(record_type, TypeCount())
        packer = MessagePacker(run_id, record_type)

        def emit(body: str | None, count: TypeCount = count) -> None:
            if body is not None:
                count.messages += 1
                if sink is not None:
                    sink.send(body)

        walk = catalog.walk(record_type, replace(filt, after_id=after_id, limit=rows_left))
        for row in walk:
            for ref in row.objects:
                reason = refusal(ref)
                if reason is not None:
                    count.refused_keys += 1
                    on_refused(ref, reason)
                    continue
                emit(packer.add(ref))
                count.objects += 1
                count.expected_bytes += ref.expected_size or 0
            count.rows += 1
            after_id = row.record_id
            if rows_left is not None:
                rows_left -= 1
            if should_stop() and (rows_left is None or rows_left > 0):
                emit(packer.flush())
                if sink is not None:
                    sink.flush()
                result.stopped_at = Cursor(cursor.types[index:], after_id, rows_left, cursor.limit)
                return result
        emit(packer.flush())
    if sink is not None:
        sink.flush()
    return result


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


def make_sqs_client(
    endpoint_url: str | None, region: str | None, profile: str | None = None
) -> SQSClient:
    """An SQS client with the same retry behaviour as the S3 clients."""
    session = boto3.session.Session(profile_name=profile, region_name=region)
    config = Config(retries={"mode": "standard", "max_attempts": RETRY_ATTEMPTS})
    return session.client("sqs", endpoint_url=endpoint_url, config=config)


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
                done.totals.by_type.setdefault(result.ref.record_type, Tally()).add(result)
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


def tally(results: Sequence[CopyResult]) -> dict[Outcome, int]:
    """Objects per outcome."""
    counts = dict.fromkeys(Outcome, 0)
    for result in results:
        counts[result.outcome] += 1
    return counts
