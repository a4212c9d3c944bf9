"""``missing``: the keys the functions logged as missing (or failed), read back from their logs.

The copier logs one line per missing or failed key, and the enumerator one per key it refused
to send (``key``, ``outcome``, ``reason``, ``run_id``); a Logs Insights query over both log
groups reads them. Logs Insights returns at most :data:`INSIGHTS_MAX_ROWS` rows per query, so
a window that fills it is split in two and queried again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mastodon_s3_sync.ops.insights import INSIGHTS_MAX_ROWS, query_logs
from mastodon_s3_sync.ops.runs import run_start
from mastodon_s3_sync.ops.stack import DEFAULT_POLL, Poll, StackOutputs
from mastodon_s3_sync.outcomes import Outcome

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

SMALLEST_WINDOW = timedelta(seconds=1)
"""Logs Insights' time resolution: a window this short that still fills the limit is not split."""


@dataclass(frozen=True)
class LoggedKey:
    """A key logged as missing or failed (by the copier, or refused by the enumerator),
    with the latest reason."""

    key: str
    outcome: str
    reason: str


@dataclass(frozen=True)
class LoggedKeys:
    """What ``missing`` found, and whether the log had more than could be read."""

    keys: list[LoggedKey]
    complete: bool = True
    queries: int = 0


def logged_keys_query(
    outcomes: Sequence[Outcome], run_id: str | None, limit: int = INSIGHTS_MAX_ROWS
) -> str:
    """The Logs Insights query over the ``object missing/failed`` lines of both functions."""
    names = ", ".join(json.dumps(outcome.value) for outcome in outcomes)
    condition = f"outcome in [{names}]"
    if run_id is not None:
        run_start(run_id)  # checked: the id goes into the query
        condition += f" and run_id = {json.dumps(run_id)}"
    return (
        "fields @timestamp, key, outcome, reason\n"
        f"| filter {condition}\n"
        "| sort @timestamp asc\n"
        f"| limit {limit}"
    )


def logged_keys(
    logs: CloudWatchLogsClient,
    stack: StackOutputs,
    begin: datetime,
    end: datetime,
    *,
    run_id: str | None = None,
    outcomes: Sequence[Outcome] = (Outcome.MISSING,),
    max_rows: int = INSIGHTS_MAX_ROWS,
    poll: Poll = DEFAULT_POLL,
) -> LoggedKeys:
    """Keys logged with these outcomes, latest line per key, sorted by key: the copier's
    lines, and the enumerator's for the keys it refused to send (``failed``)."""
    query = logged_keys_query(outcomes, run_id, max_rows)
    log_groups = [stack.copier_log_group, stack.enumerator_log_group]
    latest: dict[str, LoggedKey] = {}
    complete = True
    windows = [(begin, end)]
    queries = 0
    while windows:
        first, last = windows.pop(0)
        rows, full = query_logs(logs, log_groups, first, last, query, max_rows=max_rows, poll=poll)
        queries += 1
        if full and last - first > SMALLEST_WINDOW:
            middle = first + (last - first) / 2
            windows[:0] = [(first, middle), (middle, last)]
            continue
        complete = complete and not full
        for row in rows:
            latest[row["key"]] = LoggedKey(
                row["key"], row.get("outcome", ""), _one_line(row.get("reason", ""))
            )
    return LoggedKeys(sorted(latest.values(), key=lambda k: k.key), complete, queries)


def _one_line(text: str) -> str:
    return " ".join(text.split())
