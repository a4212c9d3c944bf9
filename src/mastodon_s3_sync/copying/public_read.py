"""Reading objects as a stranger would: an anonymous HEAD through the instance's public URL.

An ACL is not what the world sees: a bucket policy, a public-access block or a CDN decides
what an anonymous reader gets. ``verify --public-url`` asks through the URL Mastodon's pages
link to (``S3_ALIAS_HOST``, a CDN, or the bucket's own endpoint), with no credentials.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import quote

import urllib3

from mastodon_s3_sync.storage.lean import TRANSPORT_ERRORS

TIMEOUT_SECONDS = 10.0
ATTEMPTS = 3  # an anonymous read is retried on a dropped connection, not on a status


@dataclass(frozen=True, slots=True)
class PublicAnswer:
    """What an anonymous HEAD got: its status, and for a 200 the size and Content-Type;
    ``error`` when no answer came."""

    status: int | None
    size: int | None = None
    content_type: str | None = None
    error: str = ""

    def describe(self) -> str:
        """``HTTP 403`` or the transport error, for a finding."""
        return f"HTTP {self.status}" if self.status is not None else self.error


class AnonymousReader:
    """HEADs ``BASE/<key>`` (``base_url`` an http(s) URL) with no credentials; counts its
    requests. Thread-safe."""

    def __init__(self, base_url: str, pool_size: int = 16) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = urllib3.PoolManager(
            maxsize=pool_size,
            timeout=urllib3.Timeout(TIMEOUT_SECONDS),
            retries=urllib3.Retry(total=ATTEMPTS - 1, status=0, redirect=3),
        )
        self.requests = 0
        self._lock = threading.Lock()

    def url(self, key: str) -> str:
        """The public URL of ``key`` (the whole destination key, prefix included)."""
        return f"{self.base_url}/{quote(key, safe='/~')}"

    def head(self, key: str) -> PublicAnswer:
        """An anonymous HEAD of ``key``."""
        with self._lock:
            self.requests += 1
        try:
            response = self._http.request("HEAD", self.url(key))
        except (urllib3.exceptions.HTTPError, *TRANSPORT_ERRORS) as error:
            return PublicAnswer(None, error=f"no answer: {type(error).__name__}")
        length = response.headers.get("Content-Length")
        return PublicAnswer(
            response.status,
            int(length) if length is not None and length.isdigit() else None,
            response.headers.get("Content-Type"),
        )

    def close(self) -> None:
        """Close the connections."""
        self._http.clear()
