"""``status``: a run's progress, from the metrics the functions emit and from the queues.

The handlers emit CloudWatch metrics (namespace ``METRICS_NAMESPACE``, dimensions the type
and ``service`` = the stack name) that carry no run id: a run's counts are those of its time
window, from the time in its id. The copy queue and the DLQ tell what is still on its way.
An enumeration that stopped shows as an event in the failed-events queue, or as a stall:
enumerations begun and not finished (the enumerator's chain metrics), and no enumerator
progress for :data:`STALL_AFTER`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mastodon_s3_sync.contract import (
    CHAINS_FINISHED_METRIC,
    CHAINS_STARTED_METRIC,
    ENUMERATED_METRIC,
    METRICS_NAMESPACE,
    OUTCOME_METRICS,
    SERVICE_DIMENSION,
    TYPE_DIMENSION,
)
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.mastodon.models import TYPE_WIDTH
from mastodon_s3_sync.ops.failed_events import FailedEvent, peek_failed_events, resume_command
from mastodon_s3_sync.ops.runs import run_start
from mastodon_s3_sync.ops.stack import StackOutputs, queue_depth
from mastodon_s3_sync.outcomes import DONE_OUTCOMES, Outcome, Tally

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDataQueryTypeDef
    from mypy_boto3_sqs import SQSClient

RATE_WINDOW = timedelta(minutes=5)
"""The recent objects done per second are measured over this (and so is the ETA)."""
METRICS_LAG = timedelta(minutes=1)
"""The latest minute is left out of the rate: its metrics are still arriving."""
STALL_AFTER = timedelta(minutes=20)
"""No enumerator progress for this long, with an enumeration not finished, is a stall: an
invocation emits its metrics when it ends, at most 15 minutes after it began."""


@dataclass(frozen=True)
class EnumerationHealth:
    """Whether the run's enumeration goes on: unfinished chains, recent progress, failures."""

    unfinished: int = 0
    """Enumerations begun and not finished, over the run's window."""
    quiet: bool = False
    """No enumerator progress in the last :data:`STALL_AFTER` (of a run older than that)."""
    failed_events: int | None = 0
    """Events in the failed-events queue; None when the stack has none."""
    shown: tuple[FailedEvent, ...] = ()
    """Some of those events, with their cursors."""

    @property
    def stalled(self) -> bool:
        """An enumeration not finished, and nothing moved for :data:`STALL_AFTER`."""
        return self.unfinished > 0 and self.quiet


@dataclass(frozen=True)
class TypeProgress:
    """Objects of one type: enumerated, and their outcomes so far (from the metrics)."""

    enumerated: int = 0
    outcomes: Tally = field(default_factory=Tally)

    @property
    def done(self) -> int:
        """Copied, skipped, missing or withheld: nothing more will happen to these."""
        return sum(self.outcomes.count(outcome) for outcome in DONE_OUTCOMES)

    @property
    def left(self) -> int:
        """Enumerated and not done (a retried object may be counted done twice: floor 0)."""
        return max(0, self.enumerated - self.done)


@dataclass(frozen=True)
class StatusSnapshot:
    """A run's progress at one moment: what ``status`` prints."""

    stack_name: str
    run_id: str
    started: datetime
    taken: datetime
    progress: Mapping[RecordType, TypeProgress]
    queue_visible: int
    queue_in_flight: int
    dead_letters: int
    rate: float | None
    """Objects done per second over the last :data:`RATE_WINDOW`; None before there is one."""
    enumeration: EnumerationHealth = field(default_factory=EnumerationHealth)

    @property
    def total(self) -> TypeProgress:
        """All types together."""
        outcomes = Tally()
        for one in self.progress.values():
            outcomes += one.outcomes
        return TypeProgress(sum(one.enumerated for one in self.progress.values()), outcomes)

    @property
    def eta_seconds(self) -> float | None:
        """Time to finish what is enumerated at the recent rate; None without a rate."""
        left = sum(one.left for one in self.progress.values())
        if left == 0:
            return 0.0
        if not self.rate:
            return None
        return left / self.rate


