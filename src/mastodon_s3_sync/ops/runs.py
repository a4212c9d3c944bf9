"""A run, as the operations know it: the start time in its id, and the latest one logged.

The metrics carry no run id: a run's counts are those of its time window, from the time in
its id (``status``). The enumerator logs :data:`RUN_STARTED_MESSAGE` with the run id at the
start of each invocation that sends, which is how ``status`` and ``missing`` find the latest.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mastodon_s3_sync.contract import RUN_STARTED_MESSAGE
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.ops.insights import query_logs
from mastodon_s3_sync.ops.stack import DEFAULT_POLL, Poll, StackOutputs
from mastodon_s3_sync.transport.lambda_edge import RUN_ID_EXAMPLE, run_id_time

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

RUN_LOOKBACK = timedelta(days=14)
"""How far back the enumerator's log is searched for the latest run."""

LATEST_RUN_QUERY = (
    f"filter message = {json.dumps(RUN_STARTED_MESSAGE)} and ispresent(run_id)\n"
    "| stats min(@timestamp) as started by run_id\n"
    "| sort started desc\n"
    "| limit 1"
)
"""The run whose first ``enumeration started`` line is the latest (a run's continuations
log it again, later): the enumerator logs it with the run id it uses, given or made."""


def run_start(run_id: str) -> datetime:
    """When a run began, from the id given with ``--run-id`` (``new_run_id``'s form).

    The enumerator takes no other form, and the latest run is checked where it is read.
    """
    started = run_id_time(run_id)
    if started is None:
        raise SettingsError(
            f"--run-id: {run_id!r} is not a run id as start prints it (like {RUN_ID_EXAMPLE})"
        )
    return started


def latest_run_id(
    logs: CloudWatchLogsClient, stack: StackOutputs, now: datetime, poll: Poll = DEFAULT_POLL
) -> str:
    """The run id of the enumerator's latest invocation in :data:`RUN_LOOKBACK`."""
    rows, _ = query_logs(
        logs, [stack.enumerator_log_group], now - RUN_LOOKBACK, now, LATEST_RUN_QUERY, poll=poll
    )
    if not rows:
        raise SettingsError(
            f"the enumerator's log: no run in the last {RUN_LOOKBACK.days} days; start "
            "one (mastodon-s3-sync start all) or pass --run-id"
        )
    run_id = rows[0].get("run_id", "")
    if run_id_time(run_id) is None:
        raise SettingsError(
            f"the enumerator's log: its latest run id {run_id!r} holds no start time "
            f"(like {RUN_ID_EXAMPLE}); pass --run-id of the run to follow"
        )
    return run_id
