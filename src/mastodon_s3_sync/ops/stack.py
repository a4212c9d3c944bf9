"""The deployed stack every operation works on, found by its CloudFormation outputs.

The CLI builds the AWS clients once (:func:`make_clients`) and finds the stack once
(:func:`find_stack`); each operation then receives the clients it calls and the outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from mastodon_s3_sync.config.layers import STACK_SECTION, read_config_file
from mastodon_s3_sync.contract import (
    DEFAULT_STACK_NAME,
    ENUMERATOR_TIMEOUT_SECONDS,
    OPTIONAL_STACK_OUTPUTS,
    STACK_OUTPUTS,
)
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.storage.retry import REQUEST_RETRIES

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

DEFAULT_POLL_SECONDS = 1.0


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
    # A dry run waits for the enumerator's answer, up to its whole timeout.
    waits = retries.merge(Config(read_timeout=ENUMERATOR_TIMEOUT_SECONDS + 60))
    return AwsClients(
        cloudformation=session.client("cloudformation", endpoint_url=endpoint_url, config=retries),
        lambda_=session.client("lambda", endpoint_url=endpoint_url, config=waits),
        sqs=session.client("sqs", endpoint_url=endpoint_url, config=retries),
        cloudwatch=session.client("cloudwatch", endpoint_url=endpoint_url, config=retries),
        logs=session.client("logs", endpoint_url=endpoint_url, config=retries),
    )


@dataclass(frozen=True)
class Poll:
    """How an operation waits between two asks of a task it follows."""

    seconds: float = DEFAULT_POLL_SECONDS
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def wait(self) -> None:
        """Wait once."""
        self.sleep(self.seconds)


DEFAULT_POLL = Poll()


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
    """What the operations need from the deployed stack (fields: ``STACK_OUTPUTS``' keys)."""

    stack_name: str
    enumerator_function: str
    enumerator_log_group: str
    copier_log_group: str
    copy_queue_url: str
    copy_queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    dashboard_url: str
    failed_events_queue_url: str | None = None
    """None for a stack deployed before the failed-events queue existed."""
    failed_events_queue_arn: str | None = None


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
    absent = [
        key
        for name, key in STACK_OUTPUTS.items()
        if key not in outputs and name not in OPTIONAL_STACK_OUTPUTS
    ]
    if absent:
        raise SettingsError(
            f"--stack {stack_name}: the stack ({stack['StackStatus']}) has no output "
            f"{', '.join(absent)}: is it a mastodon-s3-sync stack whose deployment finished? "
            "Deploy it again (cdk deploy), or pass the right --stack NAME"
        )
    return StackOutputs(
        stack_name=stack["StackName"],
        **{name: outputs[key] for name, key in STACK_OUTPUTS.items() if key in outputs},
    )


def queue_depth(sqs: SQSClient, queue_url: str, *attributes: QueueAttributeNameType) -> list[int]:
    """The queue's ``ApproximateNumberOf…`` attributes, in the order asked."""
    values = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=attributes)["Attributes"]
    return [int(values.get(name, 0)) for name in attributes]
