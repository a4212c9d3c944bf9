"""What the Lambda handlers need beyond the core: their events, responses and settings.

Settings come from environment variables (names below) and Secrets Manager; the
handlers pass ``os.environ`` and a secret reader in, so this module never reads either.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .catalog import CatalogFilter
from .copier import AclMode, CopyOptions
from .errors import SettingsError
from .fanout import Cursor, EnumerationResult
from .layout import RecordType
from .messages import MAX_RUN_ID
from .settings import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_WORKERS,
    MAX_PAGE_SIZE,
    MAX_WORKERS,
    BucketSettings,
    DatabaseSettings,
    SshSettings,
    acl_setting,
    endpoint_setting,
    parse_database_url,
    parse_since,
    sslmode_setting,
)

# Environment variables of the functions (set by the CDK stack).
QUEUE_URL = "MSS_QUEUE_URL"
DATABASE_SECRET_ARN = "MSS_DATABASE_SECRET_ARN"  # noqa: S105 (a variable name) RDS-style JSON
DATABASE_URL = "MSS_DATABASE_URL"  # alternative to the secret (tests, non-RDS)
DATABASE_SSLMODE = "MSS_DATABASE_SSLMODE"
BASTION_SECRET_ARN = "MSS_BASTION_SECRET_ARN"  # noqa: S105 (a variable name)
PAGE_SIZE = "MSS_PAGE_SIZE"
ACL = "MSS_ACL"
COPIER_THREADS = "MSS_COPIER_THREADS"
TIME_GUARD_SECONDS = "MSS_TIME_GUARD_SECONDS"
SIDE_VARIABLES = ("BUCKET", "KEY_PREFIX", "ENDPOINT_URL", "REGION", "ADDRESSING_STYLE")
CREDENTIALS_SECRET_ARN = "CREDENTIALS_SECRET_ARN"  # noqa: S105 (a variable name suffix)

RUN_STARTED_MESSAGE = "enumeration started"
"""The enumerator's first log line of each invocation that sends (not a dry run), with the
``run_id``: ``status`` and ``missing`` find the latest run by it."""
RUN_ID_EXAMPLE = "20261127T061500Z-3f9a1c"
_RUN_ID = re.compile(r"(\d{8}T\d{6}Z)-[A-Za-z0-9]+")
_RUN_ID_TIME = "%Y%m%dT%H%M%SZ"

DEFAULT_TIME_GUARD_SECONDS = 60.0
"""A copier starts no new object, and an enumerator continues in a new invocation,
when less than this is left of the Lambda's time."""

SecretReader = Callable[[str], Mapping[str, Any]]
"""Returns a Secrets Manager secret's JSON value, by ARN or name."""

_WHOLE_NUMBER = re.compile(r"-?[0-9]+")  # ASCII only: str.isdigit takes "²", int refuses it
_EVENT_KEYS = frozenset(
    {"type", "after_id", "limit", "rows_left", "since", "skip_remote_cache", "dry_run", "run_id"}
)


class EventError(ValueError):
    """An enumerator event that cannot be run; the text says what to fix."""


@dataclass(frozen=True)
class EnumeratorRequest:
    """A parsed enumerator event."""

    run_id: str
    cursor: Cursor
    filter: CatalogFilter
    dry_run: bool


def new_run_id(now: datetime) -> str:
    """A sortable, unique run id such as ``20261127T061500Z-3f9a1c``."""
    return f"{now.strftime(_RUN_ID_TIME)}-{secrets.token_hex(3)}"


def run_id_time(run_id: str) -> datetime | None:
    """When a run began, from its id (:func:`new_run_id`); None if it is no such id."""
    match = _RUN_ID.fullmatch(run_id) if len(run_id) <= MAX_RUN_ID else None
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), _RUN_ID_TIME).replace(tzinfo=UTC)
    except ValueError:  # no such date
        return None


def _whole(event: Mapping[str, Any], key: str, *, minimum: int | None = None) -> int | None:
    value = event.get(key)
    if value is None:
        return None
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value):
        value = int(value)  # ids may arrive as strings: snowflakes exceed 2^53
    if not isinstance(value, int) or isinstance(value, bool):
        raise EventError(f"{key} must be a whole number (or a string of digits)")
    if minimum is not None and value < minimum:
        raise EventError(f"{key} must be at least {minimum}")
    return value


