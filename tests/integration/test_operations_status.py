"""``status``: a run's counts from the metrics the handlers really emit, and the queues.

moto serves CloudWatch's GetMetricData and SQS; the Logs Insights query that finds the
latest run goes through botocore's Stubber (moto has no ``stats``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber

from mastodon_s3_sync.cli import main
from mastodon_s3_sync.contract import RUN_STARTED_MESSAGE
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.ops.runs import LATEST_RUN_QUERY, latest_run_id
from mastodon_s3_sync.ops.status import (
    EnumerationHealth,
    StatusSnapshot,
    TypeProgress,
    read_status,
)
from mastodon_s3_sync.outcomes import Outcome, Tally
from tests.support.processes import CLI
from tests.support.stack_fixture import AWS_ENV, NO_WAIT, Deployed, Functions

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Run:
    run_id: str
    now: datetime


@pytest.fixture
def run_in_progress(deployed: Deployed, functions: Functions) -> Run:
    """A run 20 minutes old: its metrics, the queues, and noise it must not count."""
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    started = now - timedelta(minutes=20)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-c0ffee"
    stack = deployed.stack.stack_name
    accounts, media = RecordType.ACCOUNTS, RecordType.MEDIA_ATTACHMENTS
    functions.enumerated(stack, now - timedelta(minutes=18), {accounts: 100, media: 1000})
    functions.copied(stack, now - timedelta(minutes=15), accounts, {Outcome.COPIED: 60})
    functions.copied(stack, now - timedelta(minutes=15), media, {Outcome.COPIED: 500})
    # the last five complete minutes: 120 + 30 + 3 objects done, 2 failed
    functions.copied(stack, now - timedelta(minutes=4), media, {Outcome.COPIED: 120})
    functions.copied(stack, now - timedelta(minutes=3), accounts, {Outcome.SKIPPED: 30})
    functions.copied(
        stack, now - timedelta(minutes=3), media, {Outcome.MISSING: 3, Outcome.FAILED: 2}
    )
    # not this run: before it began, and another stack's
    functions.copied(stack, now - timedelta(minutes=30), accounts, {Outcome.COPIED: 999})
    functions.enumerated("OtherStack", now - timedelta(minutes=10), {accounts: 5000})
    sqs = deployed.clients.sqs
    for n in range(3):
        sqs.send_message(QueueUrl=deployed.stack.copy_queue_url, MessageBody=f"{n}")
    sqs.receive_message(QueueUrl=deployed.stack.copy_queue_url, MaxNumberOfMessages=1)
    for n in range(2):
        sqs.send_message(QueueUrl=deployed.stack.dead_letter_queue_url, MessageBody=f"{n}")
    return Run(run_id, now)


def test_status_counts_the_runs_metrics_and_the_queues(
    deployed: Deployed, run_in_progress: Run
) -> None:
    clients = deployed.clients
    snapshot = read_status(
        clients.cloudwatch, clients.sqs, deployed.stack, run_in_progress.run_id, run_in_progress.now
    )
    assert snapshot == StatusSnapshot(
        stack_name=deployed.stack.stack_name,
        run_id=run_in_progress.run_id,
        started=run_in_progress.now - timedelta(minutes=20),
        taken=run_in_progress.now,
        progress=dict.fromkeys(RecordType, TypeProgress())
        | {
            RecordType.ACCOUNTS: TypeProgress(100, Tally(copied=60, skipped=30)),
            RecordType.MEDIA_ATTACHMENTS: TypeProgress(1000, Tally(620, 0, 3, failed=2)),
        },
        queue_visible=2,
        queue_in_flight=1,
        dead_letters=2,
        rate=(120 + 30 + 3) / 300,
        # the stand-in stack is one deployed before the failed-events queue existed
        enumeration=EnumerationHealth(failed_events=None),
    )
    assert snapshot.eta_seconds == pytest.approx((10 + 377) / (153 / 300))


def test_status_command_prints_the_table(
    deployed: Deployed, run_in_progress: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(deployed.cli("status", "--run-id", run_in_progress.run_id)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        f"run {run_in_progress.run_id} on stack {deployed.stack.stack_name}: started "
    )
    all_types = 3 + len(RecordType)  # after the title, a blank line, the header, each type
    assert [lines[3], lines[all_types]] == [
        "accounts                      100         60         30          0          0          0"
        "         10",
        "all                         1,100        680         30          3          0          2"
        "        387",
    ]
    assert lines[all_types + 2 : all_types + 4] == [
        "copy queue: 2 messages waiting, 1 in flight",
        "dead-letter queue: 2 messages (their keys: missing --failed; then: redrive)",
    ]


def test_status_without_a_run_id_follows_the_latest_run(deployed: Deployed) -> None:
    now = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    logs = deployed.clients.logs
    with Stubber(logs) as stub:
        stub.add_response(
            "start_query",
            {"queryId": "12ab3456-12ab-123a-789e-1234567890ab"},
            {
                "logGroupNames": [deployed.stack.enumerator_log_group],
                "startTime": int((now - timedelta(days=14)).timestamp()),
                "endTime": int(now.timestamp()),
                "queryString": (
                    'filter message = "enumeration started" and ispresent(run_id)\n'
                    "| stats min(@timestamp) as started by run_id\n"
                    "| sort started desc\n"
                    "| limit 1"
                ),
            },
        )
        stub.add_response("get_query_results", {"status": "Running", "results": []})

        def latest(run_id: str) -> dict[str, Any]:
            """A stats query's answer: its fields only, no @ptr."""
            return {
                "status": "Complete",
                "results": [
                    [
                        {"field": "run_id", "value": run_id},
                        {"field": "started", "value": "2026-11-27 06:40:02.123"},
                    ]
                ],
                "statistics": {"recordsMatched": 3.0, "recordsScanned": 40.0},
            }

        stub.add_response("get_query_results", latest("20261127T064000Z-0a1b2c"))
        assert latest_run_id(logs, deployed.stack, now, NO_WAIT) == "20261127T064000Z-0a1b2c"
        stub.add_response("start_query", {"queryId": "2"})
        stub.add_response("get_query_results", {"status": "Complete", "results": []})
        with pytest.raises(SettingsError, match=r"^the enumerator's log: no run in the last 14"):
            latest_run_id(logs, deployed.stack, now, NO_WAIT)
        # a run started before the enumerator checked run ids: the log is named, not --run-id
        stub.add_response("start_query", {"queryId": "3"})
        stub.add_response("get_query_results", latest("my-run"))
        with pytest.raises(SettingsError) as raised:
            latest_run_id(logs, deployed.stack, now, NO_WAIT)
    assert str(raised.value) == (
        "the enumerator's log: its latest run id 'my-run' holds no start time "
        "(like 20261127T061500Z-3f9a1c); pass --run-id of the run to follow"
    )
    assert LATEST_RUN_QUERY.startswith(f"filter message = {json.dumps(RUN_STARTED_MESSAGE)}")


def test_status_watch_redraws_until_ctrl_c(deployed: Deployed, run_in_progress: Run) -> None:
    # given status --watch 1 writing to a pipe (not a terminal)
    args = deployed.cli("status", "--run-id", run_in_progress.run_id, "--watch", "1")
    process = subprocess.Popen(
        [*CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **AWS_ENV},
    )
    assert process.stdout is not None
    headers = 0
    deadline = time.monotonic() + 60
    while headers < 2 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        headers += line.startswith(f"run {run_in_progress.run_id}")
    # when interrupted
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    # then two plain blocks at least, no screen control, and exit status 0
    assert headers == 2
    assert process.returncode == 0, err
    assert "\x1b[" not in out
