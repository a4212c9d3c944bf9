"""Operating a deployed serverless run: start it, watch it, redrive its DLQ, list its missing keys.

Everything is found through the CloudFormation outputs of the stack (``infra/stack.py``):
the enumerator function, the queues, the log groups. Progress comes from the CloudWatch
metrics the handlers emit (namespace :data:`METRICS_NAMESPACE`, dimensions ``Type`` and
``service`` = the stack name) and from the queues; missing and failed keys from the
functions' log lines (``key``, ``outcome``, ``reason``, ``run_id``: the copier's, and the
enumerator's for keys it refused to send) through CloudWatch Logs Insights. The metrics
carry no run id: a run's counts are those of its time window, from the time in its id.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from mastodon_s3_sync.config.layers import STACK_SECTION, read_config_file
from mastodon_s3_sync.contract import (
    DEFAULT_STACK_NAME,
    ENUMERATED_METRIC,
    ENUMERATOR_TIMEOUT_SECONDS,
    METRICS_NAMESPACE,
    OUTCOME_METRICS,
    RUN_STARTED_MESSAGE,
    STACK_OUTPUTS,
)
from mastodon_s3_sync.errors import SettingsError, SyncError
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.outcomes import DONE_OUTCOMES, Outcome
from mastodon_s3_sync.storage.retry import REQUEST_RETRIES
from mastodon_s3_sync.transport.lambda_edge import (
    RUN_ID_EXAMPLE,
    EventError,
    continuation_event,
    new_run_id,
    parse_enumerator_event,
    run_id_time,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDataQueryTypeDef
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_sqs import SQSClient

RATE_WINDOW = timedelta(minutes=5)
METRICS_LAG = timedelta(minutes=1)
"""The latest minute is left out of the rate: its metrics are still arriving."""
RUN_LOOKBACK = timedelta(days=14)
"""How far back the enumerator's log is searched for the latest run."""
INSIGHTS_MAX_ROWS = 10_000
"""Logs Insights' largest ``limit``; a window that fills it is split in two and queried again."""
DEFAULT_POLL_SECONDS = 1.0
MOVE_TASK_LISTINGS = 10
"""How often a redrive asks for the move task it started before it gives up: SQS may list
a new task only after a moment (the asks are ``poll_seconds`` apart)."""

_QUERY_DONE = ("Complete",)
_QUERY_PENDING = ("Scheduled", "Running")


@dataclass(frozen=True)
class AwsClients:
    """The AWS clients the operations use, built once."""

    cloudformation: CloudFormationClient
    lambda_: LambdaClient
    sqs: SQSClient
    cloudwatch: CloudWatchClient
    logs: CloudWatchLogsClient


def make_clients(
    region: str | None, profile: str | None = None, endpoint_url: str | None = None
) -> AwsClients:
    """Clients of one session; ``endpoint_url`` sends every API to one emulator (tests)."""
    session = boto3.session.Session(profile_name=profile, region_name=region)
    if session.region_name is None:
        raise SettingsError(
            "--region: no AWS region; pass --region REGION (where the stack is deployed) "
            "or set AWS_REGION or the profile's region"
        )
    retries = REQUEST_RETRIES.botocore_config()
    waits = retries.merge(Config(read_timeout=ENUMERATOR_TIMEOUT_SECONDS + 60))
    return AwsClients(
        cloudformation=session.client("cloudformation", endpoint_url=endpoint_url, config=retries),
        lambda_=session.client("lambda", endpoint_url=endpoint_url, config=waits),
        sqs=session.client("sqs", endpoint_url=endpoint_url, config=retries),
        cloudwatch=session.client("cloudwatch", endpoint_url=endpoint_url, config=retries),
        logs=session.client("logs", endpoint_url=endpoint_url, config=retries),
    )


