"""The one retry policy: capped exponential backoff with full jitter, and what is transient."""

from __future__ import annotations

import botocore.exceptions

from mastodon_s3_sync.storage.retry import RetryPolicy, is_transient
from mastodon_s3_sync.storage.s3 import TransientRetries


class _Response:
    def __init__(self, status: int) -> None:
        self.status_code = status


def test_waits_stay_under_the_doubling_ceiling_and_its_cap() -> None:
    policy = RetryPolicy(attempts=10, base_seconds=1.0, max_backoff_seconds=20.0)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 20.0), (9, 20.0)):
        waits = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= wait <= ceiling for wait in waits)
        assert max(waits) > ceiling / 2  # full jitter spreads over the whole range


def test_pause_sleeps_through_the_injected_function() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=3, base_seconds=0.5, sleep=slept.append)
    policy.pause(1)
    policy.pause(2)
    assert len(slept) == 2
    assert 0 <= slept[0] <= 0.5
    assert 0 <= slept[1] <= 1.0
    assert [policy.may_retry(n) for n in (1, 2, 3)] == [True, True, False]


def test_transient_answers() -> None:
    assert is_transient(503, "")
    assert is_transient(400, "SlowDown")
    assert not is_transient(404, "NoSuchKey")
    assert not is_transient(403, "AccessDenied")


def test_botocore_hook_retries_transient_errors_until_the_attempts_are_used() -> None:
    hook = TransientRetries(RetryPolicy(attempts=3))
    throttled = (_Response(503), {"Error": {"Code": "SlowDown"}})
    denied = (_Response(403), {"Error": {"Code": "AccessDenied"}})
    dropped = botocore.exceptions.ConnectionClosedError(endpoint_url="http://127.0.0.1:1")
    first = hook(1, response=throttled)
    assert first is not None
    assert 0 <= first <= 1.0
    assert hook(2, caught_exception=dropped) is not None
    assert hook(3, response=throttled) is None  # attempts used up: botocore's handler decides
    assert hook(1, response=denied) is None
