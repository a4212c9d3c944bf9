"""Logs Insights queries over the functions' logs: start one, wait for it, read its rows.

``status`` finds the latest run this way, and ``missing`` the keys logged as missing or failed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from mastodon_s3_sync.errors import SyncError
from mastodon_s3_sync.ops.stack import DEFAULT_POLL, Poll

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

INSIGHTS_MAX_ROWS = 10_000
"""Logs Insights' largest ``limit``."""

_QUERY_DONE = ("Complete",)
_QUERY_PENDING = ("Scheduled", "Running")


def query_logs(
    logs: CloudWatchLogsClient,
    log_groups: Sequence[str],
    begin: datetime,
    end: datetime,
    query: str,
    *,
    max_rows: int = INSIGHTS_MAX_ROWS,
    poll: Poll = DEFAULT_POLL,
) -> tuple[list[dict[str, str]], bool]:
    """Rows of a Logs Insights query (fields by name), and whether it hit ``max_rows``."""
    query_id = logs.start_query(
        logGroupNames=list(log_groups),
        startTime=int(begin.timestamp()),
        endTime=math.ceil(end.timestamp()),
        queryString=query,
    )["queryId"]
    while True:
        response = logs.get_query_results(queryId=query_id)
        status = response["status"]
        if status in _QUERY_DONE:
            break
        if status not in _QUERY_PENDING:
            raise SyncError(f"the Logs Insights query on {', '.join(log_groups)} ended {status}")
        poll.wait()
    rows = [
        {cell["field"]: cell["value"] for cell in row if "field" in cell and "value" in cell}
        for row in response["results"]
    ]
    return rows, len(rows) >= max_rows