def configured_stack_name(config: Path | None) -> str:
    """``[stack] stack_name`` of the config file, else :data:`DEFAULT_STACK_NAME`.

    Only the ``[stack]`` table is read: the other sections describe the database and the
    buckets (and a bastion key file) that the operations never touch.
    """
    if config is None:
        return DEFAULT_STACK_NAME
    document = read_config_file(config)
    table = document.get(STACK_SECTION, {})
    if not isinstance(table, dict):
        raise SettingsError(f"{config}: [{STACK_SECTION}] must be a table")
    name = table.get("stack_name", DEFAULT_STACK_NAME)
    if not isinstance(name, str) or not name.strip():
        raise SettingsError(
            f"{config}: [{STACK_SECTION}] stack_name must be the deployed stack's name "
            f"(a non-empty string), or left out for {DEFAULT_STACK_NAME}"
        )
    return name.strip()


@dataclass(frozen=True)
class StackOutputs:
    """What the operations need from the deployed stack."""

    stack_name: str
    enumerator_function: str
    enumerator_log_group: str
    copier_log_group: str
    copy_queue_url: str
    copy_queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    dashboard_url: str


def find_stack(cloudformation: CloudFormationClient, stack_name: str) -> StackOutputs:
    """The stack's outputs; a missing stack or output is an error that names ``--stack``."""
    region = cloudformation.meta.region_name
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ValidationError":
            raise
        raise SettingsError(
            f"--stack {stack_name}: {error.response['Error'].get('Message', 'not found')} in "
            f"{region}; deploy it (cdk deploy), or pass the deployed stack's --stack NAME "
            "and --region"
        ) from None
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}
    absent = [key for key in STACK_OUTPUTS.values() if key not in outputs]
    if absent:
        raise SettingsError(
            f"--stack {stack_name}: the stack ({stack['StackStatus']}) has no output "
            f"{', '.join(absent)}: is it a mastodon-s3-sync stack whose deployment finished? "
            "Deploy it again (cdk deploy), or pass the right --stack NAME"
        )
    return StackOutputs(
        stack_name=stack["StackName"],
        **{name: outputs[key] for name, key in STACK_OUTPUTS.items()},
    )


def run_start(run_id: str) -> datetime:
    """When a run began, from the id given with ``--run-id`` (:func:`new_run_id`'s form).

    The enumerator takes no other form, and the latest run is checked where it is read.
    """
    started = run_id_time(run_id)
    if started is None:
        raise SettingsError(
            f"--run-id: {run_id!r} is not a run id as start prints it (like {RUN_ID_EXAMPLE})"
        )
    return started


# -- start ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StartedRun:
    """The events sent to the enumerator, one per type, and a dry run's answers."""

    run_id: str
    events: tuple[dict[str, Any], ...]
    dry_run_answers: tuple[dict[str, Any], ...] = ()


# -- status --------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeCounts:
    """Objects of one type: enumerated, and processed by outcome (from the metrics)."""

    enumerated: int = 0
    copied: int = 0
    skipped: int = 0
    missing: int = 0
    failed: int = 0

    @property
    def done(self) -> int:
        """Copied, skipped or missing: nothing more will happen to these."""
        return self.copied + self.skipped + self.missing

    @property
    def left(self) -> int:
        """Enumerated and not done (a retried object may be counted done twice: floor 0)."""
        return max(0, self.enumerated - self.done)

    def __add__(self, other: TypeCounts) -> TypeCounts:
        return TypeCounts(*(getattr(self, name) + getattr(other, name) for name in _COUNT_FIELDS))


_COUNT_FIELDS = ("enumerated", "copied", "skipped", "missing", "failed")


@dataclass(frozen=True)
class StatusSnapshot:
    """A run's progress at one moment: what ``status`` prints."""

    stack_name: str
    run_id: str
    started: datetime
    taken: datetime
    counts: Mapping[RecordType, TypeCounts]
    queue_visible: int
    queue_in_flight: int
    dead_letters: int
    rate: float | None
    """Objects done per second over the last :data:`RATE_WINDOW`; None before there is one."""

    @property
    def total(self) -> TypeCounts:
        """All types together."""
        total = TypeCounts()
        for counts in self.counts.values():
            total += counts
        return total

    @property
    def eta_seconds(self) -> float | None:
        """Time to finish what is enumerated at the recent rate; None without a rate."""
        left = sum(counts.left for counts in self.counts.values())
        if left == 0:
            return 0.0
        if not self.rate:
            return None
        return left / self.rate


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


