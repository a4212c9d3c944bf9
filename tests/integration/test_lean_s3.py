"""The lean hot-path client against real servers: signatures rclone accepts, boto3's shapes,
ACL classes, retries of throttling, and errors that look like botocore's."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import botocore.exceptions
import pytest

from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.demo.media import create_bucket
from mastodon_s3_sync.demo.s3servers import MotoS3Server, RcloneS3Server
from mastodon_s3_sync.storage.lean import TRANSPORT_ERRORS, LeanObjects, lean_objects
from mastodon_s3_sync.storage.retry import RetryPolicy
from mastodon_s3_sync.storage.s3 import BotoObjects, make_client, make_session
from tests.support.faultproxy import Fault, FaultProxy, FaultRule, Operation
from tests.support.s3_servers import BucketNames

pytestmark = pytest.mark.integration

KEYS = ("a/b c+d=e~f_g.png", "ünïcödé/ключ.jpg", "x/%41;:@&$,.png", "plain/000/001/x.png")


def _lean(
    settings: BucketSettings, bucket: str, connections: int, retry: RetryPolicy | None = None
) -> LeanObjects:
    """The lean client as the edge builds it: credentials and TLS from the session."""
    session = make_session(settings)
    credentials = session.credentials()
    assert credentials is not None
    return LeanObjects(
        make_client(settings, connections, session=session),
        bucket,
        connections,
        credentials=credentials,
        verify=session.tls_verify(),
        **({"retry": retry} if retry is not None else {}),
    )


def _fields(body: bytes, acl: str) -> dict[str, object]:
    return {
        "ContentType": "image/png",
        "CacheControl": "public, max-age=315576000, immutable",
        "ContentDisposition": "inline",
        "ContentMD5": base64.b64encode(hashlib.md5(body).digest()).decode(),  # noqa: S324
        "ACL": acl,
        "Metadata": {"origin": "mastodon"},
        "Expires": datetime(2030, 1, 1, tzinfo=UTC),
    }


def test_put_and_get_are_signed_as_a_credential_checking_server_expects(
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server], fresh_bucket_name: BucketNames
) -> None:
    server, bucket = rclone_servers[0], fresh_bucket_name()
    client = make_client(server.bucket_settings(bucket), 4)
    create_bucket(client, bucket)
    lean = _lean(server.bucket_settings(bucket), bucket, 4)
    for number, key in enumerate(KEYS):
        body = f"object {number} {key}".encode() * 100
        put = lean.put_object(key, body, _fields(body, "public-read"))
        assert put["ETag"].strip('"') == hashlib.md5(body).hexdigest()  # noqa: S324
        seen = client.get_object(Bucket=bucket, Key=key)
        assert seen["Body"].read() == body
        assert (seen["ContentType"], seen["CacheControl"]) == (
            "image/png",
            "public, max-age=315576000, immutable",
        )
        got = lean.get_object(key)
        assert got["Body"].read() == body
        assert got["Body"].read(1) == b""
        got["Body"].close()
        assert got["ContentLength"] == len(body)
        assert got["ContentDisposition"] == "inline"
        assert got["Metadata"] == {"origin": "mastodon"}
        head = lean.head_object(key)
        assert (head["ContentLength"], head["ETag"]) == (len(body), put["ETag"])
    with pytest.raises(botocore.exceptions.ClientError) as no_head:
        lean.head_object("not/there.png")
    assert no_head.value.response["Error"]["Code"] == "404"
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        lean.get_object("not/there.png")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    wrong = replace(server.bucket_settings(bucket), secret_access_key="wrong-secret")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        _lean(wrong, bucket, 1).get_object(KEYS[0])
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "wrong-secret" not in str(refused.value)


@pytest.mark.parametrize("kind", ["moto", "rclone"])
def test_list_pages_are_those_botocore_reads(
    kind: str,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server],
    fresh_bucket_name: BucketNames,
) -> None:
    # given keys that need encoding, under two prefixes, on a signature-checking server too
    server = moto_servers[0] if kind == "moto" else rclone_servers[0]
    bucket = fresh_bucket_name()
    client = make_client(server.bucket_settings(bucket), 4)
    create_bucket(client, bucket)
    keys = [*KEYS, *(f"a/{n:03d} +%.png" for n in range(7))]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    lean, boto = _lean(server.bucket_settings(bucket), bucket, 2), BotoObjects(client, bucket)
    # when both list the same windows: a prefix in pages of 3, all after a key, a bare page
    for prefix, start_after, max_keys in (("a/", "", 3), ("a/", "a/002 +%.png", 3), ("", "", 50)):
        got, expected = (
            objects.list_page(prefix, start_after, max_keys) for objects in (lean, boto)
        )
        # then the pages are the same: keys decoded, sizes, ETags, whether more follow
        assert got["IsTruncated"] == bool(expected["IsTruncated"])
        assert got["Contents"] == [
            {"Key": item["Key"], "Size": item["Size"], "ETag": item["ETag"]}
            for item in expected.get("Contents", [])
        ]
    assert len(lean.list_page("", "", 50)["Contents"]) == len(keys)


def test_acl_class_and_expires_as_boto3_reads_them(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames
) -> None:
    server, bucket = moto_servers[0], fresh_bucket_name()
    client = make_client(server.bucket_settings(bucket), 4)
    create_bucket(client, bucket)
    lean = _lean(server.bucket_settings(bucket), bucket, 4)
    for key, acl in (("public/a.png", "public-read"), ("private/b.png", "private")):
        lean.put_object(key, b"x", _fields(b"x", acl))
    assert lean.is_public("public/a.png") is True
    assert lean.is_public("private/b.png") is False
    got = lean.get_object("public/a.png")
    got["Body"].close()
    assert got["Expires"] == client.head_object(Bucket=bucket, Key="public/a.png")["Expires"]


def test_throttling_is_retried_and_a_broken_body_raises(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames
) -> None:
    server, bucket = moto_servers[0], fresh_bucket_name()
    create_bucket(server.client(), bucket)
    rules = [
        FaultRule(Fault.SLOW_DOWN_503, operations=(Operation.PUT,), rate=0.4),
        FaultRule(Fault.RESET_MID_BODY, operations=(Operation.GET,), key_pattern="broken"),
    ]
    with FaultProxy(server.endpoint_url, rules=rules, seed=3) as proxy:
        settings = replace(server.bucket_settings(bucket), endpoint_url=proxy.url)
        session = make_session(settings)
        lean = lean_objects(
            make_client(settings, 4, session=session),
            bucket,
            4,
            session.credentials(),
            session.tls_verify(),
        )
        assert lean is not None
        body = bytes(range(256)) * 4096  # 1 MiB: a reset lands mid-body
        for number in range(12):
            lean.put_object(f"ok/{number}.bin", body, _fields(body, "private"))
        lean.put_object("broken/x.bin", body, _fields(body, "private"))
        throttled = proxy.stats.injected.get((Operation.PUT, Fault.SLOW_DOWN_503), 0)
        assert throttled > 0
        for number in range(12):
            got = lean.get_object(f"ok/{number}.bin")
            assert got["Body"].read() == body
            got["Body"].close()
        broken = lean.get_object("broken/x.bin")
        with pytest.raises(TRANSPORT_ERRORS):
            broken["Body"].read()
        broken["Body"].close()
        # the pool recovers: the next request on a fresh connection works
        again = lean.get_object("ok/0.bin")
        assert again["Body"].read() == body
        again["Body"].close()


def test_a_server_that_drops_every_connection_costs_each_attempt_once(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames
) -> None:
    # a listener that accepts and closes at once, counting connections
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    server, bucket = moto_servers[0], fresh_bucket_name()
    create_bucket(server.client(), bucket)
    settings = replace(
        server.bucket_settings(bucket), endpoint_url=f"http://127.0.0.1:{listener.getsockname()[1]}"
    )
    waits: list[float] = []
    lean = _lean(settings, bucket, 2, RetryPolicy(attempts=3, sleep=waits.append))
    started = time.monotonic()
    with pytest.raises(TRANSPORT_ERRORS):
        lean.get_object("a.png")
    listener.close()
    assert len(accepted) == 3
    assert len(waits) == 2  # one backoff between attempts, none after the last
    assert all(0 <= wait <= 2.0 for wait in waits)
    assert time.monotonic() - started < 10


def _pieces(body: bytes, size: int, fail_after: int | None = None) -> Iterator[memoryview]:
    """``body`` in pieces of ``size`` bytes; raises once ``fail_after`` bytes went out."""
    view = memoryview(body)
    for start in range(0, len(body), size):
        if fail_after is not None and start >= fail_after:
            raise RuntimeError("the source broke off")
        yield view[start : start + size]


@pytest.mark.parametrize("kind", ["rclone", "moto"])
def test_a_streamed_put_is_sent_once_and_a_cut_stream_stores_nothing(
    kind: str,
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server],
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
) -> None:
    server = rclone_servers[0] if kind == "rclone" else moto_servers[0]
    bucket = fresh_bucket_name()
    create_bucket(server.client(), bucket)
    body = bytes(range(256)) * 8192  # 2 MiB
    rules = [FaultRule(Fault.SLOW_DOWN_503, operations=(Operation.PUT,), key_pattern="slow")]
    with FaultProxy(server.endpoint_url, rules=rules) as proxy:
        settings = replace(server.bucket_settings(bucket), endpoint_url=proxy.url)
        lean = _lean(settings, bucket, 2)
        # a stream in pieces arrives whole, with its headers
        put = lean.put_stream(
            "whole.bin", _pieces(body, 256 * 1024), len(body), _fields(body, "private")
        )
        assert put["ETag"].strip('"') == hashlib.md5(body).hexdigest()  # noqa: S324
        got = server.client().get_object(Bucket=bucket, Key="whole.bin")
        assert got["Body"].read() == body
        assert got["ContentType"] == "image/png"
        # a stream cut short ends its request: nothing is stored under the key
        with pytest.raises(RuntimeError, match="broke off"):
            lean.put_stream(
                "cut.bin",
                _pieces(body, 256 * 1024, fail_after=1024 * 1024),
                len(body),
                _fields(body, "private"),
            )
        with pytest.raises(botocore.exceptions.ClientError) as missing:
            server.client().head_object(Bucket=bucket, Key="cut.bin")
        assert missing.value.response["Error"]["Code"] in {"404", "NoSuchKey"}
        # a throttled stream is not sent again (its chunks are gone): one PUT, raised
        before = proxy.stats.forwarded.get(Operation.PUT, 0) + proxy.stats.total_injected
        with pytest.raises(botocore.exceptions.ClientError, match="SlowDown"):
            lean.put_stream(
                "slow.bin", _pieces(body, 1024 * 1024), len(body), _fields(body, "private")
            )
        after = proxy.stats.forwarded.get(Operation.PUT, 0) + proxy.stats.total_injected
        assert after - before == 1
        # and the pool carries on
        lean.put_object("after.bin", body, _fields(body, "private"))
        assert server.client().head_object(Bucket=bucket, Key="after.bin")["ContentLength"] == len(
            body
        )
