"""The enumerator's events and answers, and run ids: checked and built here once.

Lambda tells a function nothing about how it was invoked, so the event says it: ``async``
true (``start``, ``start --resume`` and the self-continuation set it) makes a failed
invocation raise, so that Lambda retries it and then puts the event, with its cursor, in
the failed-events queue; false answers ``{"ok": false, ...}`` to a caller who waits. Left
out, it is true for an event that sends and false for a dry run: a hand-made
``--invocation-type Event`` run must not end in an answer nobody reads, while a waiting
caller who forgets it still gets the error, as Lambda's ``FunctionError``. ``continued``
marks the events of the self-continuation (``status`` counts enumerations begun and done).

The function (:mod:`.lambda_enumerator`) and the operator commands (``start``, ``status``)
share them; nothing here needs Powertools, so the CLI imports it without the ``lambda``
extra. The functions' settings come from :mod:`mastodon_s3_sync.config.lambda_env`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mastodon_s3_sync.config.lambda_env import WHOLE_NUMBER
from mastodon_s3_sync.config.values import parse_since
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.catalog import CatalogFilter
from mastodon_s3_sync.mastodon.database import check_bigint
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.transport.enumeration import Cursor, EnumerationResult
from mastodon_s3_sync.transport.messages import MAX_RUN_ID

RUN_ID_EXAMPLE = "20261127T061500Z-3f9a1c"


_RUN_ID = re.compile(r"(\d{8}T\d{6}Z)-[A-Za-z0-9]+")


_RUN_ID_TIME = "%Y%m%dT%H%M%SZ"


_EVENT_KEYS = frozenset(
    {
        "type",
        "after_id",
        "limit",
        "rows_left",
        "since",
        "skip_remote_cache",
        "skip_backups",
        "dry_run",
        "run_id",
        "async",
        "continued",
    }
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
    skip_backups: bool = False
    """Leave backups out (the function's ``MSS_SKIP_BACKUPS`` may say so too)."""
    asynchronous: bool = False
    """Nobody waits for the answer: a failure raises (the module's docstring says why)."""
    continued: bool = False
    """A continuation's event, not an enumeration's first."""


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
    if isinstance(value, str) and WHOLE_NUMBER.fullmatch(value):
        value = int(value)  # ids may arrive as strings: snowflakes exceed 2^53
    if not isinstance(value, int) or isinstance(value, bool):
        raise EventError(f"{key} must be a whole number (or a string of digits)")
    if minimum is not None and value < minimum:
        raise EventError(f"{key} must be at least {minimum}")
    try:
        return check_bigint(value, key)
    except SettingsError as error:
        raise EventError(str(error)) from None


def _flag(event: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = event.get(key, default)
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
    dry_run = _flag(event, "dry_run")
    return EnumeratorRequest(
        run_id,
        cursor,
        filt,
        dry_run,
        _flag(event, "skip_backups"),
        asynchronous=_flag(event, "async", default=not dry_run),
        continued=_flag(event, "continued"),
    )


def continuation_event(
    request: EnumeratorRequest, cursor: Cursor, *, continued: bool = True
) -> dict[str, Any]:
    """The event a stopped enumerator invokes itself with, to go on where it stopped
    (``start`` builds its first events with it too: ``continued`` false)."""
    event: dict[str, Any] = {
        "type": [str(record_type) for record_type in cursor.types],
        "run_id": request.run_id,
        "skip_remote_cache": request.filter.skip_remote_cache,
        "dry_run": request.dry_run,
        "async": request.asynchronous,
    }
    if continued:
        event["continued"] = True
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
        "left_out": {str(line.record_type): line.reason for line in result.left_out},
        "stopped_at": None
        if stopped is None
        else {
            "types": [str(t) for t in stopped.types],
            "after_id": None if stopped.after_id is None else str(stopped.after_id),
            "rows_left": stopped.rows_left,
        },
        "continued": continued,
    }
