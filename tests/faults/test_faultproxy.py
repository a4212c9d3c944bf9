"""The fault proxy itself: it passes S3 traffic through unchanged and injects each fault."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import time
from collections.abc import Iterator

import pytest

from mastodon_s3_sync.demo.s3servers import LocalS3Server, MotoS3Server, RcloneS3Server
from tests.support.faultproxy import Fault, FaultProxy, FaultRule, Operation, classify, mixed_faults
from tests.support.s3_servers import BucketNames

BODY = bytes(range(256)) * 1024  # 256 KiB


@pytest.fixture
def moto(moto_servers: tuple[MotoS3Server, MotoS3Server]) -> MotoS3Server:
    return moto_servers[0]


@pytest.fixture
def bucket_with_object(moto: MotoS3Server, fresh_bucket_name: BucketNames) -> str:
    """A bucket on moto holding ``obj`` (256 KiB) and ``empty`` (0 bytes).

    Raw clients do not sign: the bucket and its objects are open to anonymous requests.
    """
    bucket = fresh_bucket_name()
    client = moto.client()
    client.create_bucket(Bucket=bucket, ACL="public-read-write")
    for key, body in (("obj", BODY), ("empty", b"")):
        client.put_object(Bucket=bucket, Key=key, Body=body, ACL="public-read-write")
    return bucket


@pytest.fixture
def raw() -> Iterator[list[http.client.HTTPConnection]]:
    """Raw connections opened by a test, closed after it."""
    opened: list[http.client.HTTPConnection] = []
    yield opened
    for connection in opened:
        connection.close()


def connect(
    proxy: FaultProxy, opened: list[http.client.HTTPConnection]
) -> http.client.HTTPConnection:
    host, port = proxy.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    opened.append(connection)
    return connection


def read_until_broken(response: http.client.HTTPResponse) -> bytes:
    """The body received before the connection broke; fails if the body ends cleanly."""
    received = b""
    try:
        while chunk := response.read1(65536):
            received += chunk
        response.read()
    except (ConnectionResetError, http.client.IncompleteRead):
        return received
    raise AssertionError(f"the body ended cleanly after {len(received)} bytes")


def through(server: LocalS3Server, proxy: FaultProxy) -> LocalS3Server:
    """A view of ``server`` whose clients go through ``proxy``."""
    view = type(server).__new__(type(server))
    view.__dict__.update(server.__dict__)
    view._port = int(proxy.url.rsplit(":", 1)[1])
    return view


@pytest.mark.parametrize("kind", ["moto", "rclone"])
def test_a_20_mib_object_and_a_multipart_upload_pass_through_unchanged(
    kind: str,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server],
    fresh_bucket_name: BucketNames,
) -> None:
    # given a proxy in front of the server (rclone checks SigV4 signatures)
    server: LocalS3Server = moto_servers[0] if kind == "moto" else rclone_servers[0]
    body = os.urandom(20 * 1024 * 1024)
    bucket = fresh_bucket_name()
    with FaultProxy(server.endpoint_url) as proxy:
        client = through(server, proxy).client()
        # when objects go up (single PUT and multipart) and come back through it
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="big", Body=body, ContentType="video/mp4")
        upload = client.create_multipart_upload(Bucket=bucket, Key="parts")
        etags = [
            client.upload_part(
                Bucket=bucket,
                Key="parts",
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=body[(number - 1) * 8 * 2**20 : number * 8 * 2**20],
            )["ETag"]
            for number in (1, 2, 3)
        ]
        client.complete_multipart_upload(
            Bucket=bucket,
            Key="parts",
            UploadId=upload["UploadId"],
            MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, 1)]
            },
        )
        got = client.get_object(Bucket=bucket, Key="big")
        got_md5 = hashlib.md5(got["Body"].read(), usedforsecurity=False).digest()
        got_parts = client.get_object(Bucket=bucket, Key="parts")["Body"].read()
        listed = client.list_objects_v2(Bucket=bucket)["KeyCount"]
        stats = proxy.stats

    # then the bytes and headers are the server's, and every request was forwarded once
    assert got_md5 == hashlib.md5(body, usedforsecurity=False).digest()
    assert got["ContentType"] == "video/mp4"
    assert got_parts == body
    assert listed == 2
    assert stats.total_injected == 0
    assert stats.forwarded[Operation.PUT] == 1
    assert stats.forwarded[Operation.UPLOAD_PART] == 3
    assert stats.forwarded[Operation.GET] == 2
    assert stats.forwarded[Operation.LIST] == 1
    assert stats.forwarded[Operation.CREATE_MULTIPART] == 1
    assert stats.forwarded[Operation.COMPLETE_MULTIPART] == 1


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (Fault.SLOW_DOWN_503, 503, "SlowDown"),
        (Fault.UNAVAILABLE_503, 503, "ServiceUnavailable"),
        (Fault.INTERNAL_500, 500, "InternalError"),
        (Fault.REQUEST_TIMEOUT_400, 400, "RequestTimeout"),
        (Fault.ACCESS_DENIED_403, 403, "AccessDenied"),
    ],
)
def test_error_faults_answer_s3_error_xml_without_forwarding(
    fault: Fault,
    status: int,
    code: str,
    moto: MotoS3Server,
    bucket_with_object: str,
    raw: list[http.client.HTTPConnection],
) -> None:
    with FaultProxy(moto.endpoint_url, rules=[FaultRule(fault)]) as proxy:
        connection = connect(proxy, raw)
        connection.request("PUT", f"/{bucket_with_object}/new", body=b"x" * 1000)
        response = connection.getresponse()
        body = response.read()
        # the connection stays usable: the body was read
        connection.request("GET", f"/{bucket_with_object}/obj")
        second = connection.getresponse()
        second.read()
        stats = proxy.stats
    assert response.status == status
    assert f"<Code>{code}</Code>".encode() in body
    assert second.status == status
    assert stats.injected == {(Operation.PUT, fault): 1, (Operation.GET, fault): 1}
    assert stats.total_forwarded == 0
    head = moto.client().list_objects_v2(Bucket=bucket_with_object)
    assert [item["Key"] for item in head["Contents"]] == ["empty", "obj"]


def test_a_head_is_never_answered_request_timeout(
    moto: MotoS3Server, bucket_with_object: str, raw: list[http.client.HTTPConnection]
) -> None:
    # given a proxy that answers RequestTimeout to everything
    with FaultProxy(moto.endpoint_url, rules=[FaultRule(Fault.REQUEST_TIMEOUT_400)]) as proxy:
        connection = connect(proxy, raw)
        # when a HEAD (whose answer has no body to carry the code) goes through
        connection.request("HEAD", f"/{bucket_with_object}/obj")
        response = connection.getresponse()
        response.read()
        stats = proxy.stats
    # then it is forwarded untouched
    assert response.status == 200
    assert stats.injected == {}
    assert stats.forwarded[Operation.HEAD] == 1


def test_reset_mid_body_sends_part_then_resets(
    moto: MotoS3Server, bucket_with_object: str, raw: list[http.client.HTTPConnection]
) -> None:
    rules = [FaultRule(Fault.RESET_MID_BODY, operations=(Operation.GET,))]
    with FaultProxy(moto.endpoint_url, rules=rules) as proxy:
        connection = connect(proxy, raw)
        connection.request("GET", f"/{bucket_with_object}/obj")
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") == str(len(BODY))
        received = read_until_broken(response)
        assert proxy.stats.injected == {(Operation.GET, Fault.RESET_MID_BODY): 1}
    assert 0 < len(received) < len(BODY)
    assert received == BODY[: len(received)]


def test_truncate_body_declares_the_full_length_and_sends_less(
    moto: MotoS3Server, bucket_with_object: str, raw: list[http.client.HTTPConnection]
) -> None:
    rules = [FaultRule(Fault.TRUNCATE_BODY, key_pattern="^obj$")]
    with FaultProxy(moto.endpoint_url, rules=rules) as proxy:
        connection = connect(proxy, raw)
        connection.request("GET", f"/{bucket_with_object}/obj")
        response = connection.getresponse()
        with pytest.raises(http.client.IncompleteRead) as caught:
            response.read()
        # another key does not match the rule
        other = connect(proxy, raw)
        other.request("GET", f"/{bucket_with_object}/empty")
        other_response = other.getresponse()
        other_body = other_response.read()
    assert caught.value.expected == len(BODY) - len(caught.value.partial)
    assert 0 < len(caught.value.partial) < len(BODY)
    assert other_response.status == 200
    assert other_body == b""


def test_a_cut_answer_without_body_is_dropped_after_upstream_acted(
    moto: MotoS3Server, bucket_with_object: str, raw: list[http.client.HTTPConnection]
) -> None:
    rules = [FaultRule(Fault.RESET_MID_BODY, operations=(Operation.PUT,))]
    with FaultProxy(moto.endpoint_url, rules=rules) as proxy:
        connection = connect(proxy, raw)
        connection.request("PUT", f"/{bucket_with_object}/lost-answer", body=b"payload")
        with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
            connection.getresponse()
    stored = moto.client().get_object(Bucket=bucket_with_object, Key="lost-answer")
    assert stored["Body"].read() == b"payload"


def test_delay_applies_to_every_request_and_delay_rules_add_to_it(
    moto: MotoS3Server, bucket_with_object: str, raw: list[http.client.HTTPConnection]
) -> None:
    rules = [FaultRule(Fault.DELAY, operations=(Operation.HEAD,), seconds=0.2)]
    with FaultProxy(moto.endpoint_url, delay=0.05, rules=rules) as proxy:
        connection = connect(proxy, raw)
        timings = {}
        for method in ("GET", "HEAD"):
            started = time.monotonic()
            connection.request(method, f"/{bucket_with_object}/obj")
            response = connection.getresponse()
            response.read()
            timings[method] = time.monotonic() - started
            assert response.status == 200
        stats = proxy.stats
    assert timings["GET"] >= 0.05
    assert timings["HEAD"] >= 0.25
    assert stats.injected == {(Operation.HEAD, Fault.DELAY): 1}
    assert stats.forwarded == {Operation.GET: 1, Operation.HEAD: 1}


def test_hard_down_answers_503_until_the_deadline_then_forwards(
    moto: MotoS3Server, bucket_with_object: str, raw: list[http.client.HTTPConnection]
) -> None:
    with FaultProxy(moto.endpoint_url, rules=[FaultRule.hard_down(0.5)]) as proxy:
        connection = connect(proxy, raw)
        statuses = []
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            connection.request("HEAD", f"/{bucket_with_object}/obj")
            response = connection.getresponse()
            response.read()
            statuses.append((time.monotonic() - started, response.status))
            time.sleep(0.05)
    assert all(status == 503 for at, status in statuses if at < 0.45)
    assert all(status == 200 for at, status in statuses if at > 0.55)
    assert {status for _, status in statuses} == {200, 503}


def test_rates_are_reproducible_and_close_to_the_configured_share(
    moto: MotoS3Server, bucket_with_object: str, raw: list[http.client.HTTPConnection]
) -> None:
    counts = []
    for _ in range(2):
        with FaultProxy(moto.endpoint_url, rules=mixed_faults(0.3), seed=7) as proxy:
            outcomes = []
            for _ in range(100):
                connection = connect(proxy, raw)
                connection.request("HEAD", f"/{bucket_with_object}/empty")
                try:
                    response = connection.getresponse()
                    response.read()
                    outcomes.append(response.status)
                except (ConnectionError, http.client.HTTPException):
                    outcomes.append(0)
            counts.append(outcomes)
            injected = proxy.stats.total_injected
    assert counts[0] == counts[1]
    assert 15 <= injected <= 45
    assert sum(status != 200 for status in counts[0]) == injected


@pytest.mark.parametrize(
    ("method", "target", "headers", "operation"),
    [
        ("GET", "/b/k", (), Operation.GET),
        ("HEAD", "/b/a/b.png", (), Operation.HEAD),
        ("PUT", "/b/k", (), Operation.PUT),
        ("PUT", "/b/k", ("X-Amz-Copy-Source",), Operation.COPY),
        ("GET", "/b?list-type=2&prefix=x", (), Operation.LIST),
        ("GET", "/b", (), Operation.LIST),
        ("GET", "/b/k?acl", (), Operation.ACL),
        ("PUT", "/b/k?acl", (), Operation.ACL),
        ("POST", "/b/k?uploads", (), Operation.CREATE_MULTIPART),
        ("PUT", "/b/k?partNumber=2&uploadId=u", (), Operation.UPLOAD_PART),
        ("POST", "/b/k?uploadId=u", (), Operation.COMPLETE_MULTIPART),
        ("DELETE", "/b/k?uploadId=u", (), Operation.ABORT_MULTIPART),
        ("GET", "/b?uploads", (), Operation.LIST_MULTIPART),
        ("PUT", "/b", (), Operation.BUCKET),
        ("HEAD", "/b", (), Operation.BUCKET),
        ("GET", "/", (), Operation.OTHER),
    ],
)
def test_operations_are_told_apart_by_method_and_query(
    method: str, target: str, headers: tuple[str, ...], operation: Operation
) -> None:
    assert classify(method, target, headers) is operation


def test_rules_refuse_impossible_settings() -> None:
    with pytest.raises(ValueError, match="rate"):
        FaultRule(Fault.INTERNAL_500, rate=1.5)
    with pytest.raises(ValueError, match="until_s"):
        FaultRule(Fault.INTERNAL_500, after_s=2, until_s=1)
    rule = FaultRule(Fault.DELAY, seconds=1)
    assert dataclasses.replace(rule, seconds=2).seconds == 2
