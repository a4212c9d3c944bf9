"""Settings of the Lambda functions: from their MSS_* environment variables and Secrets Manager.

The handlers pass ``os.environ`` and a secret reader in, so this module never reads either.
Each section is checked by the same settings model as the CLI's; errors name the variable
(``environment variable MSS_ACL: …``) instead of a config file key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mastodon_s3_sync.config.checks import DEFAULT_PORT, DEFAULT_SSH_PORT
from mastodon_s3_sync.config.settings import (
    BucketSettings,
    CopySettings,
    DatabaseSettings,
    SshSettings,
    validated,
)
from mastodon_s3_sync.config.values import parse_database_url
from mastodon_s3_sync.contract import (
    ACL,
    BASTION_SECRET_ARN,
    COPIER_THREADS,
    CREDENTIALS_SECRET_ARN,
    DATABASE_SECRET_ARN,
    DATABASE_SSLMODE,
    DATABASE_URL,
    DEFAULT_TIME_GUARD_SECONDS,
    MAX_LAMBDA_TIMEOUT_SECONDS,
    PAGE_SIZE,
    PRIVATE_OBJECTS,
    QUEUE_URL,
    SIDE_VARIABLES,
    SKIP_BACKUPS,
    TIME_GUARD_SECONDS,
    side_variable,
)
from mastodon_s3_sync.errors import SettingsError

SecretReader = Callable[[str], Mapping[str, Any]]
"""Returns a Secrets Manager secret's JSON value, by ARN or name."""


WHOLE_NUMBER = re.compile(r"-?[0-9]+")  # ASCII only: str.isdigit takes "²", int refuses it
_VARIABLES = {
    ("database", "page_size"): PAGE_SIZE,
    ("database", "sslmode"): DATABASE_SSLMODE,
    ("copy", "acl"): ACL,
    ("copy", "workers"): COPIER_THREADS,
    ("copy", "skip_backups"): SKIP_BACKUPS,
    ("copy", "private_objects"): PRIVATE_OBJECTS,
}
"""Model field -> its variable, where the name is not ``MSS_<SIDE>_<FIELD>``."""


def _variable(section: str, key: str | None) -> str:
    if section in ("source", "destination"):
        return side_variable(section, (key or "").upper()).rstrip("_")
    return _VARIABLES.get((section, key or ""), f"{section} secret {key}")


def _name(section: str, key: str | None) -> str:
    variable = _variable(section, key)
    return f"environment variable {variable}" if variable.startswith("MSS_") else variable


def _unset(section: str, key: str | None) -> str:
    return " is not set (the stack sets it)"


def _section(section: str, values: Mapping[str, Any]) -> Any:
    """One section of :class:`Settings` from the environment's values; errors name them."""
    present = {key: value for key, value in values.items() if value is not None}
    document: dict[str, Any] = {section: present}
    return getattr(validated(document, _name, _unset), section)


def _whole_or_text(raw: str | None) -> int | str | None:
    """A variable's whole number as an int (else the text, for the model to refuse)."""
    if raw is None or not raw.strip():
        return None
    return int(raw) if WHOLE_NUMBER.fullmatch(raw.strip()) else raw


def _not_set(name: str) -> SettingsError:
    return SettingsError(f"environment variable {name} is not set (the stack sets it)")


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise _not_set(name)
    return value


def database_settings(environ: Mapping[str, str], read_secret: SecretReader) -> DatabaseSettings:
    """From ``MSS_DATABASE_SECRET_ARN`` (RDS-style JSON) or ``MSS_DATABASE_URL``."""
    tuning = {
        "page_size": _whole_or_text(environ.get(PAGE_SIZE)),
        "sslmode": environ.get(DATABASE_SSLMODE) or None,
    }
    if environ.get(DATABASE_URL):
        # The URL's own sslmode, as given; a CA file has no place in a Lambda's URL.
        url = asdict(parse_database_url(environ[DATABASE_URL], DATABASE_URL))
        url["sslrootcert"] = None
        database: DatabaseSettings = _section("database", url | {"page_size": tuning["page_size"]})
        return database
    secret = read_secret(_required(environ, DATABASE_SECRET_ARN))
    missing = [key for key in ("username", "password", "host", "dbname") if not secret.get(key)]
    if missing:
        raise SettingsError(f"database secret lacks {', '.join(missing)} (RDS-style JSON)")
    database = _section(
        "database",
        {
            "name": str(secret["dbname"]),
            "user": str(secret["username"]),
            "host": str(secret["host"]),
            "port": secret.get("port") or DEFAULT_PORT,
            "password": str(secret["password"]),
            **tuning,
        },
    )
    return database


