"""What an operator watches during a run: three alarms, and a dashboard.

The alarms fire when the dead-letter queue or the failed-events queue holds a message and
when the oldest copy message is too old. The dashboard shows the handlers' own metrics
(names, namespace and dimension from :mod:`mastodon_s3_sync.contract`), the queues and the
functions' health.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from mastodon_s3_sync import Outcome, RecordType
from mastodon_s3_sync.contract import (
    BYTES_COPIED_METRIC,
    ENUMERATED_METRIC,
    METRICS_NAMESPACE,
    OUTCOME_METRICS,
    SERVICE_DIMENSION,
    TYPE_DIMENSION,
)

from .queues import COPY_QUEUE_RETENTION

DASHBOARD_PERIOD = Duration.minutes(5)
OUTCOME_TITLES = {
    Outcome.COPIED: "Objects copied",
    Outcome.SKIPPED: "Objects skipped (already there)",
    Outcome.MISSING: "Objects missing at the source",
    Outcome.WITHHELD: "Objects withheld (private, destination keeps no ACL)",
    Outcome.FAILED: "Objects failed",
}
"""The dashboard's title of each outcome metric of the copier."""


def alarm_topic(scope: Construct, email: str | None) -> sns.Topic | None:
    """The topic that mails ``email`` when an alarm fires; None without an address."""
    if email is None:
        return None
    topic = sns.Topic(scope, "AlarmTopic", enforce_ssl=True)
    topic.add_subscription(subscriptions.EmailSubscription(email))
    return topic


def alarms(
    scope: Construct,
    copy_queue: sqs.Queue,
    dead_letter_queue: sqs.Queue,
    failed_events_queue: sqs.Queue,
    queue_age_alarm_hours: int,
    topic: sns.Topic | None,
) -> list[cloudwatch.Alarm]:
    """A message in the dead-letter queue or the failed-events queue; a copy message older
    than the configured hours."""
    dead_letters = cloudwatch.Alarm(
        scope,
        "DeadLetterQueueNotEmpty",
        alarm_description=(
            "Messages failed max_receive_count times and wait in the DLQ: read the "
            "copier's log for their keys, fix the cause, then redrive the DLQ."
        ),
        metric=dead_letter_queue.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(1), statistic="Maximum"
        ),
        threshold=0,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    failed_events = cloudwatch.Alarm(
        scope,
        "EnumerationFailed",
        alarm_description=(
            "An enumerator invocation failed after its retries: the run stopped at the "
            "cursor of the event in the failed-events queue. status shows it; fix the cause, "
            "then: mastodon-s3-sync start --resume."
        ),
        metric=failed_events_queue.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(1), statistic="Maximum"
        ),
        threshold=0,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    stalled = cloudwatch.Alarm(
        scope,
        "CopyQueueStalled",
        alarm_description=(
            f"A copy queue message has waited over {queue_age_alarm_hours} h: "
            "copiers are not keeping up or not running (the queue drops messages "
            f"after {COPY_QUEUE_RETENTION.to_days()} days)."
        ),
        metric=copy_queue.metric_approximate_age_of_oldest_message(
            period=Duration.minutes(5), statistic="Maximum"
        ),
        threshold=queue_age_alarm_hours * 3600,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    found = [dead_letters, failed_events, stalled]
    if topic is not None:
        for alarm in found:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
    return found


def outcome_metric(service: str, name: str, record_type: RecordType) -> cloudwatch.Metric:
    """A handler metric (Sum per period) of one type, as Powertools emits it for ``service``."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={TYPE_DIMENSION: str(record_type), SERVICE_DIMENSION: service},
        statistic="Sum",
        period=DASHBOARD_PERIOD,
        label=str(record_type),
    )


def _per_type(service: str, name: str, title: str) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(
        title=title,
        left=[outcome_metric(service, name, record_type) for record_type in RecordType],
        width=8,
        height=6,
    )


def _total(service: str, name: str, label: str) -> cloudwatch.MathExpression:
    # Expression ids are unique across the widget: one set per metric name.
    metrics = {
        f"{name[0].lower()}{name[1:]}{index}": outcome_metric(service, name, record_type)
        for index, record_type in enumerate(RecordType)
    }
    return cloudwatch.MathExpression(
        expression="+".join(f"FILL({key}, 0)" for key in metrics),
        using_metrics=metrics,
        label=label,
    )


def dashboard(
    scope: Construct,
    service: str,
    functions: tuple[lambda_.Function, lambda_.Function],
    queues: tuple[sqs.Queue, sqs.Queue],
    shown_alarms: Sequence[cloudwatch.Alarm],
) -> cloudwatch.Dashboard:
    """Objects and bytes per outcome and type; the queues; the functions' health.

    ``functions`` are the enumerator and the copier, ``queues`` the copy queue and its
    dead-letter queue.
    """
    enumerator, copier = functions
    queue, dead_letters = queues
    counted = (
        *((OUTCOME_METRICS[outcome], title) for outcome, title in OUTCOME_TITLES.items()),
        (BYTES_COPIED_METRIC, "Bytes copied"),
        (ENUMERATED_METRIC, "Objects enumerated"),
    )
    board = cloudwatch.Dashboard(scope, "Dashboard")
    board.add_widgets(
        cloudwatch.TextWidget(
            markdown=(
                "## mastodon-s3-sync\n"
                f"Start a run: invoke `{enumerator.function_name}` with "
                '`{"type": "all"}`. Counts per type, summed per '
                f"{DASHBOARD_PERIOD.to_minutes()} minutes; totals over the dashboard's "
                "time range."
            ),
            width=24,
            height=2,
        )
    )
    board.add_widgets(
        cloudwatch.SingleValueWidget(
            title="Totals over the time range",
            metrics=[_total(service, name, title.split(" (")[0]) for name, title in counted],
            set_period_to_time_range=True,
            width=24,
            height=4,
        )
    )
    board.add_widgets(*(_per_type(service, name, title) for name, title in counted))
    board.add_widgets(
        cloudwatch.GraphWidget(
            title="Copy queue",
            left=[
                queue.metric_approximate_number_of_messages_visible(label="visible"),
                queue.metric_approximate_number_of_messages_not_visible(label="in flight"),
            ],
            right=[queue.metric_approximate_age_of_oldest_message(label="oldest message (s)")],
            width=8,
            height=6,
        ),
        cloudwatch.GraphWidget(
            title="Dead-letter queue",
            left=[
                dead_letters.metric_approximate_number_of_messages_visible(
                    label="messages", statistic="Maximum"
                )
            ],
            width=8,
            height=6,
        ),
        cloudwatch.AlarmStatusWidget(alarms=list(shown_alarms), width=8, height=6),
    )
    board.add_widgets(
        cloudwatch.GraphWidget(
            title="Copier invocations, errors, throttles",
            left=[
                copier.metric_invocations(label="invocations"),
                copier.metric_errors(label="errors"),
                copier.metric_throttles(label="throttles"),
            ],
            right=[copier.metric("ConcurrentExecutions", statistic="Maximum", label="concurrent")],
            width=8,
            height=6,
        ),
        cloudwatch.GraphWidget(
            title="Copier duration",
            left=[
                copier.metric_duration(statistic="p50", label="p50"),
                copier.metric_duration(statistic="Maximum", label="max"),
            ],
            width=8,
            height=6,
        ),
        cloudwatch.GraphWidget(
            title="Enumerator invocations, errors",
            left=[
                enumerator.metric_invocations(label="invocations"),
                enumerator.metric_errors(label="errors"),
            ],
            width=8,
            height=6,
        ),
    )
    return board