def format_status(snapshot: StatusSnapshot) -> str:
    """The text ``status`` prints for one snapshot (no trailing newline)."""
    started = snapshot.started.astimezone(UTC)
    lines = [
        f"run {snapshot.run_id} on stack {snapshot.stack_name}: started "
        f"{started:%Y-%m-%d %H:%M:%S} UTC, "
        f"{_duration((snapshot.taken - snapshot.started).total_seconds())} ago",
        "",
        f"{'type':<17}" + "".join(f"{name:>11}" for name in (*_COUNT_FIELDS, "left")),
    ]
    rows = [(str(record_type), counts) for record_type, counts in snapshot.counts.items()]
    for name, counts in [*rows, ("all", snapshot.total)]:
        values = [getattr(counts, field_name) for field_name in _COUNT_FIELDS] + [counts.left]
        lines.append(f"{name:<17}" + "".join(f"{value:>11,}" for value in values))
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
    if snapshot.total.failed:
        lines.append("failed counts attempts: a failed object is retried, then dead-lettered")
    return "\n".join(lines)


# -- redrive -------------------------------------------------------------------------


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


# -- missing -------------------------------------------------------------------------


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


LATEST_RUN_QUERY = (
    f"filter message = {json.dumps(RUN_STARTED_MESSAGE)} and ispresent(run_id)\n"
    "| stats min(@timestamp) as started by run_id\n"
    "| sort started desc\n"
    "| limit 1"
)
"""The run whose first ``enumeration started`` line is the latest (a run's continuations
log it again, later): the enumerator logs it with the run id it uses, given or made."""


