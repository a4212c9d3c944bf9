"""The serverless stack: enumerator -> copy queue (+ DLQ) -> copiers, with alarms and a dashboard.

It states the Lambda + SQS lessons as code (see the README's deploy guide), one part per
module:

- :mod:`infra.queues`: the copy queue's visibility timeout follows the copier timeout; a
  message that keeps failing waits in a dead-letter queue that keeps it longer; an
  enumerator event whose retries are spent waits, with its cursor, in a failed-events queue;
- :mod:`infra.lambdas`: the copiers are capped by the event source's maximum concurrency
  and never run in a VPC; only the enumerator may sit in the database's VPC;
- :mod:`infra.grants`: each function has its own least-privilege role;
- :mod:`infra.monitoring`: alarms on the dead-letter queue, the failed-events queue and the
  oldest message, and a
  dashboard of the handlers' metrics;
- :mod:`infra.findings`: the cdk-nag findings accepted, with their reasons.

No physical names are hard-coded. The outputs are what ``start``, ``status``, ``redrive`` and
``missing`` look the stack up by (:data:`mastodon_s3_sync.contract.STACK_OUTPUTS`).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Stack, Tags
from constructs import Construct

from mastodon_s3_sync.contract import STACK_OUTPUTS

from .bundling import build_asset
from .config import StackConfig
from .findings import acknowledge_findings
from .grants import grant_copier, grant_enumerator, role
from .lambdas import (
    AssetBuilder,
    copier_function,
    enumerator_function,
    log_group,
    send_failures_to,
)
from .monitoring import alarm_topic, alarms, dashboard
from .queues import failed_events_queue, queues


class MastodonS3SyncStack(Stack):
    """Queues, the enumerator and copier functions, alarms and a dashboard for one migration."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        asset_builder: AssetBuilder = build_asset,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        Tags.of(self).add("project", "mastodon-s3-sync")

        self.dead_letter_queue, self.copy_queue = queues(self, config)
        self.failed_events_queue = failed_events_queue(self)
        self.enumerator_logs = log_group(self, "EnumeratorLogs")
        self.copier_logs = log_group(self, "CopierLogs")
        self.enumerator = enumerator_function(
            self, config, asset_builder, self.copy_queue, self.enumerator_logs
        )
        grant_enumerator(self, self.enumerator, self.copy_queue, config)
        send_failures_to(self.enumerator, self.failed_events_queue)
        self.copier = copier_function(
            self, config, asset_builder, self.copy_queue, self.copier_logs
        )
        grant_copier(self, self.copier, config)
        self.alarm_topic = alarm_topic(self, config.alarm_email)
        self.alarms = alarms(
            self,
            self.copy_queue,
            self.dead_letter_queue,
            self.failed_events_queue,
            config.queue_age_alarm_hours,
            self.alarm_topic,
        )
        self.dashboard = dashboard(
            self,
            self.stack_name,
            (self.enumerator, self.copier),
            (self.copy_queue, self.dead_letter_queue),
            self.alarms,
        )
        self._outputs()
        acknowledge_findings(
            config, self.enumerator, self.copier, self.dead_letter_queue, self.failed_events_queue
        )

    def _outputs(self) -> None:
        values = {
            STACK_OUTPUTS["enumerator_function"]: self.enumerator.function_name,
            "CopierFunctionName": self.copier.function_name,
            STACK_OUTPUTS["enumerator_log_group"]: self.enumerator_logs.log_group_name,
            STACK_OUTPUTS["copier_log_group"]: self.copier_logs.log_group_name,
            # For bucket policies, when a bucket belongs to another AWS account.
            "CopierRoleArn": role(self.copier).role_arn,
            STACK_OUTPUTS["copy_queue_url"]: self.copy_queue.queue_url,
            STACK_OUTPUTS["copy_queue_arn"]: self.copy_queue.queue_arn,
            STACK_OUTPUTS["dead_letter_queue_url"]: self.dead_letter_queue.queue_url,
            STACK_OUTPUTS["dead_letter_queue_arn"]: self.dead_letter_queue.queue_arn,
            STACK_OUTPUTS["failed_events_queue_url"]: self.failed_events_queue.queue_url,
            STACK_OUTPUTS["failed_events_queue_arn"]: self.failed_events_queue.queue_arn,
            STACK_OUTPUTS["dashboard_url"]: (
                f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home?"
                f"region={Aws.REGION}#dashboards:name={self.dashboard.dashboard_name}"
            ),
        }
        if self.alarm_topic is not None:
            values["AlarmTopicArn"] = self.alarm_topic.topic_arn
        for name, value in values.items():
            CfnOutput(self, name, value=value)
