"""The two Lambda functions: their code, runtime, settings and logs, and where they run.

The enumerator may sit in the database's VPC; the copier never does, so media bytes never
pass a NAT gateway. The copiers are capped by the event source's *maximum concurrency*
(throttling would send valid messages to the DLQ). The enumerator's asynchronous
invocations are retried a bounded number of times, then go to the failed-events queue.
What each function may do is in :mod:`infra.grants`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aws_cdk import Annotations, AssetHashType, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk.aws_lambda_event_sources import SqsEventSource
from constructs import Construct

from mastodon_s3_sync.contract import ENUMERATOR_TIMEOUT_SECONDS, METRICS_NAMESPACE, QUEUE_URL

from .bundling import HANDLER
from .config import StackConfig, VpcPlacement

AssetBuilder = Callable[[str, str], Path]
"""``(function, architecture) -> directory`` for ``Code.from_asset``: ``build_asset``."""

ENUMERATOR_MEMORY_MB = 1024
"""Paging and computing keys is CPU-bound, and Lambda's CPU share grows with memory."""
RUNTIME = lambda_.Runtime.PYTHON_3_12
"""The runtime the assets are built for (``infra.bundling.PYTHON_VERSION``)."""
ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}
ENUMERATOR_RETRY_ATTEMPTS = 2
"""Lambda's retries of a failed asynchronous enumerator invocation (its most) before the
event goes to the failed-events queue: a passing database or network error heals."""
ENUMERATOR_MAX_EVENT_AGE = Duration.hours(1)
"""An event not run by then (throttled, retries backing off) goes to the failed-events
queue instead of being dropped at Lambda's default of six hours."""
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS
"""The logs list every missing and failed key: kept after ``cdk destroy``, for this long."""


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


def log_group(scope: Construct, construct_id: str) -> logs.LogGroup:
    """A function's log group, kept when the stack is destroyed."""
    return logs.LogGroup(
        scope, construct_id, retention=LOG_RETENTION, removal_policy=RemovalPolicy.RETAIN
    )


def _code(build: AssetBuilder, function: str, architecture: str) -> lambda_.Code:
    directory = build(function, architecture)
    # Hashed here: CDK's own fingerprint walks thousands of files through jsii, slowly.
    return lambda_.Code.from_asset(
        str(directory), asset_hash_type=AssetHashType.CUSTOM, asset_hash=tree_hash(directory)
    )


def _powertools_environment(stack: Stack) -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": stack.stack_name,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    }


def enumerator_function(
    stack: Stack,
    config: StackConfig,
    build: AssetBuilder,
    copy_queue: sqs.IQueue,
    logs_to: logs.ILogGroup,
) -> lambda_.Function:
    """The enumerator: pages the database into the copy queue, in the VPC if configured."""
    placement = {} if config.vpc is None else _enumerator_network(stack, config.vpc)
    return lambda_.Function(
        stack,
        "Enumerator",
        description="mastodon-s3-sync: pages Mastodon's database into the copy queue",
        runtime=RUNTIME,
        architecture=ARCHITECTURES[config.architecture],
        code=_code(build, "enumerator", config.architecture),
        handler=HANDLER,
        memory_size=ENUMERATOR_MEMORY_MB,
        # Lambda's longest: the enumerator continues in a new invocation before it runs out.
        timeout=Duration.seconds(ENUMERATOR_TIMEOUT_SECONDS),
        environment={
            **config.enumerator_environment(),
            QUEUE_URL: copy_queue.queue_url,
            **_powertools_environment(stack),
        },
        log_group=logs_to,
        **placement,
    )


def send_failures_to(function: lambda_.Function, failed_events: sqs.IQueue) -> None:
    """Bounded retries of the asynchronous invocations, then the event to ``failed_events``."""
    function.configure_async_invoke(
        retry_attempts=ENUMERATOR_RETRY_ATTEMPTS,
        max_event_age=ENUMERATOR_MAX_EVENT_AGE,
        on_failure=destinations.SqsDestination(failed_events),
    )


def _enumerator_network(scope: Construct, vpc_config: VpcPlacement) -> dict[str, Any]:
    """The enumerator's subnets and security group: out to the database and AWS APIs only."""
    # Imported by id, so synth stays offline (no context lookups). The subnets are
    # given explicitly: the VPC's zones and the subnets' route tables are never read.
    vpc = ec2.Vpc.from_vpc_attributes(
        scope, "Vpc", vpc_id=vpc_config.vpc_id, availability_zones=Fn.get_azs()
    )
    Annotations.of(vpc).acknowledge_warning(
        "@aws-cdk/aws-ec2:vpcAttributeIsListTokenavailabilityZones",
        "the subnets are given explicitly; the zones are never read",
    )
    subnets = [
        ec2.Subnet.from_subnet_id(scope, f"Subnet{index}", subnet_id)
        for index, subnet_id in enumerate(vpc_config.subnet_ids, start=1)
    ]
    for subnet in subnets:
        Annotations.of(subnet).acknowledge_warning(
            "@aws-cdk/aws-ec2:noSubnetRouteTableId",
            "only the subnet id is used (the enumerator's network interfaces)",
        )
    group = ec2.SecurityGroup(
        scope,
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
            scope, "DatabaseSecurityGroup", vpc_config.database_security_group_id
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


def copier_function(
    stack: Stack,
    config: StackConfig,
    build: AssetBuilder,
    copy_queue: sqs.IQueue,
    logs_to: logs.ILogGroup,
) -> lambda_.Function:
    """The copier, outside any VPC, fed by the copy queue at most ``max_concurrency`` wide.

    Reserved concurrency, when on, is never below that maximum (the settings check it).
    """
    function = lambda_.Function(
        stack,
        "Copier",
        description="mastodon-s3-sync: copies the objects of each copy queue message",
        runtime=RUNTIME,
        architecture=ARCHITECTURES[config.architecture],
        code=_code(build, "copier", config.architecture),
        handler=HANDLER,
        memory_size=config.copier_memory_mb,
        timeout=Duration.seconds(config.copier_timeout_seconds),
        reserved_concurrent_executions=config.reserved_concurrency,
        environment={**config.copier_environment(), **_powertools_environment(stack)},
        log_group=logs_to,
    )
    function.add_event_source(
        SqsEventSource(
            copy_queue,
            batch_size=config.batch_size,
            max_concurrency=config.max_concurrency,
            report_batch_item_failures=True,
        )
    )
    return function
