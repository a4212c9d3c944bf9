"""The cdk-nag (AwsSolutions) findings this stack accepts, each with the reason.

Any other finding fails synthesis (``infra.app.add_checks``).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import IConstruct

from .config import StackConfig
from .grants import MEDIA_FOLDERS, copier_object_paths, role
from .lambdas import RUNTIME

_MANAGED_POLICY = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"


def acknowledge(
    construct: IConstruct, rule: str, reason: str, applies_to: Sequence[str] = ()
) -> None:
    """Accept a cdk-nag finding on ``construct`` (and below it), with the reason why.

    Granular rules (IAM4, IAM5) are accepted per finding, ``Rule[Finding]``: a new
    wildcard or managed policy is reported again.
    """
    ids = [f"{rule}[{finding}]" for finding in applies_to] or [rule]
    Validations.of(construct).acknowledge(*(Acknowledgment(id=i, reason=reason) for i in ids))


def acknowledge_findings(
    config: StackConfig,
    enumerator: lambda_.Function,
    copier: lambda_.Function,
    dead_letter_queue: sqs.Queue,
    failed_events_queue: sqs.Queue,
) -> None:
    """Each AwsSolutions finding the stack's resources raise by design."""
    in_vpc = config.vpc is not None
    for function, policies in (
        (
            enumerator,
            [
                "AWSLambdaBasicExecutionRole",
                *(["AWSLambdaVPCAccessExecutionRole"] if in_vpc else []),
            ],
        ),
        (copier, ["AWSLambdaBasicExecutionRole"]),
    ):
        acknowledge(
            function,
            "AwsSolutions-L1",
            f"The runtime is pinned to {RUNTIME.name}: the asset's wheels are built for "
            "exactly that Python version (infra/bundling.py PYTHON_VERSION).",
        )
        acknowledge(
            role(function),
            "AwsSolutions-IAM4",
            "AWS's own minimal policies for a function: writing its logs "
            "(AWSLambdaBasicExecutionRole) and, in a VPC, managing its network "
            "interfaces (AWSLambdaVPCAccessExecutionRole).",
            applies_to=[_MANAGED_POLICY + policy for policy in policies],
        )
    object_patterns = copier_object_paths(config)
    if object_patterns:
        acknowledge(
            role(copier),
            "AwsSolutions-IAM5",
            f"Object permissions are limited to Mastodon's folders ({', '.join(MEDIA_FOLDERS)}) "
            "under the key prefix; the keys themselves are only known at run time.",
            applies_to=[f"Resource::arn:<AWS::Partition>:s3:::{path}" for path in object_patterns],
        )
    acknowledge(
        dead_letter_queue,
        "AwsSolutions-SQS3",
        "This queue is the copy queue's dead-letter queue.",
    )
    acknowledge(
        failed_events_queue,
        "AwsSolutions-SQS3",
        "This queue is the enumerator's on-failure destination: the end of the line for an "
        "event whose retries are spent; start --resume reads it.",
    )
