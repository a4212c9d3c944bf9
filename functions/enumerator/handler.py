"""Lambda entry point: enumerate Mastodon's objects from its database into the copy queue.

Event: {"type": a RecordType name (``accounts``, ..., ``imports``) or "all", or a list,
"after_id"?, "limit"?, "since"?, "skip_remote_cache"?, "skip_backups"?, "dry_run"?,
"run_id"?}. Before its time runs out it invokes itself asynchronously to continue where it
stopped. Its answer names each kind it left out, and why (``left_out``).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext

from mastodon_s3_sync.config.lambda_env import EnumeratorSettings, enumerator_settings
from mastodon_s3_sync.transport.lambda_enumerator import EnumeratorClients, run_enumerator

logger = Logger()


def read_secret(arn: str) -> dict[str, Any]:
    """A JSON secret from Secrets Manager, cached by Powertools."""
    return parameters.get_secret(arn, transform="json")


@cache
def clients() -> EnumeratorClients:
    """SQS and Lambda clients, once per container (endpoints: the standard AWS_* variables)."""
    return EnumeratorClients(sqs=boto3.client("sqs"), functions=boto3.client("lambda"))


def settings() -> EnumeratorSettings:
    """This invocation's settings, from the stack's MSS_* variables and Secrets Manager (read
    per invocation: a rotated database secret is picked up when Powertools' cache expires)."""
    return enumerator_settings(os.environ, read_secret)


# clear_state: a warm container's next invocation must not log the previous run id.
@logger.inject_lambda_context(log_event=True, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Enumerate, send, continue if needed; returns counts and where it stopped."""
    return run_enumerator(event, context, clients, settings, logger)
