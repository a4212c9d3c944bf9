"""The deployment's settings, from the same TOML file as the CLI.

Every section, ``[stack]`` included, is read and checked by the settings model
(:func:`mastodon_s3_sync.config.layers.load_config`), so the CLI and the stack can never
disagree on them; ``[stack]`` (which the CLI ignores) holds what only a deployment needs.
This module derives the stack's shape and the functions' environment from it. Every error
is a :class:`SettingsError` whose one-line message names the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from mastodon_s3_sync.config.checks import DEFAULT_PORT, DEFAULT_SSH_PORT, AddressingStyle, SslMode
from mastodon_s3_sync.config.layers import load_config
from mastodon_s3_sync.config.settings import (
    DEFAULT_WORKERS,
    AclMode,
    BucketSettings,
    PrivateObjects,
    Settings,
)
from mastodon_s3_sync.config.stack import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_COPIER_MEMORY_MB,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RECEIVE_COUNT,
    DEFAULT_QUEUE_AGE_ALARM_HOURS,
    Architecture,
    StackSettings,
)
from mastodon_s3_sync.contract import (
    ACL,
    BASTION_SECRET_ARN,
    COPIER_THREADS,
    CREDENTIALS_SECRET_ARN,
    DATABASE_SECRET_ARN,
    DATABASE_SSLMODE,
    DEFAULT_COPIER_TIMEOUT_SECONDS,
    DEFAULT_STACK_NAME,  # also what the CLI looks for
    DEFAULT_TIME_GUARD_SECONDS,
    PAGE_SIZE,
    PRIVATE_OBJECTS,
    SKIP_BACKUPS,
    TIME_GUARD_SECONDS,
)
from mastodon_s3_sync.errors import SettingsError

Side = Literal["source", "destination"]

CONFIG_CONTEXT_KEY = "config"
"""``cdk synth -c config=PATH``."""
DEFAULT_CONFIG_NAME = "mastodon-s3-sync.toml"
"""Read from the folder of cdk.json when no ``-c config=PATH`` is given."""

_AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn")


def is_aws_endpoint(endpoint_url: str | None) -> bool:
    """No endpoint (boto3's default) or an ``*.amazonaws.com`` one: a bucket on AWS S3."""
    if endpoint_url is None:
        return True
    host = (urlsplit(endpoint_url).hostname or "").lower()
    return host.endswith(_AWS_HOSTS)


@dataclass(frozen=True)
class BucketSide:
    """One side of the copy as the copier function sees it.

    ``profile`` and access keys in the TOML file are for the CLI and never reach the
    stack: on AWS the function's role is used, elsewhere the keys in a Secrets Manager
    secret (``credentials_secret_arn``) that only the copier may read.
    """

    side: Side
    bucket: str
    key_prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: AddressingStyle = "auto"
    credentials_secret_arn: str | None = None

    @property
    def uses_role(self) -> bool:
        """True when the function's IAM role reaches this bucket (no keys of its own)."""
        return self.credentials_secret_arn is None

    def environment(self) -> dict[str, str]:
        """The copier's ``MSS_SOURCE_*`` / ``MSS_DESTINATION_*`` variables that have a value."""
        prefix = f"MSS_{self.side.upper()}_"
        values = {
            "BUCKET": self.bucket,
            "KEY_PREFIX": self.key_prefix,
            "ENDPOINT_URL": self.endpoint_url or "",
            "REGION": self.region or "",
            "ADDRESSING_STYLE": self.addressing_style,
            CREDENTIALS_SECRET_ARN: self.credentials_secret_arn or "",
        }
        return {prefix + name: value for name, value in values.items() if value}


@dataclass(frozen=True)
class VpcPlacement:
    """Where the enumerator runs when the database is only reachable inside a VPC."""

    vpc_id: str
    subnet_ids: tuple[str, ...]
    database_security_group_id: str | None = None
    database_port: int = DEFAULT_PORT
    bastion_port: int | None = None
    """Outbound SSH to a bastion inside the VPC (only with ``bastion_secret_arn``)."""


@dataclass(frozen=True)
class StackConfig:
    """Everything the stack is built from; see README, "Deploying on AWS"."""

    source: BucketSide
    destination: BucketSide
    database_secret_arn: str
    stack_name: str = DEFAULT_STACK_NAME
    acl: AclMode = AclMode.COPY
    private_objects: PrivateObjects = PrivateObjects.WITHHOLD
    """``[copy] private_objects``: what the copier does with private objects when the
    destination keeps no ACL."""
    copier_threads: int = DEFAULT_WORKERS
    page_size: int | None = None
    database_sslmode: SslMode = "require"
    architecture: Architecture = "arm64"
    copier_memory_mb: int = DEFAULT_COPIER_MEMORY_MB
    copier_timeout_seconds: int = DEFAULT_COPIER_TIMEOUT_SECONDS
    time_guard_seconds: int = int(DEFAULT_TIME_GUARD_SECONDS)
    batch_size: int = DEFAULT_BATCH_SIZE
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    reserved_concurrency: int | None = DEFAULT_MAX_CONCURRENCY
    """At least ``max_concurrency``; None when turned off (``reserved_concurrency = false``)."""
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT
    bastion_secret_arn: str | None = None
    vpc: VpcPlacement | None = None
    alarm_email: str | None = None
    queue_age_alarm_hours: int = DEFAULT_QUEUE_AGE_ALARM_HOURS
    skip_backups: bool = False
    """``[copy] skip_backups``: the enumerator leaves users' archive downloads out."""

    def sides(self) -> tuple[BucketSide, BucketSide]:
        """Source, then destination."""
        return self.source, self.destination

    def copier_environment(self) -> dict[str, str]:
        """The copier's ``MSS_*`` variables (Powertools' are set by the stack)."""
        return {
            **self.source.environment(),
            **self.destination.environment(),
            ACL: self.acl,
            PRIVATE_OBJECTS: self.private_objects,
            COPIER_THREADS: str(self.copier_threads),
            TIME_GUARD_SECONDS: str(self.time_guard_seconds),
        }

    def enumerator_environment(self) -> dict[str, str]:
        """The enumerator's ``MSS_*`` variables but the queue URL (a token of the stack)."""
        environment = {
            DATABASE_SECRET_ARN: self.database_secret_arn,
            DATABASE_SSLMODE: self.database_sslmode,
            TIME_GUARD_SECONDS: str(self.time_guard_seconds),
        }
        if self.source.key_prefix:
            environment["MSS_SOURCE_KEY_PREFIX"] = self.source.key_prefix
        if self.bastion_secret_arn:
            environment[BASTION_SECRET_ARN] = self.bastion_secret_arn
        if self.page_size is not None:
            environment[PAGE_SIZE] = str(self.page_size)
        if self.skip_backups:
            environment[SKIP_BACKUPS] = "true"
        return environment


def config_path(context_value: object, project_dir: Path, cwd: Path) -> Path:
    """The file named by ``-c config=PATH`` (relative to ``cwd``), else the default one."""
    if context_value is not None:
        if not isinstance(context_value, str) or not context_value.strip():
            raise SettingsError("-c config=PATH: give the path of a mastodon-s3-sync TOML file")
        path = Path(context_value.strip()).expanduser()
        return path if path.is_absolute() else cwd / path
    default = project_dir / DEFAULT_CONFIG_NAME
    if not default.is_file():
        raise SettingsError(
            f"no configuration: pass -c config=PATH (a TOML file like "
            f"mastodon-s3-sync.example.toml), or create {default}"
        )
    return default


CONFIG_FLAG = "-c config=PATH"


def load_stack_config(path: Path) -> StackConfig:
    """Read and check a configuration file for a deployment."""
    return stack_config(load_config(path, CONFIG_FLAG, stack=True))


def stack_config(settings: Settings) -> StackConfig:
    """The deployment of checked settings (with their ``[stack]`` section)."""
    if settings.stack is None:
        raise SettingsError("[stack] is missing: the stack needs [stack] database_secret_arn")
    stack = settings.stack
    source = _side("source", settings.source, stack.source_credentials_secret_arn)
    destination = _side(
        "destination", settings.destination, stack.destination_credentials_secret_arn
    )
    return StackConfig(
        source=source,
        destination=destination,
        database_secret_arn=stack.database_secret_arn,
        stack_name=stack.stack_name,
        acl=settings.copy.acl,
        private_objects=settings.copy.private_objects,
        copier_threads=settings.copy.workers,
        page_size=None if settings.database is None else settings.database.page_size,
        database_sslmode=stack.sslmode,
        architecture=stack.architecture,
        copier_memory_mb=stack.copier_memory_mb,
        copier_timeout_seconds=stack.copier_timeout_seconds,
        time_guard_seconds=stack.time_guard_seconds,
        batch_size=stack.batch_size,
        max_concurrency=stack.max_concurrency,
        reserved_concurrency=stack.reserved,
        max_receive_count=stack.max_receive_count,
        bastion_secret_arn=stack.bastion_secret_arn,
        vpc=_vpc(stack),
        alarm_email=stack.alarm_email,
        queue_age_alarm_hours=stack.queue_age_alarm_hours,
        skip_backups=settings.copy.skip_backups,
    )


def _side(side: Side, bucket: BucketSettings | None, secret: str | None) -> BucketSide:
    if bucket is None:
        raise SettingsError(f'[{side}] is missing: the stack needs [{side}] bucket = "BUCKET-NAME"')
    if bucket.path is not None:
        raise SettingsError(
            f"[{side}] path = {bucket.path!r}: the serverless stack cannot use a directory "
            "(a Lambda function cannot read or write the instance's disk); run "
            "`mastodon-s3-sync run` on the Mastodon host, or `enumerate` + `worker` there"
        )
    if secret is None and not is_aws_endpoint(bucket.endpoint_url):
        raise SettingsError(
            f"[stack] {side}_credentials_secret_arn is missing: [{side}] endpoint_url is not "
            "AWS, so the copier reads that provider's keys from a Secrets Manager secret "
            "(JSON: access_key_id, secret_access_key)"
        )
    return BucketSide(
        side=side,
        bucket=bucket.require_bucket(side),
        key_prefix=bucket.key_prefix,
        endpoint_url=bucket.endpoint_url,
        region=bucket.region,
        addressing_style=bucket.addressing_style,
        credentials_secret_arn=secret,
    )


def _vpc(stack: StackSettings) -> VpcPlacement | None:
    if stack.vpc_id is None or stack.subnet_ids is None:
        return None  # the model allows neither without the other
    return VpcPlacement(
        vpc_id=stack.vpc_id,
        subnet_ids=stack.subnet_ids,
        database_security_group_id=stack.database_security_group_id,
        database_port=stack.database_port or DEFAULT_PORT,
        bastion_port=(
            (stack.bastion_port or DEFAULT_SSH_PORT) if stack.bastion_secret_arn else None
        ),
    )
