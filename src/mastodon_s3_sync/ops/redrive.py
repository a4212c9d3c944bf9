"""``redrive``: the dead-letter queue's messages go back to the copy queue.

SQS moves them itself (a message move task); this starts one and follows it to its end,
refusing when there is nothing to move or a task is already running.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mastodon_s3_sync.errors import SyncError
from mastodon_s3_sync.ops.stack import DEFAULT_POLL, Poll, StackOutputs, queue_depth

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MOVE_TASK_LISTINGS = 10
"""How often a redrive asks for the move task it started before it gives up: SQS may list
a new task only after a moment (the asks are a poll apart)."""
EARLIER_TASKS = 10
"""Move tasks listed before starting one: any still running refuses the redrive."""


@dataclass(frozen=True)
class MoveTask:
    """One SQS message move task (``ListMessageMoveTasks``)."""

    status: str
    moved: int
    to_move: int | None
    failure_reason: str | None = None
    started: int | None = None
    """``StartedTimestamp``, in milliseconds since the epoch: which task this is."""

    @classmethod
    def from_api(cls, result: Mapping[str, Any]) -> MoveTask:
        """From one entry of ``ListMessageMoveTasks``' ``Results``."""
        to_move = result.get("ApproximateNumberOfMessagesToMove")
        started = result.get("StartedTimestamp")
        return cls(
            status=str(result["Status"]),
            moved=int(result.get("ApproximateNumberOfMessagesMoved", 0)),
            to_move=None if to_move is None else int(to_move),
            failure_reason=result.get("FailureReason"),
            started=None if started is None else int(started),
        )


class RedriveRefused(SyncError):
    """The DLQ is empty, or a move task is already running."""


def redrive(
    sqs: SQSClient,
    stack: StackOutputs,
    on_progress: Callable[[MoveTask], None],
    max_per_second: int | None = None,
    *,
    poll: Poll = DEFAULT_POLL,
) -> MoveTask:
    """Move the DLQ's messages back to the copy queue; follow the task to its end."""
    (waiting,) = queue_depth(sqs, stack.dead_letter_queue_url, "ApproximateNumberOfMessages")
    if waiting == 0:
        raise RedriveRefused("the dead-letter queue is empty: nothing to redrive")
    earlier = _move_tasks(sqs, stack, EARLIER_TASKS)
    running = [task for task in earlier if task.status == "RUNNING"]
    if running:
        task = running[0]
        of = f" of {task.to_move:,}" if task.to_move is not None else ""
        raise RedriveRefused(
            f"a redrive of the dead-letter queue is already running ({task.moved:,}{of} "
            "messages moved): wait for it (status shows the DLQ depth) or cancel it "
            "in the SQS console"
        )
    rate = {} if max_per_second is None else {"MaxNumberOfMessagesPerSecond": max_per_second}
    sqs.start_message_move_task(
        SourceArn=stack.dead_letter_queue_arn, DestinationArn=stack.copy_queue_arn, **rate
    )
    previous = earlier[0].started if earlier else None
    while True:
        task = _started_move_task(sqs, stack, previous, poll)
        on_progress(task)
        if task.status == "COMPLETED":
            return task
        if task.status in ("FAILED", "CANCELLED"):
            raise SyncError(
                f"the redrive {task.status.lower()} after {task.moved:,} messages"
                + (f": {task.failure_reason}" if task.failure_reason else "")
            )
        poll.wait()


def _started_move_task(
    sqs: SQSClient, stack: StackOutputs, previous: int | None, poll: Poll
) -> MoveTask:
    """The task just started: the latest listed (one runs at a time per queue) once it
    is no longer the one that was latest before (``previous``, its start time)."""
    for attempt in range(1, MOVE_TASK_LISTINGS + 1):
        listed = _move_tasks(sqs, stack, 1)
        if listed and (previous is None or listed[0].started != previous):
            return listed[0]
        if attempt < MOVE_TASK_LISTINGS:
            poll.wait()
    raise SyncError(
        f"the redrive was started, but SQS listed no new move task for the dead-letter "
        f"queue in {MOVE_TASK_LISTINGS} tries; follow it with: aws sqs "
        f"list-message-move-tasks --source-arn {stack.dead_letter_queue_arn}"
    )


def _move_tasks(sqs: SQSClient, stack: StackOutputs, how_many: int) -> list[MoveTask]:
    results = sqs.list_message_move_tasks(
        SourceArn=stack.dead_letter_queue_arn, MaxResults=how_many
    )["Results"]
    return [MoveTask.from_api(result) for result in results]