def bastion_settings(environ: Mapping[str, str], read_secret: SecretReader) -> SshSettings | None:
    """The SSH bastion from ``MSS_BASTION_SECRET_ARN``, when set."""
    arn = environ.get(BASTION_SECRET_ARN)
    if not arn:
        return None
    secret = read_secret(arn)
    missing = [key for key in ("host", "user", "private_key", "host_key") if not secret.get(key)]
    if missing:
        raise SettingsError(f"bastion secret lacks {', '.join(missing)}")
    fields = ("host", "user", "private_key", "host_key")
    bastion: SshSettings = _section(
        "bastion",
        {key: str(secret[key]) for key in fields}
        | {"port": secret.get("port") or DEFAULT_SSH_PORT},
    )
    return bastion


def source_key_prefix(environ: Mapping[str, str]) -> str:
    """Mastodon's ``S3_KEY_PREFIX`` on the source bucket (``MSS_SOURCE_KEY_PREFIX``)."""
    return environ.get(side_variable("source", "KEY_PREFIX"), "")


def bucket_settings(
    environ: Mapping[str, str], side: str, read_secret: SecretReader
) -> BucketSettings:
    """``MSS_SOURCE_*`` or ``MSS_DESTINATION_*``; non-AWS keys from a secret."""
    prefix = side_variable(side, "")
    values: dict[str, Any] = {
        name.lower(): environ.get(prefix + name) or None for name in SIDE_VARIABLES
    }
    values["key_prefix"] = values["key_prefix"] or ""
    if values.get("bucket") is None:  # a Lambda function has buckets only, no directory
        raise _not_set(prefix + "BUCKET")
    arn = environ.get(prefix + CREDENTIALS_SECRET_ARN)
    if arn:
        secret = read_secret(arn)
        if not secret.get("access_key_id") or not secret.get("secret_access_key"):
            raise SettingsError(f"{prefix}{CREDENTIALS_SECRET_ARN}: secret lacks the key pair")
        values["access_key_id"] = str(secret["access_key_id"])
        values["secret_access_key"] = str(secret["secret_access_key"])
    bucket: BucketSettings = _section(side, values)
    return bucket


def copy_settings(environ: Mapping[str, str]) -> CopySettings:
    """The destination ACL (``MSS_ACL``), threads per copier (``MSS_COPIER_THREADS``) and
    what becomes of private objects without ACLs (``MSS_PRIVATE_OBJECTS``)."""
    values = {
        "acl": environ.get(ACL) or None,
        "workers": _whole_or_text(environ.get(COPIER_THREADS)),
        "private_objects": environ.get(PRIVATE_OBJECTS) or None,
    }
    copy: CopySettings = _section("copy", values)
    return copy


def skip_backups(environ: Mapping[str, str]) -> bool:
    """``MSS_SKIP_BACKUPS``: ``true`` leaves users' archive downloads out (default false)."""
    raw = environ.get(SKIP_BACKUPS, "").strip()
    value: bool | str = {"": False, "false": False, "true": True}.get(raw.lower(), raw)
    copy: CopySettings = _section("copy", {"skip_backups": value})
    return copy.skip_backups


def time_guard_seconds(environ: Mapping[str, str]) -> float:
    """``MSS_TIME_GUARD_SECONDS`` (default 60)."""
    raw, low, high = environ.get(TIME_GUARD_SECONDS, "").strip(), 0, MAX_LAMBDA_TIMEOUT_SECONDS
    if not raw:
        return DEFAULT_TIME_GUARD_SECONDS
    if not WHOLE_NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise SettingsError(
            f"environment variable {TIME_GUARD_SECONDS}: {raw!r} is not a number "
            f"from {low} to {high}"
        )
    return float(raw)


@dataclass(frozen=True)
class EnumeratorSettings:
    """Everything the enumerator function reads from its environment and secrets."""

    database: DatabaseSettings
    bastion: SshSettings | None
    source_key_prefix: str
    time_guard_seconds: float
    queue_url: str | None
    """None where the environment names no queue: only a dry run goes without."""
    skip_backups: bool = False
    """Leave backups out of every enumeration (``MSS_SKIP_BACKUPS``)."""

    def sending_queue_url(self) -> str:
        """The queue to send to; a settings error when there is none."""
        if self.queue_url is None:
            raise _not_set(QUEUE_URL)
        return self.queue_url


def enumerator_settings(
    environ: Mapping[str, str], read_secret: SecretReader
) -> EnumeratorSettings:
    """The enumerator's settings (``MSS_QUEUE_URL``, the database, the bastion, ...)."""
    return EnumeratorSettings(
        time_guard_seconds=time_guard_seconds(environ),
        database=database_settings(environ, read_secret),
        bastion=bastion_settings(environ, read_secret),
        source_key_prefix=source_key_prefix(environ),
        queue_url=environ.get(QUEUE_URL, "").strip() or None,
        skip_backups=skip_backups(environ),
    )
