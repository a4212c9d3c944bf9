"""A SeaweedFS S3 endpoint for the server tiers: a third real S3 implementation.

One ``weed server`` per session (about 4 s to start); tests that need a pair use two fresh
buckets on it, or pair it with moto. A pytest plugin (``pytest_plugins`` in
tests/conftest.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime

import pytest

from mastodon_s3_sync.config.settings import CopySettings
from mastodon_s3_sync.demo.media import seed_bucket
from mastodon_s3_sync.demo.s3servers import SeaweedS3Server
from tests.support.mastodon_db import all_refs
from tests.support.migration import Migration


@pytest.fixture(scope="session")
def seaweedfs_server() -> Iterator[SeaweedS3Server]:
    """SeaweedFS on 127.0.0.1 (master, volume, filer, S3 gateway), credentials enforced."""
    with SeaweedS3Server() as server:
        yield server


LARGE_VIDEO_ID = 9_100_000
LARGE_VIDEO_SIZE = 12 * 1024 * 1024
MULTIPART = CopySettings(multipart_threshold_bytes=8 * 1024 * 1024, part_size_bytes=5 * 1024 * 1024)
"""A 12 MiB object goes multipart in three parts (5 + 5 + 2 MiB)."""


def add_large_video(migration: Migration) -> str:
    """A media row whose original is above :data:`MULTIPART`'s threshold; returns its key.

    The source object is written in parts too, so its ETag is a multipart one.
    """
    migration.db.conn.run(
        "INSERT INTO media_attachments (id, type, file_file_name, file_content_type, "
        "file_file_size, created_at, updated_at) VALUES (:id, 2, 'big.mp4', 'video/mp4', "
        ":size, :now, :now)",
        id=LARGE_VIDEO_ID,
        size=LARGE_VIDEO_SIZE,
        now=datetime(2026, 1, 1),
    )
    refs = [
        ref
        for ref in all_refs(migration.db)
        if ref.record_id == LARGE_VIDEO_ID and ref.style == "original"
    ]
    seeded = seed_bucket(
        migration.source.client(),
        migration.source_bucket,
        refs,
        large_sizes=True,
        multipart_threshold=MULTIPART.multipart_threshold_bytes,
    )
    migration.refs += refs
    migration.manifest.objects.update(seeded.objects)
    (key,) = seeded.objects
    return key


def multipart_etag(body: bytes, part_size: int) -> str:
    """AWS's multipart ETag: the MD5 of the parts' MD5s, a dash, the number of parts."""
    parts = [body[at : at + part_size] for at in range(0, len(body), part_size)]
    digests = b"".join(hashlib.md5(part, usedforsecurity=False).digest() for part in parts)
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(parts)}"
