"""The ``[stack]`` section: what only a serverless deployment needs, read by the CDK app.

The CLI ignores this table (the operator commands take just its ``stack_name``); the CDK app
in ``infra/`` has it validated with the other sections, as ``Settings.stack`` (see
:func:`mastodon_s3_sync.config.layers.load_config`), and derives the stack's shape from it.
Limits are Lambda's and SQS's own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import field_validator, model_validator
from pydantic.dataclasses import dataclass

from mastodon_s3_sync.config.checks import SECTION_CONFIG, SslMode, sslmode_setting
from mastodon_s3_sync.contract import (
    DEFAULT_COPIER_TIMEOUT_SECONDS,
    DEFAULT_STACK_NAME,
    DEFAULT_TIME_GUARD_SECONDS,
    MAX_LAMBDA_TIMEOUT_SECONDS,
    MIN_COPIER_TIMEOUT_SECONDS,
)

Architecture = Literal["arm64", "x86_64"]

DEFAULT_COPIER_MEMORY_MB = 1024
MIN_COPIER_MEMORY_MB = 512
"""The copier holds up to 128 MiB of object data at once, plus Python and its clients."""
MAX_LAMBDA_MEMORY_MB = 10_240
DEFAULT_BATCH_SIZE = 1
"""Messages per copier invocation: one message (up to 100 objects) keeps a slow message
from holding back others and lets the time guard cover the whole invocation."""
MAX_BATCH_SIZE = 10  # an SQS event source without a batching window
DEFAULT_MAX_CONCURRENCY = 20
MIN_MAX_CONCURRENCY, MAX_MAX_CONCURRENCY = 2, 1000  # the event source mapping's limits
DEFAULT_MAX_RECEIVE_COUNT = 5
MAX_MAX_RECEIVE_COUNT = 1000
DEFAULT_QUEUE_AGE_ALARM_HOURS = 12
MAX_QUEUE_AGE_ALARM_HOURS = 95
"""The copy queue keeps a message 4 days (96 h): the alarm must fire before it is dropped."""

_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$"
)
SECRET_ARN_FORM = "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf"  # noqa: S105
_SECRET_ARN_WHAT = (
    f"a complete Secrets Manager secret ARN ({SECRET_ARN_FORM}, "
    "with the 6-character suffix the console shows)"
)
_PATTERNS: Mapping[str, tuple[re.Pattern[str], str]] = {
    "stack_name": (
        re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$"),
        "a CloudFormation stack name: a letter, then letters, digits or -",
    ),
    "database_secret_arn": (_SECRET_ARN, _SECRET_ARN_WHAT),
    "bastion_secret_arn": (_SECRET_ARN, _SECRET_ARN_WHAT),
    "source_credentials_secret_arn": (_SECRET_ARN, _SECRET_ARN_WHAT),
    "destination_credentials_secret_arn": (_SECRET_ARN, _SECRET_ARN_WHAT),
    "vpc_id": (re.compile(r"^vpc-[0-9a-f]{8,17}$"), "a VPC id (vpc-0123456789abcdef0)"),
    "database_security_group_id": (
        re.compile(r"^sg-[0-9a-f]{8,17}$"),
        "a security group id (sg-0123456789abcdef0)",
    ),
    "alarm_email": (re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), "an email address"),
}
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_RANGES: Mapping[str, tuple[int, int]] = {
    "copier_memory_mb": (MIN_COPIER_MEMORY_MB, MAX_LAMBDA_MEMORY_MB),
    "copier_timeout_seconds": (MIN_COPIER_TIMEOUT_SECONDS, MAX_LAMBDA_TIMEOUT_SECONDS),
    "time_guard_seconds": (1, MAX_LAMBDA_TIMEOUT_SECONDS - 1),  # and below the timeout
    "batch_size": (1, MAX_BATCH_SIZE),
    "max_concurrency": (MIN_MAX_CONCURRENCY, MAX_MAX_CONCURRENCY),
    "max_receive_count": (1, MAX_MAX_RECEIVE_COUNT),
    "database_port": (1, 65535),
    "bastion_port": (1, 65535),
    "queue_age_alarm_hours": (1, MAX_QUEUE_AGE_ALARM_HOURS),
}
_VPC_ONLY_KEYS = ("subnet_ids", "database_security_group_id", "database_port", "bastion_port")


def _whole(value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{value!r} is not a whole number from {low} to {high}")
    return value


@dataclass(frozen=True, config=SECTION_CONFIG)
class StackSettings:
    """The ``[stack]`` table as written; see README, "Deploying on AWS"."""

    database_secret_arn: str
    stack_name: str = DEFAULT_STACK_NAME
    architecture: Architecture = "arm64"
    copier_memory_mb: int = DEFAULT_COPIER_MEMORY_MB
    copier_timeout_seconds: int = DEFAULT_COPIER_TIMEOUT_SECONDS
    time_guard_seconds: int = int(DEFAULT_TIME_GUARD_SECONDS)
    batch_size: int = DEFAULT_BATCH_SIZE
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    reserved_concurrency: bool | int = True
    """True: ``max_concurrency``; False: none; else at least ``max_concurrency``."""
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT
    database_sslmode: SslMode | None = None
    bastion_secret_arn: str | None = None
    source_credentials_secret_arn: str | None = None
    destination_credentials_secret_arn: str | None = None
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] | None = None
    database_security_group_id: str | None = None
    database_port: int | None = None
    bastion_port: int | None = None
    alarm_email: str | None = None
    queue_age_alarm_hours: int = DEFAULT_QUEUE_AGE_ALARM_HOURS

    @field_validator(*_PATTERNS, mode="before")
    @classmethod
    def _check_text(cls, value: object, info: Any) -> object:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"expected a non-empty string, got {value!r}")
        pattern, what = _PATTERNS[info.field_name]
        if not pattern.match(value.strip()):
            raise ValueError(f"{value.strip()!r} is not {what}")
        return value.strip()

    @field_validator(*_RANGES, mode="before")
    @classmethod
    def _check_whole(cls, value: object, info: Any) -> object:
        return None if value is None else _whole(value, *_RANGES[info.field_name])

    @field_validator("architecture", mode="before")
    @classmethod
    def _check_architecture(cls, value: object) -> object:
        if value not in get_args(Architecture):
            raise ValueError(f"{value!r} is not one of {', '.join(get_args(Architecture))}")
        return value

    @field_validator("database_sslmode", mode="before")
    @classmethod
    def _check_sslmode(cls, value: object) -> object:
        return None if value is None else sslmode_setting(value, "[stack] database_sslmode")

    @field_validator("subnet_ids", mode="before")
    @classmethod
    def _check_subnets(cls, value: object) -> object:
        if value is not None and (
            not isinstance(value, list)
            or not value
            or not all(isinstance(s, str) and _SUBNET_ID.match(s) for s in value)
        ):
            raise ValueError(
                "with vpc_id, a list of the VPC's private subnet ids "
                '(["subnet-0123456789abcdef0", …]) from which the database is reachable'
            )
        return None if value is None else tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _check_together(self) -> StackSettings:
        # Each message names its key first: the adapter prefixes only "[stack]".
        if self.time_guard_seconds >= self.copier_timeout_seconds:
            high = self.copier_timeout_seconds - 1
            raise ValueError(
                f"time_guard_seconds: {self.time_guard_seconds!r} is not a whole number "
                f"from 1 to {high}"
            )
        reserved = self.reserved_concurrency
        if not isinstance(reserved, bool) and reserved < self.max_concurrency:
            raise ValueError(
                f"reserved_concurrency: {reserved!r} must be false (off) or a whole number "
                f"of at least max_concurrency ({self.max_concurrency}): below it, the SQS "
                "event source's invocations are throttled and valid messages reach the DLQ"
            )
        if self.vpc_id is None:
            present = [key for key in _VPC_ONLY_KEYS if getattr(self, key) is not None]
            if present:
                raise ValueError(
                    f"{present[0]}: only used with vpc_id (the enumerator in a VPC); "
                    "set vpc_id or remove it"
                )
        elif self.subnet_ids is None:
            raise ValueError(
                "subnet_ids: with vpc_id, a list of the VPC's private subnet ids "
                '(["subnet-0123456789abcdef0", …]) from which the database is reachable'
            )
        if self.bastion_port is not None and self.bastion_secret_arn is None:
            raise ValueError("bastion_port: only used with bastion_secret_arn")
        return self

    @property
    def reserved(self) -> int | None:
        """The copier's reserved concurrency, None when turned off."""
        if self.reserved_concurrency is True:
            return self.max_concurrency
        return None if self.reserved_concurrency is False else self.reserved_concurrency

    @property
    def sslmode(self) -> SslMode:
        """Encrypted by default: by TLS, or by the SSH tunnel when there is a bastion."""
        if self.database_sslmode is not None:
            return self.database_sslmode
        return "disable" if self.bastion_secret_arn else "require"


STACK_KEYS = frozenset(StackSettings.__dataclass_fields__)


MISSING_SECRET_ARN = (
    " is missing: the Secrets Manager secret with the database's RDS-style JSON "
    f'(username, password, host, port, dbname); write it as "{SECRET_ARN_FORM}"'
)
"""How to give ``database_secret_arn``, the one [stack] key without a default."""
