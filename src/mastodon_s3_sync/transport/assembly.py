"""Building a copier: the clients of both sides, made once by an edge, then the copier over them.

The handlers and the CLI call :func:`open_buckets` once per process (per Lambda container)
and pass the result to :func:`copier_for`; the copier itself builds no client. Tests pass
buckets of their own (real clients on local servers) the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import HeadBucketOutputTypeDef

HeadAnswers = Mapping[str, "HeadBucketOutputTypeDef"]
"""The HeadBucket answers a preflight already has, by side (``source``, ``destination``)."""


@dataclass(frozen=True)
class Buckets:
    """Both sides with their clients, and whether a server-side copy can join them (only
    when they share endpoint and credentials)."""

    source: Bucket
    destination: Bucket
    server_side: bool = False


def open_bucket(
    settings: BucketSettings,
    side: str,
    max_connections: int,
    head: HeadBucketOutputTypeDef | None = None,
) -> Bucket:
    """One side's bucket with its botocore client and, where it can, the lean client for
    single objects (signed with the same session's credentials and certificate checks);
    or a directory (Mastodon's local file storage). ``head``: the bucket's HeadBucket
    answer, if the caller already asked."""
    if settings.path is not None:
        # Imported here: the Lambda functions never have a disk side, nor its sniffer.
        from mastodon_s3_sync.storage.disk import disk_bucket

        return disk_bucket(settings, side)
    session = make_session(settings)
    client = make_client(settings, max_connections, session=session)
    lean = lean_objects(
        client,
        settings.name,
        max_connections,
        session.credentials(),
        session.tls_verify(),
        head,
    )
    if lean is None:
        return Bucket(client, settings.name, settings.key_prefix, side)
    return Bucket(client, settings.name, settings.key_prefix, side, lean)


def open_buckets(
    source: BucketSettings,
    destination: BucketSettings,
    threads: int,
    heads: HeadAnswers | None = None,
) -> Buckets:
    """Both sides' clients, with connections for a copier of ``threads`` workers.

    A source GET stays open while the object's ACL is read: two connections per thread.
    """
    heads = heads or {}
    return Buckets(
        open_bucket(source, "source", 2 * threads + 2, heads.get("source")),
        open_bucket(destination, "destination", threads + 2, heads.get("destination")),
        same_endpoint_and_credentials(source, destination),
    )


def copier_for(
    buckets: Buckets, options: CopyOptions, stop: threading.Event | None = None
) -> Copier:
    """A copier over clients already built; server-side when the sides allow it."""
    server_side = replace(options, server_side=buckets.server_side)
    return Copier(buckets.source, buckets.destination, server_side, stop)


def build_copier(
    source: BucketSettings,
    destination: BucketSettings,
    options: CopyOptions,
    threads: int,
    stop: threading.Event | None = None,
    heads: HeadAnswers | None = None,
) -> Copier:
    """:func:`open_buckets` then :func:`copier_for`, for an edge that keeps no other use of
    the clients (``run``, ``worker``)."""
    return copier_for(open_buckets(source, destination, threads, heads), options, stop)
