"""The one retry policy: how many attempts, how long between them, and what is transient.

Every retry loop (botocore's ``needs-retry`` hook, the lean S3 client, the copier's
whole-object attempts, the SQS batch sender) asks one :class:`RetryPolicy`, so there is one
backoff formula: capped exponential backoff with full jitter. The sleep is injected, so tests
pass a recording fake instead of patching ``time.sleep``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.config import Config

RETRY_ATTEMPTS = 10
"""Attempts per request (throttling, 5xx, dropped connections) with backoff."""
MAX_BACKOFF_SECONDS = 20.0
"""Longest wait between two attempts: ten attempts ride out about a minute of outage."""
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
    }
)
"""Error codes worth another attempt, whatever the HTTP status."""


def is_transient(status: int, code: str) -> bool:
    """Whether an error answer (HTTP status, error code) is worth another attempt."""
    return status in TRANSIENT_STATUS or code in TRANSIENT_CODES


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; before try n+1 a wait drawn from
    ``[0, min(max_backoff_seconds, base_seconds * 2**(n-1))]`` (full jitter)."""

    attempts: int = RETRY_ATTEMPTS
    base_seconds: float = 1.0
    max_backoff_seconds: float = MAX_BACKOFF_SECONDS
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_backoff_seconds, self.base_seconds * 2.0 ** (attempt - 1))
        return random.uniform(0, ceiling)  # noqa: S311 (jitter, not crypto)

    def may_retry(self, attempt: int) -> bool:
        """Whether another attempt follows failed attempt number ``attempt``."""
        return attempt < self.attempts

    def pause(self, attempt: int) -> None:
        """Wait the backoff after failed attempt number ``attempt``."""
        self.sleep(self.delay(attempt))

    def botocore_config(self) -> Config:
        """A botocore ``Config`` whose standard retries make this many attempts (merge
        other settings into it)."""
        # botocore reads "max_attempts" as retries after the first; "total_max_attempts"
        # counts them all.
        return Config(retries={"mode": "standard", "total_max_attempts": self.attempts})


REQUEST_RETRIES = RetryPolicy()
"""Per HTTP request to S3, SQS and the other AWS APIs."""
