"""``start``: a serverless run begins with one enumerator invocation per type.

Each invocation gets the same run id and the same absolute ``since``, so every type selects
from the same moment; the event is checked here, as the handler checks it, before any is sent.
The events are marked ``async`` (a dry run's are not: it waits for the answer), so that a
failed invocation is retried and then kept, with its cursor, for ``start --resume``
(:mod:`.failed_events`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mastodon_s3_sync.errors import SettingsError, SyncError
from mastodon_s3_sync.mastodon.catalog import SkippedType
from mastodon_s3_sync.mastodon.selection import select
from mastodon_s3_sync.ops.stack import StackOutputs
from mastodon_s3_sync.transport.lambda_edge import (
    EventError,
    continuation_event,
    new_run_id,
    parse_enumerator_event,
)

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


@dataclass(frozen=True)
class StartedRun:
    """The events sent to the enumerator, one per type, a dry run's answers, and the kinds
    left out by a flag."""

    run_id: str
    events: tuple[dict[str, Any], ...]
    dry_run_answers: tuple[dict[str, Any], ...] = ()
    left_out: tuple[SkippedType, ...] = ()


def start_run(
    lambda_: LambdaClient,
    stack: StackOutputs,
    types: Sequence[str],
    now: datetime,
    *,
    since: str | None = None,
    skip_remote_cache: bool = False,
    skip_backups: bool = False,
    dry_run: bool = False,
) -> StartedRun:
    """Invoke the enumerator once per type, asynchronously (a dry run waits for counts);
    none for a type a flag leaves out (``--skip-backups``, ``--skip-remote-cache``)."""
    event: dict[str, Any] = {
        "type": list(types),
        "run_id": new_run_id(now),
        "skip_remote_cache": skip_remote_cache,
        "dry_run": dry_run,
    }
    if since is not None:
        event["since"] = since
    try:  # the handler's own check, here before anything is invoked
        request = parse_enumerator_event(event, now)
    except EventError as error:
        raise SettingsError(f"start: {error}") from None
    selection = select(
        request.cursor.types,
        skip_backups="--skip-backups" if skip_backups else None,
        skip_remote_cache="--skip-remote-cache" if skip_remote_cache else None,
    )
    if not selection.record_types:
        reasons = "; ".join(f"{t}: {reason}" for t, reason in selection.set_aside.items())
        raise SettingsError(f"start: every type asked for is left out ({reasons})")
    # The event that runs the request from its cursor: ``since`` made absolute once,
    # so every type's invocation selects from the same moment.
    events = tuple(
        continuation_event(request, replace(request.cursor, types=(record_type,)), continued=False)
        for record_type in selection.record_types
    )
    answers = [_invoke(lambda_, stack.enumerator_function, one, wait=dry_run) for one in events]
    left_out = tuple(SkippedType(t, reason) for t, reason in selection.set_aside.items())
    return StartedRun(
        request.run_id, events, tuple(answer for answer in answers if answer is not None), left_out
    )


def _invoke(
    lambda_: LambdaClient, function: str, event: dict[str, Any], *, wait: bool
) -> dict[str, Any] | None:
    response = lambda_.invoke(
        FunctionName=function,
        InvocationType="RequestResponse" if wait else "Event",
        Payload=json.dumps(event).encode(),
    )
    if not wait:
        return None
    answer: dict[str, Any] = json.loads(response["Payload"].read() or b"null") or {}
    if "FunctionError" in response or not answer.get("ok"):
        reason = answer.get("error") or answer.get("errorMessage") or "no reason given"
        raise SyncError(f"the enumerator failed for {', '.join(event['type'])}: {reason}")
    return answer
