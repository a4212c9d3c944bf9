"""Settings of the Lambda functions: from their MSS_* environment variables and Secrets Manager.

The handlers pass ``os.environ`` and a secret reader in, so this module never reads either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from mastodon_s3_sync.config.settings import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_WORKERS,
    MAX_PAGE_SIZE,
    MAX_WORKERS,
    AclMode,
    BucketSettings,
    DatabaseSettings,
    SshSettings,
    acl_setting,
    endpoint_setting,
    parse_database_url,
    sslmode_setting,
)
from mastodon_s3_sync.contract import (
    ACL,
    BASTION_SECRET_ARN,
    COPIER_THREADS,
    CREDENTIALS_SECRET_ARN,
    DATABASE_SECRET_ARN,
    DATABASE_SSLMODE,
    DATABASE_URL,
    DEFAULT_TIME_GUARD_SECONDS,
    PAGE_SIZE,
    SIDE_VARIABLES,
    TIME_GUARD_SECONDS,
    side_variable,
)
from mastodon_s3_sync.errors import SettingsError

SecretReader = Callable[[str], Mapping[str, Any]]
"""Returns a Secrets Manager secret's JSON value, by ARN or name."""


WHOLE_NUMBER = re.compile(r"-?[0-9]+")  # ASCII only: str.isdigit takes "²", int refuses it


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is not set (the stack sets it)")
    return value


def database_settings(environ: Mapping[str, str], read_secret: SecretReader) -> DatabaseSettings:
    """From ``MSS_DATABASE_SECRET_ARN`` (RDS-style JSON) or ``MSS_DATABASE_URL``."""
    page_size = _number(environ, PAGE_SIZE, DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    sslmode = environ.get(DATABASE_SSLMODE) or "disable"
    if environ.get(DATABASE_URL):
        url = parse_database_url(environ[DATABASE_URL], DATABASE_URL)
        return DatabaseSettings(
            url.name, url.user, url.host, url.port, url.password, url.sslmode, page_size
        )
    secret = read_secret(_required(environ, DATABASE_SECRET_ARN))
    missing = [key for key in ("username", "password", "host", "dbname") if not secret.get(key)]
    if missing:
        raise SettingsError(f"database secret lacks {', '.join(missing)} (RDS-style JSON)")
    return DatabaseSettings(
        name=str(secret["dbname"]),
        user=str(secret["username"]),
        host=str(secret["host"]),
        port=int(secret.get("port") or 5432),
        password=str(secret["password"]),
        sslmode=sslmode_setting(sslmode, DATABASE_SSLMODE),
        page_size=page_size,
    )


def bastion_settings(environ: Mapping[str, str], read_secret: SecretReader) -> SshSettings | None:
    """The SSH bastion from ``MSS_BASTION_SECRET_ARN``, when set."""
    arn = environ.get(BASTION_SECRET_ARN)
    if not arn:
        return None
    secret = read_secret(arn)
    missing = [key for key in ("host", "user", "private_key", "host_key") if not secret.get(key)]
    if missing:
        raise SettingsError(f"bastion secret lacks {', '.join(missing)}")
    return SshSettings(
        host=str(secret["host"]),
        user=str(secret["user"]),
        private_key=str(secret["private_key"]),
        port=int(secret.get("port") or 22),
        host_key=str(secret["host_key"]),
    )


def source_key_prefix(environ: Mapping[str, str]) -> str:
    """Mastodon's ``S3_KEY_PREFIX`` on the source bucket (``MSS_SOURCE_KEY_PREFIX``)."""
    return environ.get(side_variable("source", "KEY_PREFIX"), "")


def bucket_settings(
    environ: Mapping[str, str], side: str, read_secret: SecretReader
) -> BucketSettings:
    """``MSS_SOURCE_*`` or ``MSS_DESTINATION_*``; non-AWS keys from a secret."""
    prefix = side_variable(side, "")
    values = {name.lower(): environ.get(prefix + name, "") for name in SIDE_VARIABLES}
    endpoint = values["endpoint_url"] or None
    if endpoint:
        endpoint_setting(endpoint, prefix + "ENDPOINT_URL")
    keys: dict[str, str] = {}
    arn = environ.get(prefix + CREDENTIALS_SECRET_ARN)
    if arn:
        secret = read_secret(arn)
        if not secret.get("access_key_id") or not secret.get("secret_access_key"):
            raise SettingsError(f"{prefix}{CREDENTIALS_SECRET_ARN}: secret lacks the key pair")
        keys = {
            "access_key_id": str(secret["access_key_id"]),
            "secret_access_key": str(secret["secret_access_key"]),
        }
    style = values["addressing_style"] or "auto"
    if style not in ("auto", "path", "virtual"):
        raise SettingsError(f"{prefix}ADDRESSING_STYLE: {style!r} is not auto, path or virtual")
    return BucketSettings(
        bucket=_required(environ, prefix + "BUCKET"),
        key_prefix=values["key_prefix"],
        endpoint_url=endpoint,
        region=values["region"] or None,
        addressing_style=style,  # type: ignore[arg-type]
        **keys,
    )


def acl_mode(environ: Mapping[str, str]) -> AclMode:
    """The destination ACL mode, ``MSS_ACL`` (default copy)."""
    return acl_setting(environ.get(ACL) or "copy", ACL)


def copier_threads(environ: Mapping[str, str]) -> int:
    """Threads per copier invocation, ``MSS_COPIER_THREADS`` (default 16)."""
    return _number(environ, COPIER_THREADS, DEFAULT_WORKERS, 1, MAX_WORKERS)


def time_guard_seconds(environ: Mapping[str, str]) -> float:
    """``MSS_TIME_GUARD_SECONDS`` (default 60)."""
    return float(_number(environ, TIME_GUARD_SECONDS, int(DEFAULT_TIME_GUARD_SECONDS), 0, 900))


def _number(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not WHOLE_NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise SettingsError(
            f"environment variable {name}: {raw!r} is not a number from {low} to {high}"
        )
    return int(raw)
