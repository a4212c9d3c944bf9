"""The serverless stack: enumerator -> copy queue (+ DLQ) -> copiers, with alarms and a dashboard.

It states the Lambda + SQS lessons as code (see the README's deploy guide):

- the copy queue's visibility timeout is :data:`VISIBILITY_TIMEOUT_FACTOR` times the copier
  timeout; a message that fails ``max_receive_count`` times goes to a DLQ that keeps it
  longer than the queue would (:data:`DEAD_LETTER_RETENTION` > :data:`COPY_QUEUE_RETENTION`);
- the copiers are capped by the event source's *maximum concurrency* (throttling would
  send valid messages to the DLQ); reserved concurrency, when on, is never below it;
- the copier runs outside any VPC, so media bytes never pass a NAT gateway; only the
  enumerator may sit in the database's VPC;
- each function has its own role: the copier reads the source and writes the
  destination (on AWS, scoped to Mastodon's key layout), or reads only that provider's
  key secret (elsewhere); the enumerator reads its secrets, sends to the queue and
  invokes itself. No physical names are hard-coded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aws_cdk import (
    Acknowledgment,
    Annotations,
    AssetHashType,
    Aws,
    CfnOutput,
    Duration,
    Fn,
    RemovalPolicy,
    Stack,
    Tags,
    Validations,
)
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk.aws_lambda_event_sources import SqsEventSource
from constructs import Construct, IConstruct

from mastodon_s3_sync.contract import METRICS_NAMESPACE as METRICS_NAMESPACE  # status reads it
from mastodon_s3_sync.contract import QUEUE_URL
from mastodon_s3_sync.mastodon.layout import RecordType, apply_key_prefix, is_blank

from .bundling import HANDLER, build_asset
from .config import BucketSide, StackConfig

AssetBuilder = Callable[[str, str], Path]
"""``(function, architecture) -> directory`` for ``Code.from_asset``: :func:`build_asset`."""

VISIBILITY_TIMEOUT_FACTOR = 6
"""Copy queue visibility timeout = this x the copier timeout (AWS guidance for Lambda)."""
COPY_QUEUE_RETENTION = Duration.days(4)
DEAD_LETTER_RETENTION = Duration.days(14)
"""SQS's longest; longer than the copy queue's, as messages keep their first enqueue time."""
ENUMERATOR_TIMEOUT = Duration.minutes(15)
"""Lambda's longest: the enumerator continues in a new invocation before it runs out."""
ENUMERATOR_MEMORY_MB = 1024
"""Paging and computing keys is CPU-bound, and Lambda's CPU share grows with memory."""
RUNTIME = lambda_.Runtime.PYTHON_3_12
"""The runtime the assets are built for (``infra.bundling.PYTHON_VERSION``)."""
ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS
"""The logs list every missing and failed key: kept after ``cdk destroy``, for this long."""
MEDIA_FOLDERS = (*(str(record_type) for record_type in RecordType), "cache")
"""First path segments of every key Mastodon writes (after its S3_KEY_PREFIX): the copier's
S3 permissions cover these and nothing else in the buckets."""
DASHBOARD_PERIOD = Duration.minutes(5)


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
        self._asset_builder = asset_builder
        Tags.of(self).add("project", "mastodon-s3-sync")

        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            retention_period=DEAD_LETTER_RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.copy_queue = sqs.Queue(
            self,
            "CopyQueue",
            visibility_timeout=Duration.seconds(
                VISIBILITY_TIMEOUT_FACTOR * config.copier_timeout_seconds
            ),
            retention_period=COPY_QUEUE_RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=config.max_receive_count, queue=self.dead_letter_queue
            ),
        )
        self.enumerator_logs = self._log_group("EnumeratorLogs")
        self.copier_logs = self._log_group("CopierLogs")
        self.enumerator = self._enumerator()
        self.copier = self._copier()
        self.alarm_topic = self._alarm_topic()
        self.alarms = self._alarms()
        self.dashboard = self._dashboard()
        self._outputs()
        self._acknowledge_findings()

    # -- functions -----------------------------------------------------------------------

    def _code(self, function: str) -> lambda_.Code:
        directory = self._asset_builder(function, self.config.architecture)
        # Hashed here: CDK's own fingerprint walks thousands of files through jsii, slowly.
        return lambda_.Code.from_asset(
            str(directory), asset_hash_type=AssetHashType.CUSTOM, asset_hash=tree_hash(directory)
        )

    def _powertools_environment(self) -> dict[str, str]:
        return {
            "POWERTOOLS_SERVICE_NAME": self.stack_name,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        }

    def _log_group(self, construct_id: str) -> logs.LogGroup:
        return logs.LogGroup(
            self, construct_id, retention=LOG_RETENTION, removal_policy=RemovalPolicy.RETAIN
        )

    def _enumerator(self) -> lambda_.Function:
        config = self.config
        placement: dict[str, Any] = {}
        if config.vpc is not None:
            placement = self._enumerator_network()
        function = lambda_.Function(
            self,
            "Enumerator",
            description="mastodon-s3-sync: pages Mastodon's database into the copy queue",
            runtime=RUNTIME,
            architecture=ARCHITECTURES[config.architecture],
            code=self._code("enumerator"),
            handler=HANDLER,
            memory_size=ENUMERATOR_MEMORY_MB,
            timeout=ENUMERATOR_TIMEOUT,
            environment={
                **config.enumerator_environment(),
                QUEUE_URL: self.copy_queue.queue_url,
                **self._powertools_environment(),
            },
            log_group=self.enumerator_logs,
            **placement,
        )
        self.copy_queue.grant_send_messages(function)
        secrets = [config.database_secret_arn]
        if config.bastion_secret_arn:
            secrets.append(config.bastion_secret_arn)
        function.add_to_role_policy(_read_secrets(secrets))
        # Continuation: the enumerator invokes itself. A policy of its own, not the role's
        # default policy (which the function depends on), so the function's ARN can be
        # used without a circular dependency or a fixed function name.
        iam.Policy(
            self,
            "EnumeratorSelfInvoke",
            statements=[
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"], resources=[function.function_arn]
                )
            ],
            roles=[_role(function)],
        )
        return function

    def _enumerator_network(self) -> dict[str, Any]:
        vpc_config = self.config.vpc
        assert vpc_config is not None
        # Imported by id, so synth stays offline (no context lookups). The subnets are
        # given explicitly: the VPC's zones and the subnets' route tables are never read.
        vpc = ec2.Vpc.from_vpc_attributes(
            self, "Vpc", vpc_id=vpc_config.vpc_id, availability_zones=Fn.get_azs()
        )
        Annotations.of(vpc).acknowledge_warning(
            "@aws-cdk/aws-ec2:vpcAttributeIsListTokenavailabilityZones",
            "the subnets are given explicitly; the zones are never read",
        )
        subnets = [
            ec2.Subnet.from_subnet_id(self, f"Subnet{index}", subnet_id)
            for index, subnet_id in enumerate(vpc_config.subnet_ids, start=1)
        ]
        for subnet in subnets:
            Annotations.of(subnet).acknowledge_warning(
                "@aws-cdk/aws-ec2:noSubnetRouteTableId",
                "only the subnet id is used (the enumerator's network interfaces)",
            )
        group = ec2.SecurityGroup(
            self,
            "EnumeratorSecurityGroup",
            vpc=vpc,
            description="mastodon-s3-sync enumerator: to the database and to AWS APIs",
            allow_all_outbound=False,
        )
        group.add_egress_rule(
            ec2.Peer.any_ipv4(),
            ec2.Port.tcp(443),
            "AWS APIs (SQS, Secrets Manager, Lambda) through a NAT gateway or VPC endpoints",
        )
        database_port = ec2.Port.tcp(vpc_config.database_port)
        if vpc_config.database_security_group_id:
            database_group = ec2.SecurityGroup.from_security_group_id(
                self, "DatabaseSecurityGroup", vpc_config.database_security_group_id
            )
            group.connections.allow_to(database_group, database_port, "Mastodon's PostgreSQL")
        else:
            group.add_egress_rule(ec2.Peer.any_ipv4(), database_port, "Mastodon's PostgreSQL")
        if vpc_config.bastion_port is not None:
            group.add_egress_rule(
                ec2.Peer.any_ipv4(), ec2.Port.tcp(vpc_config.bastion_port), "SSH bastion"
            )
        return {
            "vpc": vpc,
            "vpc_subnets": ec2.SubnetSelection(subnets=subnets),
            "security_groups": [group],
        }

    def _copier(self) -> lambda_.Function:
        config = self.config
        function = lambda_.Function(
            self,
            "Copier",
            description="mastodon-s3-sync: copies the objects of each copy queue message",
            runtime=RUNTIME,
            architecture=ARCHITECTURES[config.architecture],
            code=self._code("copier"),
            handler=HANDLER,
            memory_size=config.copier_memory_mb,
            timeout=Duration.seconds(config.copier_timeout_seconds),
            reserved_concurrent_executions=config.reserved_concurrency,
            environment={**config.copier_environment(), **self._powertools_environment()},
            log_group=self.copier_logs,
        )
        function.add_event_source(
            SqsEventSource(
                self.copy_queue,
                batch_size=config.batch_size,
                max_concurrency=config.max_concurrency,
                report_batch_item_failures=True,
            )
        )
        for statement in self._bucket_statements():
            function.add_to_role_policy(statement)
        return function

    def _bucket_statements(self) -> list[iam.PolicyStatement]:
        """Least privilege per side: S3 on AWS buckets, one secret elsewhere."""
        source, destination = self.config.sides()
        acl = self.config.acl
        statements: list[iam.PolicyStatement] = []
        secrets = [side.credentials_secret_arn for side in (source, destination)]
        present = sorted({arn for arn in secrets if arn is not None})
        if present:
            statements.append(_read_secrets(present))
        if source.uses_role:
            statements += [
                iam.PolicyStatement(
                    sid="ReadSourceObjects",
                    actions=["s3:GetObject", *(["s3:GetObjectAcl"] if acl == "copy" else [])],
                    resources=self.object_arns(source, with_unprefixed=True),
                ),
                # Without ListBucket, S3 answers 403 instead of 404 for a missing key.
                iam.PolicyStatement(
                    sid="ListSourceBucket",
                    actions=["s3:ListBucket"],
                    resources=[self.bucket_arn(source.bucket)],
                ),
            ]
        if destination.uses_role:
            statements += [
                iam.PolicyStatement(
                    sid="WriteDestinationObjects",
                    actions=[
                        "s3:PutObject",  # also multipart: create, upload part, complete
                        *(["s3:PutObjectAcl"] if acl != "none" else []),
                        "s3:GetObject",  # HEAD: skip what is already there
                        "s3:AbortMultipartUpload",
                    ],
                    resources=self.object_arns(destination, with_unprefixed=False),
                ),
                iam.PolicyStatement(
                    sid="ListDestinationBucket",
                    actions=["s3:ListBucket"],
                    resources=[self.bucket_arn(destination.bucket)],
                ),
            ]
        return statements

    def bucket_arn(self, resource: str) -> str:
        """``arn:<partition>:s3:::`` + a bucket name, or ``bucket/key pattern``."""
        return self.format_arn(service="s3", region="", account="", resource=resource)

    def object_arns(self, side: BucketSide, *, with_unprefixed: bool) -> list[str]:
        """Object ARNs of Mastodon's folders under the side's key prefix."""
        return [self.bucket_arn(path) for path in object_paths(side, with_unprefixed)]

    # -- observability -------------------------------------------------------------------

    def _alarm_topic(self) -> sns.Topic | None:
        if self.config.alarm_email is None:
            return None
        topic = sns.Topic(self, "AlarmTopic", enforce_ssl=True)
        topic.add_subscription(subscriptions.EmailSubscription(self.config.alarm_email))
        return topic

    def _alarms(self) -> list[cloudwatch.Alarm]:
        dead_letters = cloudwatch.Alarm(
            self,
            "DeadLetterQueueNotEmpty",
            alarm_description=(
                "Messages failed max_receive_count times and wait in the DLQ: read the "
                "copier's log for their keys, fix the cause, then redrive the DLQ."
            ),
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        stalled = cloudwatch.Alarm(
            self,
            "CopyQueueStalled",
            alarm_description=(
                f"A copy queue message has waited over {self.config.queue_age_alarm_hours} h: "
                "copiers are not keeping up or not running (the queue drops messages "
                f"after {COPY_QUEUE_RETENTION.to_days()} days)."
            ),
            metric=self.copy_queue.metric_approximate_age_of_oldest_message(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            threshold=self.config.queue_age_alarm_hours * 3600,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarms = [dead_letters, stalled]
        if self.alarm_topic is not None:
            for alarm in alarms:
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.alarm_topic))
        return alarms

    def outcome_metric(self, name: str, record_type: RecordType) -> cloudwatch.Metric:
        """A handler metric (Sum per period) of one type, as Powertools emits it."""
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"Type": str(record_type), "service": self.stack_name},
            statistic="Sum",
            period=DASHBOARD_PERIOD,
            label=str(record_type),
        )

    def _per_type(self, name: str, title: str) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=title,
            left=[self.outcome_metric(name, record_type) for record_type in RecordType],
            width=8,
            height=6,
        )

    def _total(self, name: str, label: str) -> cloudwatch.MathExpression:
        # Expression ids are unique across the widget: one set per metric name.
        metrics = {
            f"{name[0].lower()}{name[1:]}{index}": self.outcome_metric(name, record_type)
            for index, record_type in enumerate(RecordType)
        }
        return cloudwatch.MathExpression(
            expression="+".join(f"FILL({key}, 0)" for key in metrics),
            using_metrics=metrics,
            label=label,
        )

    def _dashboard(self) -> cloudwatch.Dashboard:
        outcomes = (
            ("ObjectsCopied", "Objects copied"),
            ("ObjectsSkipped", "Objects skipped (already there)"),
            ("ObjectsMissing", "Objects missing at the source"),
            ("ObjectsFailed", "Objects failed"),
            ("BytesCopied", "Bytes copied"),
            ("ObjectsEnumerated", "Objects enumerated"),
        )
        dashboard = cloudwatch.Dashboard(self, "Dashboard")
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    "## mastodon-s3-sync\n"
                    f"Start a run: invoke `{self.enumerator.function_name}` with "
                    '`{"type": "all"}`. Counts per type, summed per '
                    f"{DASHBOARD_PERIOD.to_minutes()} minutes; totals over the dashboard's "
                    "time range."
                ),
                width=24,
                height=2,
            )
        )
        dashboard.add_widgets(
            cloudwatch.SingleValueWidget(
                title="Totals over the time range",
                metrics=[self._total(name, title.split(" (")[0]) for name, title in outcomes],
                set_period_to_time_range=True,
                width=24,
                height=4,
            )
        )
        dashboard.add_widgets(*(self._per_type(name, title) for name, title in outcomes))
        queue, dead_letters = self.copy_queue, self.dead_letter_queue
        dashboard.add_widgets(
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
            cloudwatch.AlarmStatusWidget(alarms=list(self.alarms), width=8, height=6),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Copier invocations, errors, throttles",
                left=[
                    self.copier.metric_invocations(label="invocations"),
                    self.copier.metric_errors(label="errors"),
                    self.copier.metric_throttles(label="throttles"),
                ],
                right=[
                    self.copier.metric(
                        "ConcurrentExecutions", statistic="Maximum", label="concurrent"
                    )
                ],
                width=8,
                height=6,
            ),
            cloudwatch.GraphWidget(
                title="Copier duration",
                left=[
                    self.copier.metric_duration(statistic="p50", label="p50"),
                    self.copier.metric_duration(statistic="Maximum", label="max"),
                ],
                width=8,
                height=6,
            ),
            cloudwatch.GraphWidget(
                title="Enumerator invocations, errors",
                left=[
                    self.enumerator.metric_invocations(label="invocations"),
                    self.enumerator.metric_errors(label="errors"),
                ],
                width=8,
                height=6,
            ),
        )
        return dashboard

    def _outputs(self) -> None:
        values = {
            "EnumeratorFunctionName": self.enumerator.function_name,
            "CopierFunctionName": self.copier.function_name,
            "EnumeratorLogGroupName": self.enumerator_logs.log_group_name,
            "CopierLogGroupName": self.copier_logs.log_group_name,
            # For bucket policies, when a bucket belongs to another AWS account.
            "CopierRoleArn": _role(self.copier).role_arn,
            "CopyQueueUrl": self.copy_queue.queue_url,
            "CopyQueueArn": self.copy_queue.queue_arn,
            "DeadLetterQueueUrl": self.dead_letter_queue.queue_url,
            "DeadLetterQueueArn": self.dead_letter_queue.queue_arn,
            "DashboardUrl": (
                f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home?"
                f"region={Aws.REGION}#dashboards:name={self.dashboard.dashboard_name}"
            ),
        }
        if self.alarm_topic is not None:
            values["AlarmTopicArn"] = self.alarm_topic.topic_arn
        for name, value in values.items():
            CfnOutput(self, name, value=value)

    # -- cdk-nag ---------------------------------------------------------------------------

    def _acknowledge_findings(self) -> None:
        """Each AwsSolutions finding this stack accepts, with the reason."""
        managed = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        in_vpc = self.config.vpc is not None
        for function, policies in (
            (
                self.enumerator,
                [
                    "AWSLambdaBasicExecutionRole",
                    *(["AWSLambdaVPCAccessExecutionRole"] if in_vpc else []),
                ],
            ),
            (self.copier, ["AWSLambdaBasicExecutionRole"]),
        ):
            acknowledge(
                function,
                "AwsSolutions-L1",
                f"The runtime is pinned to {RUNTIME.name}: the asset's wheels are built for "
                "exactly that Python version (infra/bundling.py PYTHON_VERSION).",
            )
            acknowledge(
                _role(function),
                "AwsSolutions-IAM4",
                "AWS's own minimal policies for a function: writing its logs "
                "(AWSLambdaBasicExecutionRole) and, in a VPC, managing its network "
                "interfaces (AWSLambdaVPCAccessExecutionRole).",
                applies_to=[managed + policy for policy in policies],
            )
        source, destination = self.config.sides()
        object_patterns = [
            *(object_paths(source, with_unprefixed=True) if source.uses_role else []),
            *(object_paths(destination, with_unprefixed=False) if destination.uses_role else []),
        ]
        if object_patterns:
            acknowledge(
                _role(self.copier),
                "AwsSolutions-IAM5",
                "Object permissions are limited to Mastodon's folders (accounts, "
                "media_attachments, custom_emojis, preview_cards, cache) under the key "
                "prefix; the keys themselves are only known at run time.",
                applies_to=[
                    f"Resource::arn:<AWS::Partition>:s3:::{path}" for path in object_patterns
                ],
            )
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This queue is the copy queue's dead-letter queue.",
        )


