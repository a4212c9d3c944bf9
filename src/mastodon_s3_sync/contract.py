"""What the stack, the Lambda handlers and the operator commands share, written once.

The stack (``infra/``) sets these environment variables and exports these outputs; the
handlers read the variables and emit these metrics and log lines; ``start``, ``status``,
``redrive`` and ``missing`` find the stack by its outputs and read the metrics and logs.
"""

from __future__ import annotations

from collections.abc import Mapping

from mastodon_s3_sync.outcomes import Outcome

DEFAULT_STACK_NAME = "MastodonS3Sync"

# -- environment variables of the functions ------------------------------------------------
ENV_PREFIX = "MSS_"
QUEUE_URL = "MSS_QUEUE_URL"
DATABASE_SECRET_ARN = "MSS_DATABASE_SECRET_ARN"  # noqa: S105 (a variable name) RDS-style JSON
DATABASE_URL = "MSS_DATABASE_URL"  # alternative to the secret (tests, non-RDS)
DATABASE_SSLMODE = "MSS_DATABASE_SSLMODE"
BASTION_SECRET_ARN = "MSS_BASTION_SECRET_ARN"  # noqa: S105 (a variable name)
PAGE_SIZE = "MSS_PAGE_SIZE"
ACL = "MSS_ACL"
COPIER_THREADS = "MSS_COPIER_THREADS"
TIME_GUARD_SECONDS = "MSS_TIME_GUARD_SECONDS"
SKIP_BACKUPS = "MSS_SKIP_BACKUPS"  # "true": the enumerator leaves backups out ([copy] skip_backups)
PRIVATE_OBJECTS = "MSS_PRIVATE_OBJECTS"  # [copy] private_objects: withhold, copy or skip
SIDES = ("source", "destination")
SIDE_VARIABLES = ("BUCKET", "KEY_PREFIX", "ENDPOINT_URL", "REGION", "ADDRESSING_STYLE")
"""Each side's variables are ``MSS_SOURCE_<NAME>`` / ``MSS_DESTINATION_<NAME>``."""
CREDENTIALS_SECRET_ARN = "CREDENTIALS_SECRET_ARN"  # noqa: S105 (a variable name suffix)


def side_variable(side: str, name: str) -> str:
    """``MSS_SOURCE_BUCKET`` for ``("source", "BUCKET")``."""
    return f"{ENV_PREFIX}{side.upper()}_{name}"


# -- timeouts ----------------------------------------------------------------------------------
ENUMERATOR_TIMEOUT_SECONDS = 900
"""The enumerator's Lambda timeout (the maximum); a dry run waits this long for its answer."""
DEFAULT_COPIER_TIMEOUT_SECONDS = 300
MIN_COPIER_TIMEOUT_SECONDS = 120  # twice the default time guard
MAX_LAMBDA_TIMEOUT_SECONDS = 900
DEFAULT_TIME_GUARD_SECONDS = 60.0
"""A copier starts no new object, and an enumerator continues in a new invocation,
when less than this is left of the Lambda's time."""

# -- metrics -----------------------------------------------------------------------------------
METRICS_NAMESPACE = "MastodonS3Sync"
"""Powertools' namespace, set on both functions by the stack."""
TYPE_DIMENSION = "Type"
SERVICE_DIMENSION = "service"
"""Powertools adds it to every metric, valued with the function's service name (the stack's)."""
ENUMERATED_METRIC = "ObjectsEnumerated"
CHAINS_STARTED_METRIC = "EnumerationsStarted"
"""1 when the first invocation of an enumeration (an event not marked ``continued``) ends
well: with :data:`CHAINS_FINISHED_METRIC`, ``status`` tells an enumeration still going."""
CHAINS_FINISHED_METRIC = "EnumerationsFinished"
"""1 when an invocation ends well with nothing left to enumerate (no continuation)."""
BYTES_COPIED_METRIC = "BytesCopied"
OUTCOME_METRICS: Mapping[Outcome, str] = {
    Outcome.COPIED: "ObjectsCopied",
    Outcome.SKIPPED: "ObjectsSkipped",
    Outcome.MISSING: "ObjectsMissing",
    Outcome.WITHHELD: "ObjectsWithheld",
    Outcome.FAILED: "ObjectsFailed",
}
"""The copier's per-outcome metrics."""

# -- log lines ---------------------------------------------------------------------------------
RUN_STARTED_MESSAGE = "enumeration started"
"""The enumerator's first log line of each invocation that sends (not a dry run), with the
``run_id``: ``status`` and ``missing`` find the latest run by it."""


def object_log_message(outcome: Outcome) -> str:
    """The line both functions log per missing, withheld or failed key (``missing`` queries
    them)."""
    return f"object {outcome.value}"


MADE_PRIVATE_MESSAGE = "object written private, public at the source"
"""The copier's line per object Mastodon made private that the source serves publicly."""


# -- stack outputs -----------------------------------------------------------------------------
STACK_OUTPUTS: Mapping[str, str] = {
    "enumerator_function": "EnumeratorFunctionName",
    "enumerator_log_group": "EnumeratorLogGroupName",
    "copier_log_group": "CopierLogGroupName",
    "copy_queue_url": "CopyQueueUrl",
    "copy_queue_arn": "CopyQueueArn",
    "dead_letter_queue_url": "DeadLetterQueueUrl",
    "dead_letter_queue_arn": "DeadLetterQueueArn",
    "failed_events_queue_url": "FailedEventsQueueUrl",
    "failed_events_queue_arn": "FailedEventsQueueArn",
    "dashboard_url": "DashboardUrl",
}
"""StackOutputs field -> the stack's CloudFormation output."""
OPTIONAL_STACK_OUTPUTS = frozenset({"failed_events_queue_url", "failed_events_queue_arn"})
"""Outputs a stack deployed by an earlier version lacks: the operations work without them
(``status`` says to deploy again; ``start --resume`` refuses)."""