def format_status(snapshot: StatusSnapshot) -> str:
    """The text ``status`` prints for one snapshot (no trailing newline)."""
    started = snapshot.started.astimezone(UTC)
    lines = [
        f"run {snapshot.run_id} on stack {snapshot.stack_name}: started "
        f"{started:%Y-%m-%d %H:%M:%S} UTC, "
        f"{_duration((snapshot.taken - snapshot.started).total_seconds())} ago",
        "",
        f"{'type':<{TYPE_WIDTH}}"
        + "".join(f"{name:>11}" for name in ("enumerated", *Outcome, "left")),
    ]
    rows = [(str(record_type), one) for record_type, one in snapshot.progress.items()]
    for name, one in [*rows, ("all", snapshot.total)]:
        values = [one.enumerated, *(one.outcomes.count(outcome) for outcome in Outcome), one.left]
        lines.append(f"{name:<{TYPE_WIDTH}}" + "".join(f"{value:>11,}" for value in values))
    lines.append("")
    lines.append(
        f"copy queue: {snapshot.queue_visible:,} messages waiting, "
        f"{snapshot.queue_in_flight:,} in flight"
    )
    dead = f"dead-letter queue: {snapshot.dead_letters:,} messages"
    if snapshot.dead_letters:
        dead += " (their keys: missing --failed; then: redrive)"
    lines.append(dead)
    window = _duration(RATE_WINDOW.total_seconds())
    rate = (
        f"rate: {snapshot.rate:,.1f} objects/s (last {window})"
        if snapshot.rate
        else f"rate: no object done in the last {window}"
    )
    eta = snapshot.eta_seconds
    left = snapshot.total.left
    if eta == 0:
        finish = "every enumerated object is done"
    elif eta is None:
        finish = f"ETA unknown ({left:,} objects left)"
    else:
        finish = f"ETA {_duration(eta)} ({left:,} objects left)"
    lines.append(f"{rate}; {finish}")
    if snapshot.total.outcomes.failed:
        lines.append("failed counts attempts: a failed object is retried, then dead-lettered")
    lines += _enumeration_lines(snapshot.stack_name, snapshot.enumeration)
    return "\n".join(lines)


def _enumeration_lines(stack_name: str, health: EnumerationHealth) -> list[str]:
    lines = []
    if health.stalled:
        lines.append(
            f"enumeration stalled: {health.unfinished:,} not finished and no progress for "
            f"{_duration(STALL_AFTER.total_seconds())}"
            + ("" if health.failed_events else " (Lambda may still retry it; see its log)")
        )
    elif health.unfinished:
        lines.append(f"enumeration: {health.unfinished:,} still going")
    if health.failed_events is None:
        lines.append(
            "failed-events queue: none in this stack (deployed by an earlier version; "
            "deploy again so that a failed enumeration can be resumed)"
        )
    elif health.failed_events:
        lines.append(
            f"failed-events queue: {health.failed_events:,} events: an enumeration stopped at"
        )
        lines += [f"  {event.cursor()}: {event.error}" for event in health.shown]
        lines.append(f"resume it: {resume_command(stack_name)}")
    return lines


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def read_status(
    cloudwatch: CloudWatchClient,
    sqs: SQSClient,
    stack: StackOutputs,
    run_id: str,
    now: datetime,
) -> StatusSnapshot:
    """Counts per type over the run's window, the queues, and the recent rate."""
    started = run_start(run_id)
    begin = started.replace(second=0, microsecond=0)
    end = _ceil_minute(now)
    progress = _progress(cloudwatch, stack, begin, end, _period(begin, end, now))
    rate_end = now.replace(second=0, microsecond=0) - METRICS_LAG
    rate_begin = max(begin, rate_end - RATE_WINDOW)
    rate = None
    if rate_end > rate_begin:
        seconds = (rate_end - rate_begin).total_seconds()
        recent = _progress(cloudwatch, stack, rate_begin, rate_end, int(seconds), DONE_OUTCOMES)
        rate = sum(one.done for one in recent.values()) / seconds
    queue_visible, queue_in_flight = queue_depth(
        sqs,
        stack.copy_queue_url,
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
    )
    (dead_letters,) = queue_depth(sqs, stack.dead_letter_queue_url, "ApproximateNumberOfMessages")
    enumeration = _enumeration(cloudwatch, sqs, stack, started, now, begin, end)
    return StatusSnapshot(
        stack_name=stack.stack_name,
        run_id=run_id,
        started=started,
        taken=now,
        progress=progress,
        queue_visible=queue_visible,
        queue_in_flight=queue_in_flight,
        dead_letters=dead_letters,
        rate=rate,
        enumeration=enumeration,
    )


