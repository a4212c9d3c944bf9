"""Building a copier from settings: the clients of both sides, made once by the edges.

The handlers and the CLI call :func:`build_copier` once per process; the copier itself
builds no client.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.copying.copier import Copier
from mastodon_s3_sync.copying.results import CopyOptions
from mastodon_s3_sync.storage.lean import lean_objects
from mastodon_s3_sync.storage.s3 import (
    Bucket,
    make_client,
    make_session,
    same_endpoint_and_credentials,
)


def open_bucket(settings: BucketSettings, side: str, max_connections: int) -> Bucket:
    """One side's bucket with its botocore client and, where it can, the lean client for
    single objects (signed with the same session's credentials and certificate checks)."""
    session = make_session(settings)
    client = make_client(settings, max_connections, session=session)
    lean = lean_objects(
        client, settings.bucket, max_connections, session.credentials(), session.tls_verify()
    )
    if lean is None:
        return Bucket(client, settings.bucket, settings.key_prefix, side)
    return Bucket(client, settings.bucket, settings.key_prefix, side, lean)


def build_copier(
    source: BucketSettings,
    destination: BucketSettings,
    options: CopyOptions,
    threads: int,
    stop: threading.Event | None = None,
) -> Copier:
    """A copier with clients for ``threads`` workers; server-side when the sides allow it.

    A source GET stays open while the object's ACL is read: two connections per thread.
    """
    return Copier(
        open_bucket(source, "source", 2 * threads + 2),
        open_bucket(destination, "destination", threads + 2),
        replace(options, server_side=same_endpoint_and_credentials(source, destination)),
        stop,
    )