def _flag(event: Mapping[str, Any], key: str) -> bool:
    value = event.get(key, False)
    if not isinstance(value, bool):
        raise EventError(f"{key} must be true or false")
    return value


def parse_enumerator_event(event: object, now: datetime) -> EnumeratorRequest:
    """Check an event; relative ``since`` values are fixed to a time now, once."""
    if not isinstance(event, dict):
        raise EventError("the event must be a JSON object")
    unknown = sorted(set(event) - _EVENT_KEYS)
    if unknown:
        raise EventError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_EVENT_KEYS))}"
        )
    names = event.get("type")
    names = [names] if isinstance(names, str) else names
    known = [str(record_type) for record_type in RecordType]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise EventError(f"type is required: one of {', '.join(known)} or all")
    for name in names:
        if name != "all" and name not in known:
            raise EventError(f"unknown type {name!r}; use one of {', '.join(known)} or all")
    types = (
        tuple(RecordType) if "all" in names else tuple(RecordType(n) for n in dict.fromkeys(names))
    )
    since = event.get("since")
    if since is not None and not isinstance(since, str):
        raise EventError("since must be a string: an ISO 8601 time or a duration like 36h")
    try:
        since_time = parse_since(since, now, "since") if since else None
    except SettingsError as error:
        raise EventError(str(error)) from None
    run_id = event.get("run_id") or new_run_id(now)
    if not isinstance(run_id, str) or run_id_time(run_id) is None:
        # status and missing take the run's time window from its id
        raise EventError(
            f"run_id must be a run id like {RUN_ID_EXAMPLE} (its UTC start time, -, then "
            f"letters or digits; at most {MAX_RUN_ID} characters); leave it out for a new one"
        )
    limit = _whole(event, "limit", minimum=1)
    rows_left = _whole(event, "rows_left", minimum=1)
    cursor = Cursor(types, _whole(event, "after_id"), rows_left or limit, limit)
    filt = CatalogFilter(since=since_time, skip_remote_cache=_flag(event, "skip_remote_cache"))
    return EnumeratorRequest(run_id, cursor, filt, _flag(event, "dry_run"))


def continuation_event(request: EnumeratorRequest, cursor: Cursor) -> dict[str, Any]:
    """The event a stopped enumerator invokes itself with, to go on where it stopped."""
    event: dict[str, Any] = {
        "type": [str(record_type) for record_type in cursor.types],
        "run_id": request.run_id,
        "skip_remote_cache": request.filter.skip_remote_cache,
        "dry_run": request.dry_run,
    }
    if cursor.after_id is not None:
        event["after_id"] = str(cursor.after_id)
    if cursor.limit is not None:
        event["limit"] = cursor.limit
    if cursor.rows_left is not None:
        event["rows_left"] = cursor.rows_left
    if request.filter.since is not None:
        event["since"] = request.filter.since.replace(tzinfo=UTC).isoformat()
    return event


def enumerator_response(
    result: EnumerationResult, *, dry_run: bool, continued: bool
) -> dict[str, Any]:
    """The JSON the enumerator returns: counts per type and where it stopped."""
    stopped = result.stopped_at
    return {
        "ok": True,
        "run_id": result.run_id,
        "dry_run": dry_run,
        "counts": {str(t): vars(count) for t, count in result.counts.items()},
        "stopped_at": None
        if stopped is None
        else {
            "types": [str(t) for t in stopped.types],
            "after_id": None if stopped.after_id is None else str(stopped.after_id),
            "rows_left": stopped.rows_left,
        },
        "continued": continued,
    }


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
    return environ.get("MSS_SOURCE_KEY_PREFIX", "")


def bucket_settings(
    environ: Mapping[str, str], side: str, read_secret: SecretReader
) -> BucketSettings:
    """``MSS_SOURCE_*`` or ``MSS_DESTINATION_*``; non-AWS keys from a secret."""
    prefix = f"MSS_{side.upper()}_"
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


def copy_options(environ: Mapping[str, str]) -> CopyOptions:
    """ACL mode from ``MSS_ACL`` (default copy)."""
    return CopyOptions(acl=AclMode(acl_setting(environ.get(ACL) or "copy", ACL)))


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
    if not _WHOLE_NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise SettingsError(
            f"environment variable {name}: {raw!r} is not a number from {low} to {high}"
        )
    return int(raw)
