"""The copier Lambda handler between two moto_server providers: its environment, what it
prints, and the rows, references and message bodies the tests feed it.

A pytest plugin (``pytest_plugins`` in tests/conftest.py): ``sides`` and ``output`` are
fixtures of the integration and fault tiers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

import functions.copier.handler as handler_module
from mastodon_s3_sync.demo.media import SeedManifest, create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import REGION, MotoS3Server
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType, Row, objects_for_row
from mastodon_s3_sync.transport.messages import MessagePacker
from tests.events.factory import FakeLambdaContext, message_ids
from tests.support.lambda_output import CurrentStdout, Output
from tests.support.s3_servers import BucketNames

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RUN_ID = "20261127T061500Z-c0ffee"
METRICS_NAMESPACE = "MastodonS3SyncTest"


@dataclass(frozen=True)
class Sides:
    """The source bucket on provider A and the destination bucket on provider B."""

    source: S3Client
    destination: S3Client
    source_bucket: str
    destination_bucket: str
    provider_a: MotoS3Server


@pytest.fixture
def sides(
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Sides]:
    """Fresh buckets, the function's environment, and a fresh container (no cached copier)."""
    provider_a, provider_b = moto_servers
    source, destination = provider_a.client(), provider_b.client()
    source_bucket, destination_bucket = fresh_bucket_name(), fresh_bucket_name()
    create_bucket(source, source_bucket)
    create_bucket(destination, destination_bucket)
    for side, server, bucket in (
        ("SOURCE", provider_a, source_bucket),
        ("DESTINATION", provider_b, destination_bucket),
    ):
        monkeypatch.setenv(f"MSS_{side}_BUCKET", bucket)
        monkeypatch.setenv(f"MSS_{side}_ENDPOINT_URL", server.endpoint_url)
        monkeypatch.setenv(f"MSS_{side}_REGION", REGION)
        monkeypatch.setenv(f"MSS_{side}_ADDRESSING_STYLE", "path")
    monkeypatch.setenv("MSS_COPIER_THREADS", "4")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "copier")
    handler_module.runtime.cache_clear()
    yield Sides(source, destination, source_bucket, destination_bucket, provider_a)
    if handler_module.runtime.cache_info().currsize:
        _copier, pool = handler_module.runtime()
        pool.shutdown(wait=True)
    handler_module.runtime.cache_clear()


@pytest.fixture
def output(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Output:
    """What the copier handler prints: Powertools log lines and EMF metric documents."""
    # The logger kept the sys.stdout of the handler module's import (at collection);
    # capture replaces sys.stdout per test phase, so write to whichever is current.
    monkeypatch.setattr(handler_module.logger.registered_handler, "stream", CurrentStdout())
    return Output(capsys)


def media_rows(first_id: int, count: int) -> list[Row]:
    """Local PNG media attachments: an original and a small each."""
    return [
        {
            "id": first_id + n,
            "file_file_name": f"{first_id + n:016x}.png",
            "file_content_type": "image/png",
            "file_file_size": 4096,
            "remote_url": None,
        }
        for n in range(count)
    ]


def account_rows(first_id: int, count: int) -> list[Row]:
    """Local accounts with a JPEG avatar."""
    return [
        {
            "id": first_id + n,
            "avatar_file_name": f"{first_id + n:016x}.jpg",
            "avatar_content_type": "image/jpeg",
            "avatar_file_size": 2048,
            "domain": None,
        }
        for n in range(count)
    ]


def refs_of(record_type: RecordType, rows: Sequence[Row]) -> list[ObjectRef]:
    """Every object of ``rows``."""
    return [ref for row in rows for ref in objects_for_row(record_type, row)]


def bodies(record_type: RecordType, refs: Sequence[ObjectRef]) -> list[str]:
    """The message bodies the enumerator would send for ``refs``."""
    packer = MessagePacker(RUN_ID, record_type)
    packed = [body for body in map(packer.add, refs) if body is not None]
    last = packer.flush()
    return [*packed, last] if last is not None else packed


def one_body(record_type: RecordType, refs: Sequence[ObjectRef]) -> str:
    """The single message body for ``refs`` (few enough to fit in one)."""
    (body,) = bodies(record_type, refs)
    return body


def seed(sides: Sides, refs: Sequence[ObjectRef], private: Sequence[int] = ()) -> SeedManifest:
    """Write ``refs`` to the source bucket, as Mastodon would have."""
    return seed_bucket(sides.source, sides.source_bucket, refs, private_record_ids=private)


def failed_ids(event: dict[str, Any], context: FakeLambdaContext) -> list[str]:
    """Invoke the handler; the ids Lambda returns to the queue.

    Those listed in ``batchItemFailures``, or all of them when the handler raised because
    every record failed (Powertools' ``BatchProcessingError``: Lambda retries the batch).
    """
    try:
        response = handler_module.handler(event, context.as_lambda_context())
    except BatchProcessingError:
        return message_ids(event)
    identifiers = [failure["itemIdentifier"] for failure in response["batchItemFailures"]]
    assert all(isinstance(identifier, str) for identifier in identifiers)
    return [str(identifier) for identifier in identifiers]