@dataclass
class Operations:
    """The four operations on one deployed stack."""

    clients: AwsClients
    stack: StackOutputs
    poll_seconds: float = DEFAULT_POLL_SECONDS
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    # -- start

    def start(
        self,
        types: Sequence[str],
        now: datetime,
        *,
        since: str | None = None,
        skip_remote_cache: bool = False,
        dry_run: bool = False,
    ) -> StartedRun:
        """Invoke the enumerator once per type, asynchronously (a dry run waits for counts)."""
        event: dict[str, Any] = {
            "type": list(types),
            "run_id": new_run_id(now),
            "skip_remote_cache": skip_remote_cache,
            "dry_run": dry_run,
        }
        if since is not None:
            event["since"] = since
        try:  # the handler's own check, here before anything is invoked
            request = parse_enumerator_event(event, now)
        except EventError as error:
            raise SettingsError(f"start: {error}") from None
        # The event that runs the request from its cursor: ``since`` made absolute once,
        # so every type's invocation selects from the same moment.
        events = tuple(
            continuation_event(request, replace(request.cursor, types=(record_type,)))
            for record_type in request.cursor.types
        )
        answers = [self._invoke(one, wait=dry_run) for one in events]
        return StartedRun(
            request.run_id, events, tuple(answer for answer in answers if answer is not None)
        )

    def _invoke(self, event: dict[str, Any], *, wait: bool) -> dict[str, Any] | None:
        response = self.clients.lambda_.invoke(
            FunctionName=self.stack.enumerator_function,
            InvocationType="RequestResponse" if wait else "Event",
            Payload=json.dumps(event).encode(),
        )
        if not wait:
            return None
        answer: dict[str, Any] = json.loads(response["Payload"].read() or b"null") or {}
        if "FunctionError" in response or not answer.get("ok"):
            reason = answer.get("error") or answer.get("errorMessage") or "no reason given"
            raise SyncError(f"the enumerator failed for {', '.join(event['type'])}: {reason}")
        return answer

    # -- status

    def latest_run_id(self, now: datetime) -> str:
        """The run id of the enumerator's latest invocation in :data:`RUN_LOOKBACK`."""
        rows, _ = self._insights(
            [self.stack.enumerator_log_group], now - RUN_LOOKBACK, now, LATEST_RUN_QUERY
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

    def status(self, run_id: str, now: datetime) -> StatusSnapshot:
        """Counts per type over the run's window, the queues, and the recent rate."""
        started = run_start(run_id)
        begin = started.replace(second=0, microsecond=0)
        end = _ceil_minute(now)
        counts = self._type_counts(begin, end, _period(begin, end, now))
        rate_end = now.replace(second=0, microsecond=0) - METRICS_LAG
        rate_begin = max(begin, rate_end - RATE_WINDOW)
        rate = None
        if rate_end > rate_begin:
            seconds = (rate_end - rate_begin).total_seconds()
            recent = self._type_counts(rate_begin, rate_end, int(seconds), DONE_OUTCOMES)
            rate = sum(counts.done for counts in recent.values()) / seconds
        queue = self._queue_depth(
            self.stack.copy_queue_url,
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        )
        dead = self._queue_depth(self.stack.dead_letter_queue_url, "ApproximateNumberOfMessages")
        return StatusSnapshot(
            stack_name=self.stack.stack_name,
            run_id=run_id,
            started=started,
            taken=now,
            counts=counts,
            queue_visible=queue[0],
            queue_in_flight=queue[1],
            dead_letters=dead[0],
            rate=rate,
        )

    def _type_counts(
        self,
        begin: datetime,
        end: datetime,
        period: int,
        outcomes: Sequence[Outcome] | None = None,
    ) -> dict[RecordType, TypeCounts]:
        """Sums per type and metric over [begin, end), one GetMetricData call (paged)."""
        metrics = {} if outcomes is not None else {"e": ENUMERATED_METRIC}
        for index, outcome in enumerate(outcomes or OUTCOME_METRICS):
            metrics[f"o{index}"] = OUTCOME_METRICS[outcome]
        queries: list[MetricDataQueryTypeDef] = []
        wanted: dict[str, tuple[RecordType, str]] = {}
        for type_index, record_type in enumerate(RecordType):
            for prefix, metric in metrics.items():
                query_id = f"{prefix}_{type_index}"
                wanted[query_id] = (record_type, metric)
                queries.append(self._metric_query(query_id, metric, record_type, period))
        sums = {query_id: 0.0 for query_id in wanted}
        pages = self.clients.cloudwatch.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries, StartTime=begin, EndTime=end
        )
        for page in pages:
            for result in page["MetricDataResults"]:
                sums[result["Id"]] += sum(result.get("Values", []))
        names = {name: outcome.value for outcome, name in OUTCOME_METRICS.items()}
        names[ENUMERATED_METRIC] = "enumerated"
        counts: dict[RecordType, dict[str, int]] = {record_type: {} for record_type in RecordType}
        for query_id, (record_type, metric) in wanted.items():
            counts[record_type][names[metric]] = round(sums[query_id])
        return {record_type: TypeCounts(**values) for record_type, values in counts.items()}

    def _metric_query(
        self, query_id: str, metric: str, record_type: RecordType, period: int
    ) -> MetricDataQueryTypeDef:
        return {
            "Id": query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": METRICS_NAMESPACE,
                    "MetricName": metric,
                    "Dimensions": [
                        {"Name": "Type", "Value": str(record_type)},
                        {"Name": "service", "Value": self.stack.stack_name},
                    ],
                },
                "Period": period,
                "Stat": "Sum",
            },
        }

    def _queue_depth(self, queue_url: str, *attributes: str) -> list[int]:
        values = self.clients.sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=list(attributes),  # type: ignore[arg-type]
        )["Attributes"]
        return [int(values.get(name, 0)) for name in attributes]  # type: ignore[call-overload]

    # -- redrive

    def redrive(
        self, on_progress: Callable[[MoveTask], None], max_per_second: int | None = None
    ) -> MoveTask:
        """Move the DLQ's messages back to the copy queue; follow the task to its end."""
        (waiting,) = self._queue_depth(
            self.stack.dead_letter_queue_url, "ApproximateNumberOfMessages"
        )
        if waiting == 0:
            raise RedriveRefused("the dead-letter queue is empty: nothing to redrive")
        earlier = self._move_tasks(10)
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
        self.clients.sqs.start_message_move_task(
            SourceArn=self.stack.dead_letter_queue_arn,
            DestinationArn=self.stack.copy_queue_arn,
            **rate,
        )
        previous = earlier[0].started if earlier else None
        while True:
            task = self._started_move_task(previous)
            on_progress(task)
            if task.status == "COMPLETED":
                return task
            if task.status in ("FAILED", "CANCELLED"):
                raise SyncError(
                    f"the redrive {task.status.lower()} after {task.moved:,} messages"
                    + (f": {task.failure_reason}" if task.failure_reason else "")
                )
            self.sleep(self.poll_seconds)

    def _started_move_task(self, previous: int | None) -> MoveTask:
        """The task just started: the latest listed (one runs at a time per queue) once it
        is no longer the one that was latest before (``previous``, its start time)."""
        for attempt in range(1, MOVE_TASK_LISTINGS + 1):
            listed = self._move_tasks(1)
            if listed and (previous is None or listed[0].started != previous):
                return listed[0]
            if attempt < MOVE_TASK_LISTINGS:
                self.sleep(self.poll_seconds)
        raise SyncError(
            f"the redrive was started, but SQS listed no new move task for the dead-letter "
            f"queue in {MOVE_TASK_LISTINGS} tries; follow it with: aws sqs "
            f"list-message-move-tasks --source-arn {self.stack.dead_letter_queue_arn}"
        )

    def _move_tasks(self, how_many: int) -> list[MoveTask]:
        results = self.clients.sqs.list_message_move_tasks(
            SourceArn=self.stack.dead_letter_queue_arn, MaxResults=how_many
        )["Results"]
        return [MoveTask.from_api(result) for result in results]

    # -- missing

    def logged_keys(
        self,
        begin: datetime,
        end: datetime,
        *,
        run_id: str | None = None,
        outcomes: Sequence[Outcome] = (Outcome.MISSING,),
        max_rows: int = INSIGHTS_MAX_ROWS,
    ) -> LoggedKeys:
        """Keys logged with these outcomes, latest line per key, sorted by key: the copier's
        lines, and the enumerator's for the keys it refused to send (``failed``)."""
        query = logged_keys_query(outcomes, run_id, max_rows)
        log_groups = [self.stack.copier_log_group, self.stack.enumerator_log_group]
        latest: dict[str, LoggedKey] = {}
        complete = True
        windows = [(begin, end)]
        queries = 0
        while windows:
            first, last = windows.pop(0)
            rows, full = self._insights(log_groups, first, last, query, max_rows)
            queries += 1
            if full and last - first > timedelta(seconds=1):
                middle = first + (last - first) / 2
                windows[:0] = [(first, middle), (middle, last)]
                continue
            complete = complete and not full
            for row in rows:
                latest[row["key"]] = LoggedKey(
                    row["key"], row.get("outcome", ""), _one_line(row.get("reason", ""))
                )
        return LoggedKeys(sorted(latest.values(), key=lambda k: k.key), complete, queries)

    def _insights(
        self,
        log_groups: Sequence[str],
        begin: datetime,
        end: datetime,
        query: str,
        max_rows: int = INSIGHTS_MAX_ROWS,
    ) -> tuple[list[dict[str, str]], bool]:
        """Rows of a Logs Insights query (fields by name), and whether it hit ``max_rows``."""
        query_id = self.clients.logs.start_query(
            logGroupNames=list(log_groups),
            startTime=int(begin.timestamp()),
            endTime=math.ceil(end.timestamp()),
            queryString=query,
        )["queryId"]
        while True:
            response = self.clients.logs.get_query_results(queryId=query_id)
            status = response["status"]
            if status in _QUERY_DONE:
                break
            if status not in _QUERY_PENDING:
                raise SyncError(
                    f"the Logs Insights query on {', '.join(log_groups)} ended {status}"
                )
            self.sleep(self.poll_seconds)
        rows = [
            {cell["field"]: cell["value"] for cell in row if "field" in cell and "value" in cell}
            for row in response["results"]
        ]
        return rows, len(rows) >= max_rows


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


def _period(begin: datetime, end: datetime, now: datetime) -> int:
    """One period over the whole window, in the step CloudWatch keeps for data that old."""
    age = now - begin
    step = 60 if age <= timedelta(days=15) else 300 if age <= timedelta(days=63) else 3600
    return math.ceil((end - begin).total_seconds() / step) * step
