"""S3 servers on 127.0.0.1 for the server tiers.

Servers are started once per session (two per kind, standing for two providers with
separate state); tests isolate themselves by using fresh bucket names. A pytest plugin
(``pytest_plugins`` in tests/conftest.py): its fixtures are everyone's.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Iterator

import pytest

from mastodon_s3_sync.demo.s3servers import MotoS3Server, RcloneS3Server

BucketNames = Callable[[], str]
"""Returns a bucket name no other test uses."""
MOTO_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
"""Credentials moto accepts, as the standard AWS environment gives them to a child process."""

_SESSION_TAG = uuid.uuid4().hex[:8]
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def moto_servers() -> Iterator[tuple[MotoS3Server, MotoS3Server]]:
    """Two independent moto_server processes: provider A and provider B."""
    with MotoS3Server() as provider_a, MotoS3Server() as provider_b:
        yield provider_a, provider_b


@pytest.fixture(scope="session")
def rclone_servers() -> Iterator[tuple[RcloneS3Server, RcloneS3Server]]:
    """Two independent ``rclone serve s3`` processes, each over its own temporary directory."""
    with RcloneS3Server() as provider_a, RcloneS3Server() as provider_b:
        yield provider_a, provider_b


@pytest.fixture
def fresh_bucket_name(request: pytest.FixtureRequest) -> BucketNames:
    """A factory of unique, valid bucket names (lowercase, 3-63 characters)."""
    label = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:30].strip("-") or "bucket"

    def make() -> str:
        return f"{label}-{_SESSION_TAG}-{next(_counter)}"

    return make