def _enumeration(
    cloudwatch: CloudWatchClient,
    sqs: SQSClient,
    stack: StackOutputs,
    started: datetime,
    now: datetime,
    begin: datetime,
    end: datetime,
) -> EnumerationHealth:
    chains = (CHAINS_STARTED_METRIC, CHAINS_FINISHED_METRIC)
    counted = _sums(cloudwatch, stack, chains, begin, end, _period(begin, end, now))
    unfinished = max(0, round(counted[CHAINS_STARTED_METRIC] - counted[CHAINS_FINISHED_METRIC]))
    quiet = False
    if unfinished and now - started >= STALL_AFTER:
        recent_begin = now.replace(second=0, microsecond=0) - STALL_AFTER
        period = int((end - recent_begin).total_seconds())
        recent = _sums(cloudwatch, stack, (ENUMERATED_METRIC, *chains), recent_begin, end, period)
        quiet = not any(recent.values())
    queue = stack.failed_events_queue_url
    if queue is None:
        return EnumerationHealth(unfinished, quiet, None)
    (failed,) = queue_depth(sqs, queue, "ApproximateNumberOfMessages")
    shown = tuple(peek_failed_events(sqs, queue)) if failed else ()
    return EnumerationHealth(unfinished, quiet, failed, shown)


def _sums(
    cloudwatch: CloudWatchClient,
    stack: StackOutputs,
    metrics: Sequence[str],
    begin: datetime,
    end: datetime,
    period: int,
) -> dict[str, float]:
    """Each metric summed over every type and [begin, end)."""
    queries = [
        _metric_query(f"m{index}_{type_index}", metric, record_type, stack.stack_name, period)
        for index, metric in enumerate(metrics)
        for type_index, record_type in enumerate(RecordType)
    ]
    sums = dict.fromkeys(metrics, 0.0)
    pages = cloudwatch.get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=begin, EndTime=end
    )
    for page in pages:
        for result in page["MetricDataResults"]:
            metric = metrics[int(result["Id"][1:].split("_")[0])]
            sums[metric] += sum(result.get("Values", []))
    return sums


def _progress(
    cloudwatch: CloudWatchClient,
    stack: StackOutputs,
    begin: datetime,
    end: datetime,
    period: int,
    outcomes: Sequence[Outcome] | None = None,
) -> dict[RecordType, TypeProgress]:
    """Sums per type and metric over [begin, end), one GetMetricData call (paged); without
    ``outcomes``, every outcome and the enumerated count."""
    metrics = {} if outcomes is not None else {"e": ENUMERATED_METRIC}
    for index, outcome in enumerate(outcomes or OUTCOME_METRICS):
        metrics[f"o{index}"] = OUTCOME_METRICS[outcome]
    queries: list[MetricDataQueryTypeDef] = []
    wanted: dict[str, tuple[RecordType, str]] = {}
    for type_index, record_type in enumerate(RecordType):
        for prefix, metric in metrics.items():
            query_id = f"{prefix}_{type_index}"
            wanted[query_id] = (record_type, metric)
            queries.append(_metric_query(query_id, metric, record_type, stack.stack_name, period))
    sums = dict.fromkeys(wanted, 0.0)
    pages = cloudwatch.get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=begin, EndTime=end
    )
    for page in pages:
        for result in page["MetricDataResults"]:
            sums[result["Id"]] += sum(result.get("Values", []))
    outcome_of = {name: outcome for outcome, name in OUTCOME_METRICS.items()}
    enumerated = dict.fromkeys(RecordType, 0)
    tallies = {record_type: Tally() for record_type in RecordType}
    for query_id, (record_type, metric) in wanted.items():
        count = round(sums[query_id])
        if metric == ENUMERATED_METRIC:
            enumerated[record_type] = count
        else:  # the tally's fields are named by the outcomes
            setattr(tallies[record_type], outcome_of[metric].value, count)
    return {
        record_type: TypeProgress(enumerated[record_type], tallies[record_type])
        for record_type in RecordType
    }


def _metric_query(
    query_id: str, metric: str, record_type: RecordType, service: str, period: int
) -> MetricDataQueryTypeDef:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": METRICS_NAMESPACE,
                "MetricName": metric,
                "Dimensions": [
                    {"Name": TYPE_DIMENSION, "Value": str(record_type)},
                    {"Name": SERVICE_DIMENSION, "Value": service},
                ],
            },
            "Period": period,
            "Stat": "Sum",
        },
    }


def _ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


def _period(begin: datetime, end: datetime, now: datetime) -> int:
    """One period over the whole window, in the step CloudWatch keeps for data that old."""
    age = now - begin
    step = 60 if age <= timedelta(days=15) else 300 if age <= timedelta(days=63) else 3600
    return math.ceil((end - begin).total_seconds() / step) * step
