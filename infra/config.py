"""The deployment's settings, from the same TOML file as the CLI.

``[source]``, ``[destination]``, ``[copy]`` and ``[database]`` are read by the core's
:func:`mastodon_s3_sync.config.settings.load_config`, so the CLI and the stack can never disagree
on them; ``[stack]`` (which the CLI ignores) holds what only a deployment needs. Every
error is a :class:`SettingsError` whose one-line message names the setting.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from mastodon_s3_sync.config.layers import STACK_SECTION, load_config
from mastodon_s3_sync.config.settings import (
    DEFAULT_WORKERS,
    AclMode,
    AddressingStyle,
    BucketSettings,
    Settings,
    SslMode,
    sslmode_setting,
)
from mastodon_s3_sync.contract import (
    ACL,
    BASTION_SECRET_ARN,
    COPIER_THREADS,
    CREDENTIALS_SECRET_ARN,
    DATABASE_SECRET_ARN,
    DATABASE_SSLMODE,
    DEFAULT_STACK_NAME,  # also what the CLI looks for
    DEFAULT_TIME_GUARD_SECONDS,
    PAGE_SIZE,
    TIME_GUARD_SECONDS,
)
from mastodon_s3_sync.errors import SettingsError

Architecture = Literal["arm64", "x86_64"]
Side = Literal["source", "destination"]

CONFIG_CONTEXT_KEY = "config"
"""``cdk synth -c config=PATH``."""
DEFAULT_CONFIG_NAME = "mastodon-s3-sync.toml"
"""Read from the folder of cdk.json when no ``-c config=PATH`` is given."""

DEFAULT_COPIER_MEMORY_MB = 1024
MIN_COPIER_MEMORY_MB = 512
"""The copier holds up to 128 MiB of object data at once, plus Python and its clients."""
MAX_LAMBDA_MEMORY_MB = 10_240
DEFAULT_COPIER_TIMEOUT_SECONDS = 300
MIN_COPIER_TIMEOUT_SECONDS = 120  # twice the default time guard
MAX_LAMBDA_TIMEOUT_SECONDS = 900
DEFAULT_BATCH_SIZE = 1
"""Messages per copier invocation: one message (up to 100 objects) keeps a slow message
from holding back others and lets the time guard cover the whole invocation."""
MAX_BATCH_SIZE = 10  # an SQS event source without a batching window
DEFAULT_MAX_CONCURRENCY = 20
MIN_MAX_CONCURRENCY, MAX_MAX_CONCURRENCY = 2, 1000  # the event source mapping's limits
DEFAULT_MAX_RECEIVE_COUNT = 5
MAX_MAX_RECEIVE_COUNT = 1000
DEFAULT_DATABASE_PORT = 5432
DEFAULT_BASTION_PORT = 22
DEFAULT_QUEUE_AGE_ALARM_HOURS = 12
MAX_QUEUE_AGE_ALARM_HOURS = 95
"""The copy queue keeps a message 4 days (96 h): the alarm must fire before it is dropped."""

STACK_KEYS = frozenset(
    {
        "stack_name",
        "architecture",
        "copier_memory_mb",
        "copier_timeout_seconds",
        "time_guard_seconds",
        "batch_size",
        "max_concurrency",
        "reserved_concurrency",
        "max_receive_count",
        "database_secret_arn",
        "database_sslmode",
        "bastion_secret_arn",
        "source_credentials_secret_arn",
        "destination_credentials_secret_arn",
        "vpc_id",
        "subnet_ids",
        "database_security_group_id",
        "database_port",
        "bastion_port",
        "alarm_email",
        "queue_age_alarm_hours",
    }
)
_VPC_ONLY_KEYS = ("subnet_ids", "database_security_group_id", "database_port", "bastion_port")

_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$"
)
_SECRET_ARN_FORM = "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf"  # noqa: S105
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
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
    database_port: int = DEFAULT_DATABASE_PORT
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

    def sides(self) -> tuple[BucketSide, BucketSide]:
        """Source, then destination."""
        return self.source, self.destination

    def copier_environment(self) -> dict[str, str]:
        """The copier's ``MSS_*`` variables (Powertools' are set by the stack)."""
        return {
            **self.source.environment(),
            **self.destination.environment(),
            ACL: self.acl,
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


def _read_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"-c config=PATH: file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"-c config=PATH: cannot read {str(path)!r}: {error}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"-c config=PATH: {str(path)!r} is not valid TOML: {error}") from None


def load_stack_config(path: Path) -> StackConfig:
    """Read and check a configuration file for a deployment."""
    document = _read_document(path)
    settings = load_config(path)  # checks every section but [stack]
    table = document.get(STACK_SECTION, {})
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: {STACK_SECTION} must be a [{STACK_SECTION}] table")
    return _stack_config(table, settings)


def _stack_config(table: Mapping[str, Any], settings: Settings) -> StackConfig:
    unknown = sorted(set(table) - STACK_KEYS)
    if unknown:
        raise SettingsError(
            f"[stack] unknown key(s): {', '.join(unknown)}; "
            f"known keys: {', '.join(sorted(STACK_KEYS))}"
        )
    reader = _Reader(table)
    max_concurrency = reader.whole(
        "max_concurrency", DEFAULT_MAX_CONCURRENCY, MIN_MAX_CONCURRENCY, MAX_MAX_CONCURRENCY
    )
    copier_timeout = reader.whole(
        "copier_timeout_seconds",
        DEFAULT_COPIER_TIMEOUT_SECONDS,
        MIN_COPIER_TIMEOUT_SECONDS,
        MAX_LAMBDA_TIMEOUT_SECONDS,
    )
    time_guard = reader.whole(
        "time_guard_seconds", int(DEFAULT_TIME_GUARD_SECONDS), 1, copier_timeout - 1
    )
    bastion_secret_arn = reader.secret_arn("bastion_secret_arn")
    database = settings.database
    return StackConfig(
        source=_side("source", settings.source, reader),
        destination=_side("destination", settings.destination, reader),
        database_secret_arn=reader.required_secret_arn(
            "database_secret_arn",
            "the Secrets Manager secret with the database's RDS-style JSON "
            "(username, password, host, port, dbname)",
        ),
        stack_name=reader.matching(
            "stack_name",
            DEFAULT_STACK_NAME,
            _STACK_NAME,
            "a CloudFormation stack name: a letter, then letters, digits or -",
        ),
        acl=settings.copy.acl,
        copier_threads=settings.copy.workers,
        page_size=None if database is None else database.page_size,
        database_sslmode=_sslmode(reader, bastion_secret_arn),
        architecture=reader.choice("architecture", "arm64", get_args(Architecture)),
        copier_memory_mb=reader.whole(
            "copier_memory_mb", DEFAULT_COPIER_MEMORY_MB, MIN_COPIER_MEMORY_MB, MAX_LAMBDA_MEMORY_MB
        ),
        copier_timeout_seconds=copier_timeout,
        time_guard_seconds=time_guard,
        batch_size=reader.whole("batch_size", DEFAULT_BATCH_SIZE, 1, MAX_BATCH_SIZE),
        max_concurrency=max_concurrency,
        reserved_concurrency=_reserved(reader, max_concurrency),
        max_receive_count=reader.whole(
            "max_receive_count", DEFAULT_MAX_RECEIVE_COUNT, 1, MAX_MAX_RECEIVE_COUNT
        ),
        bastion_secret_arn=bastion_secret_arn,
        vpc=_vpc(reader, bastion_secret_arn),
        alarm_email=reader.optional_matching("alarm_email", _EMAIL, "an email address"),
        queue_age_alarm_hours=reader.whole(
            "queue_age_alarm_hours", DEFAULT_QUEUE_AGE_ALARM_HOURS, 1, MAX_QUEUE_AGE_ALARM_HOURS
        ),
    )


def _side(side: Side, bucket: BucketSettings | None, reader: _Reader) -> BucketSide:
    if bucket is None:
        raise SettingsError(f'[{side}] is missing: the stack needs [{side}] bucket = "BUCKET-NAME"')
    key = f"{side}_credentials_secret_arn"
    secret = reader.secret_arn(key)
    if secret is None and not is_aws_endpoint(bucket.endpoint_url):
        raise SettingsError(
            f"[stack] {key} is missing: [{side}] endpoint_url is not AWS, so the copier "
            "reads that provider's keys from a Secrets Manager secret "
            "(JSON: access_key_id, secret_access_key)"
        )
    return BucketSide(
        side=side,
        bucket=bucket.bucket,
        key_prefix=bucket.key_prefix,
        endpoint_url=bucket.endpoint_url,
        region=bucket.region,
        addressing_style=bucket.addressing_style,
        credentials_secret_arn=secret,
    )


def _sslmode(reader: _Reader, bastion_secret_arn: str | None) -> SslMode:
    # Encrypted by default: by TLS, or by the SSH tunnel when there is a bastion.
    default: SslMode = "disable" if bastion_secret_arn else "require"
    value = reader.table.get("database_sslmode", default)
    return sslmode_setting(value, "[stack] database_sslmode")


def _reserved(reader: _Reader, max_concurrency: int) -> int | None:
    value = reader.table.get("reserved_concurrency", True)
    if value is False:
        return None
    if value is True:
        return max_concurrency
    if not isinstance(value, int) or value < max_concurrency:
        raise SettingsError(
            f"[stack] reserved_concurrency: {value!r} must be false (off) or a whole number "
            f"of at least max_concurrency ({max_concurrency}): below it, the SQS event "
            "source's invocations are throttled and valid messages reach the DLQ"
        )
    return value


def _vpc(reader: _Reader, bastion_secret_arn: str | None) -> VpcPlacement | None:
    vpc_id = reader.optional_matching("vpc_id", _VPC_ID, "a VPC id (vpc-0123456789abcdef0)")
    if vpc_id is None:
        present = [key for key in _VPC_ONLY_KEYS if key in reader.table]
        if present:
            raise SettingsError(
                f"[stack] {present[0]}: only used with vpc_id (the enumerator in a VPC); "
                "set vpc_id or remove it"
            )
        return None
    subnets = reader.table.get("subnet_ids")
    if (
        not isinstance(subnets, list)
        or not subnets
        or not all(isinstance(s, str) and _SUBNET_ID.match(s) for s in subnets)
    ):
        raise SettingsError(
            "[stack] subnet_ids: with vpc_id, a list of the VPC's private subnet ids "
            '(["subnet-0123456789abcdef0", …]) from which the database is reachable'
        )
    if "bastion_port" in reader.table and bastion_secret_arn is None:
        raise SettingsError("[stack] bastion_port: only used with bastion_secret_arn")
    return VpcPlacement(
        vpc_id=vpc_id,
        subnet_ids=tuple(dict.fromkeys(subnets)),
        database_security_group_id=reader.optional_matching(
            "database_security_group_id",
            _SECURITY_GROUP_ID,
            "a security group id (sg-0123456789abcdef0)",
        ),
        database_port=reader.port("database_port", DEFAULT_DATABASE_PORT),
        bastion_port=(
            reader.port("bastion_port", DEFAULT_BASTION_PORT) if bastion_secret_arn else None
        ),
    )


@dataclass(frozen=True)
class _Reader:
    """Typed reads of the ``[stack]`` table; each error names its key."""

    table: Mapping[str, Any]

    def whole(self, key: str, default: int, low: int, high: int) -> int:
        value = self.table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise SettingsError(
                f"[stack] {key}: {value!r} is not a whole number from {low} to {high}"
            )
        return value

    def port(self, key: str, default: int) -> int:
        return self.whole(key, default, 1, 65535)

    def text(self, key: str) -> str | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(f"[stack] {key}: expected a non-empty string, got {value!r}")
        return value.strip()

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> Any:
        value = self.table.get(key, default)
        if value not in choices:
            raise SettingsError(f"[stack] {key}: {value!r} is not one of {', '.join(choices)}")
        return value

    def optional_matching(self, key: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = self.text(key)
        if value is not None and not pattern.match(value):
            raise SettingsError(f"[stack] {key}: {value!r} is not {what}")
        return value

    def matching(self, key: str, default: str, pattern: re.Pattern[str], what: str) -> str:
        return self.optional_matching(key, pattern, what) or default

    def secret_arn(self, key: str) -> str | None:
        return self.optional_matching(
            key,
            _SECRET_ARN,
            f"a complete Secrets Manager secret ARN ({_SECRET_ARN_FORM}, "
            "with the 6-character suffix the console shows)",
        )

    def required_secret_arn(self, key: str, what: str) -> str:
        value = self.secret_arn(key)
        if value is None:
            raise SettingsError(
                f'[stack] {key} is missing: {what}; write it as "{_SECRET_ARN_FORM}"'
            )
        return value
