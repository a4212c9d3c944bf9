"""Each function's own least-privilege role; no grant is shared.

The copier reads the source and writes the destination: on AWS, S3 actions on Mastodon's
folders under the key prefix and nothing else in the buckets; elsewhere, only that
provider's key secret. The enumerator reads its secrets, sends to the copy queue and
invokes itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs

from mastodon_s3_sync import RecordType
from mastodon_s3_sync.mastodon.layout import apply_key_prefix, is_blank

from .config import BucketSide, StackConfig

MEDIA_FOLDERS = (*(str(record_type) for record_type in RecordType), "cache")
"""First path segments of every key Mastodon writes (after its S3_KEY_PREFIX): the copier's
S3 permissions cover these and nothing else in the buckets."""


def role(function: lambda_.Function) -> iam.IRole:
    """The function's own role."""
    found = function.role
    assert found is not None  # lambda_.Function always has one
    return found


def read_secrets(arns: Sequence[str]) -> iam.PolicyStatement:
    """GetSecretValue (all Powertools' get_secret calls) on exactly these secrets."""
    return iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=list(arns))


def grant_enumerator(
    stack: Stack, function: lambda_.Function, copy_queue: sqs.IQueue, config: StackConfig
) -> None:
    """Send to the copy queue, read the database's (and bastion's) secret, invoke itself."""
    copy_queue.grant_send_messages(function)
    secrets = [config.database_secret_arn]
    if config.bastion_secret_arn:
        secrets.append(config.bastion_secret_arn)
    function.add_to_role_policy(read_secrets(secrets))
    # Continuation: the enumerator invokes itself. A policy of its own, not the role's
    # default policy (which the function depends on), so the function's ARN can be
    # used without a circular dependency or a fixed function name.
    iam.Policy(
        stack,
        "EnumeratorSelfInvoke",
        statements=[
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[function.function_arn]
            )
        ],
        roles=[role(function)],
    )


def grant_copier(stack: Stack, function: lambda_.Function, config: StackConfig) -> None:
    """Least privilege per side: S3 on AWS buckets, one secret elsewhere."""
    source, destination = config.sides()
    statements: list[iam.PolicyStatement] = []
    secrets = [side.credentials_secret_arn for side in (source, destination)]
    present = sorted({arn for arn in secrets if arn is not None})
    if present:
        statements.append(read_secrets(present))
    if source.uses_role:
        statements += [
            iam.PolicyStatement(
                sid="ReadSourceObjects",
                actions=["s3:GetObject", *(["s3:GetObjectAcl"] if config.acl == "copy" else [])],
                resources=[bucket_arn(stack, path) for path in object_paths(source)],
            ),
            # Without ListBucket, S3 answers 403 instead of 404 for a missing key.
            iam.PolicyStatement(
                sid="ListSourceBucket",
                actions=["s3:ListBucket"],
                resources=[bucket_arn(stack, source.bucket)],
            ),
        ]
    if destination.uses_role:
        statements += [
            iam.PolicyStatement(
                sid="WriteDestinationObjects",
                actions=[
                    "s3:PutObject",  # also multipart: create, upload part, complete
                    *(["s3:PutObjectAcl"] if config.acl != "none" else []),
                    "s3:GetObject",  # HEAD: skip what is already there
                    "s3:AbortMultipartUpload",
                ],
                resources=[bucket_arn(stack, path) for path in object_paths(destination)],
            ),
            iam.PolicyStatement(
                sid="ListDestinationBucket",
                actions=["s3:ListBucket"],
                resources=[bucket_arn(stack, destination.bucket)],
            ),
        ]
    for statement in statements:
        function.add_to_role_policy(statement)


def bucket_arn(stack: Stack, resource: str) -> str:
    """``arn:<partition>:s3:::`` + a bucket name, or ``bucket/key pattern``."""
    return stack.format_arn(service="s3", region="", account="", resource=resource)


def object_paths(side: BucketSide) -> list[str]:
    """``bucket/pattern`` for each of Mastodon's folders under the side's key prefix.

    The source's also cover the folders without the prefix: the copier tries the
    unprefixed key of an object when the prefixed one is missing (prefix set later).
    """
    prefixes = [side.key_prefix]
    if side.side == "source" and not is_blank(side.key_prefix):
        prefixes.append("")
    return [
        f"{side.bucket}/{apply_key_prefix(prefix, f'{folder}/*')}"
        for prefix in prefixes
        for folder in MEDIA_FOLDERS
    ]


def copier_object_paths(config: StackConfig) -> list[str]:
    """Every ``bucket/pattern`` the copier may touch objects in (sides on AWS only)."""
    return [path for side in config.sides() if side.uses_role for path in object_paths(side)]