def tree_hash(directory: Path) -> str:
    """SHA-256 of every file's path, mode and bytes below ``directory``: the asset's identity."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            relative = path.relative_to(directory).as_posix().encode()
            digest.update(b"%d\0%s\0%o\0" % (len(relative), relative, path.stat().st_mode & 0o777))
            with path.open("rb") as file:
                digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


def object_paths(side: BucketSide, with_unprefixed: bool) -> list[str]:
    """``bucket/pattern`` for each of Mastodon's folders under the side's key prefix.

    The source's also cover the folders without the prefix: the copier tries the
    unprefixed key of an object when the prefixed one is missing (prefix set later).
    """
    prefixes = [side.key_prefix]
    if with_unprefixed and not is_blank(side.key_prefix):
        prefixes.append("")
    return [
        f"{side.bucket}/{apply_key_prefix(prefix, f'{folder}/*')}"
        for prefix in prefixes
        for folder in MEDIA_FOLDERS
    ]


def _role(function: lambda_.Function) -> iam.IRole:
    role = function.role
    assert role is not None  # lambda_.Function always has one
    return role


def _read_secrets(arns: Sequence[str]) -> iam.PolicyStatement:
    """GetSecretValue (all Powertools' get_secret calls) on exactly these secrets."""
    return iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=list(arns))


def acknowledge(
    construct: IConstruct, rule: str, reason: str, applies_to: Sequence[str] = ()
) -> None:
    """Accept a cdk-nag finding on ``construct`` (and below it), with the reason why.

    Granular rules (IAM4, IAM5) are accepted per finding, ``Rule[Finding]``: a new
    wildcard or managed policy is reported again.
    """
    ids = [f"{rule}[{finding}]" for finding in applies_to] or [rule]
    Validations.of(construct).acknowledge(*(Acknowledgment(id=i, reason=reason) for i in ids))
