"""``redrive``: an SQS message move task from the DLQ back to the copy queue, followed to its end.

moto has no message move tasks: their API goes through botocore's Stubber, with responses
shaped as the AWS API reference shows them.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from mastodon_s3_sync.cli import main
from mastodon_s3_sync.errors import SyncError
from mastodon_s3_sync.ops.redrive import MOVE_TASK_LISTINGS, MoveTask, RedriveRefused, redrive
from tests.support.stack_fixture import NO_WAIT, Deployed

pytestmark = pytest.mark.integration


STARTED_MS = 1795760100000
EARLIER_MS = STARTED_MS - 86_400_000


def move_task(
    status: str, moved: int, to_move: int, started: int = STARTED_MS, **extra: Any
) -> dict[str, Any]:
    return {
        "Status": status,
        "SourceArn": "set below",
        "ApproximateNumberOfMessagesMoved": moved,
        "ApproximateNumberOfMessagesToMove": to_move,
        "StartedTimestamp": started,
        **extra,
    }


def test_redrive_moves_the_dlq_back_and_follows_the_task(deployed: Deployed) -> None:
    stack = deployed.stack
    source = {"SourceArn": stack.dead_letter_queue_arn}
    handle = "eyJ0YXNrSWQiOiJkYzE2OWUwNC0wZTU1LTQ0ZDItYWE5MC1jMDgwY2ExZjM2ZjciLCJzb3VyY2VBcm4i"
    with Stubber(deployed.clients.sqs) as stub:
        stub.add_response(
            "get_queue_attributes",
            {"Attributes": {"ApproximateNumberOfMessages": "3"}},
            {"QueueUrl": stack.dead_letter_queue_url, "AttributeNames": ANY},
        )
        earlier = move_task("COMPLETED", 7, 7, EARLIER_MS) | source
        stub.add_response(
            "list_message_move_tasks", {"Results": [earlier]}, {**source, "MaxResults": 10}
        )
        stub.add_response(
            "start_message_move_task",
            {"TaskHandle": handle},
            {**source, "DestinationArn": stack.copy_queue_arn},
        )
        # SQS lists the new task only after a moment: first nothing, then the earlier one
        for listed in ([], [earlier]):
            stub.add_response(
                "list_message_move_tasks", {"Results": listed}, {**source, "MaxResults": 1}
            )
        for status, moved in (("RUNNING", 0), ("RUNNING", 2), ("COMPLETED", 3)):
            running = {"TaskHandle": handle} if status == "RUNNING" else {}
            stub.add_response(
                "list_message_move_tasks",
                {"Results": [move_task(status, moved, 3) | source | running]},
                {**source, "MaxResults": 1},
            )
        seen: list[MoveTask] = []
        done = redrive(deployed.clients.sqs, stack, seen.append, poll=NO_WAIT)
        stub.assert_no_pending_responses()
    assert [(task.status, task.moved, task.to_move) for task in seen] == [
        ("RUNNING", 0, 3),
        ("RUNNING", 2, 3),
        ("COMPLETED", 3, 3),
    ]
    assert done == seen[-1]


def test_redrive_refuses_an_empty_dlq(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(deployed.cli("redrive")) == 1
    assert capsys.readouterr().err == (
        "mastodon-s3-sync: error: the dead-letter queue is empty: nothing to redrive\n"
    )


def test_redrive_refuses_while_a_task_runs_and_reports_a_failed_one(deployed: Deployed) -> None:
    source = {"SourceArn": deployed.stack.dead_letter_queue_arn}
    waiting = {"Attributes": {"ApproximateNumberOfMessages": "40"}}
    with Stubber(deployed.clients.sqs) as stub:
        stub.add_response("get_queue_attributes", waiting)
        stub.add_response(
            "list_message_move_tasks",
            {"Results": [move_task("RUNNING", 10, 50) | source | {"TaskHandle": "abc"}]},
        )
        with pytest.raises(RedriveRefused, match=r"already running \(10 of 50 messages moved\)"):
            redrive(deployed.clients.sqs, deployed.stack, lambda task: None, poll=NO_WAIT)

        stub.add_response("get_queue_attributes", waiting)
        stub.add_response("list_message_move_tasks", {"Results": []})
        stub.add_response("start_message_move_task", {"TaskHandle": "abc"})
        failure = "AWS.SimpleQueueService.NonExistentQueue"
        stub.add_response(
            "list_message_move_tasks",
            {"Results": [move_task("FAILED", 12, 40, FailureReason=failure) | source]},
        )
        with pytest.raises(SyncError, match=f"redrive failed after 12 messages: {failure}"):
            redrive(deployed.clients.sqs, deployed.stack, lambda task: None, poll=NO_WAIT)
        stub.assert_no_pending_responses()


def test_redrive_gives_up_clearly_when_its_task_is_never_listed(deployed: Deployed) -> None:
    source = {"SourceArn": deployed.stack.dead_letter_queue_arn}
    earlier = move_task("COMPLETED", 7, 7, EARLIER_MS) | source
    with Stubber(deployed.clients.sqs) as stub:
        stub.add_response(
            "get_queue_attributes", {"Attributes": {"ApproximateNumberOfMessages": "4"}}
        )
        stub.add_response("list_message_move_tasks", {"Results": [earlier]})
        stub.add_response("start_message_move_task", {"TaskHandle": "abc"})
        for _ in range(MOVE_TASK_LISTINGS):
            stub.add_response("list_message_move_tasks", {"Results": [earlier]})
        with pytest.raises(SyncError) as raised:
            redrive(deployed.clients.sqs, deployed.stack, lambda task: None, poll=NO_WAIT)
        stub.assert_no_pending_responses()
    assert str(raised.value) == (
        "the redrive was started, but SQS listed no new move task for the dead-letter queue "
        f"in {MOVE_TASK_LISTINGS} tries; follow it with: aws sqs list-message-move-tasks "
        f"--source-arn {deployed.stack.dead_letter_queue_arn}"
    )
