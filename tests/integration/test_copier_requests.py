"""The exact requests the copier sends, through both object-store adapters.

botocore: its Stubber (no network). Lean: the same expectations answered by a recording
server on 127.0.0.1 and checked on the wire (method, path, headers, body); the requests it
leaves to botocore (multipart, CopyObject) still meet the Stubber.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.response import StreamingBody
from botocore.stub import Stubber

from mastodon_s3_sync.config.settings import AclMode, CopySettings
from mastodon_s3_sync.copying.copier import STREAM_RETRIES, Copier
from mastodon_s3_sync.copying.results import CopyOptions
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.storage.lean import LeanObjects
from mastodon_s3_sync.storage.retry import RetryPolicy
from mastodon_s3_sync.storage.s3 import Bucket
from tests.support.recording_s3 import RecordingS3
from tests.support.stubbed_s3 import Expectations, LeanExpectations

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEY = "cache/media_attachments/files/109/348/123/456/789/012/original/0123456789abcdef.gif"
LEGACY = KEY.removeprefix("cache/")
BODY = b"JPEG bytes behind a .gif key"
MD5 = hashlib.md5(BODY).hexdigest()  # noqa: S324
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
REF = ObjectRef(RecordType.PREVIEW_CARDS, 1, "image", "original", KEY, (LEGACY,), len(BODY))


MakeCopier = Callable[..., Copier]
Sides = tuple[Expectations, Expectations, MakeCopier]


def _make_copier(source: Bucket, destination: Bucket) -> MakeCopier:
    def make(
        *,
        source_prefix: str = "",
        destination_prefix: str = "",
        retry: RetryPolicy = STREAM_RETRIES,
        force: bool = False,
        server_side: bool = False,
        **settings: Any,
    ) -> Copier:
        return Copier(
            replace(source, key_prefix=source_prefix),
            replace(destination, key_prefix=destination_prefix),
            CopyOptions(CopySettings(**settings), force=force, server_side=server_side),
            retry=retry,
        )

    return make


@pytest.fixture(params=["botocore", "lean"])
def stubs(request: pytest.FixtureRequest) -> Iterator[Sides]:
    """Stubbed sides through the botocore adapter, or the lean one (as production runs)."""
    if request.param == "botocore":
        source, destination = client(), client()
        with Stubber(source) as source_stub, Stubber(destination) as destination_stub:
            yield (
                source_stub,
                destination_stub,
                _make_copier(
                    Bucket(source, "old", "", "source"),
                    Bucket(destination, "new", "", "destination"),
                ),
            )
            source_stub.assert_no_pending_responses()
            destination_stub.assert_no_pending_responses()
        return
    with RecordingS3() as server:
        source, destination = client(server.url), client(server.url)
        credentials = Credentials("a", "b")
        with Stubber(source) as source_stub, Stubber(destination) as destination_stub:
            lean_source = LeanExpectations(server, source_stub, "old")
            lean_destination = LeanExpectations(server, destination_stub, "new")
            yield (
                lean_source,
                lean_destination,
                _make_copier(
                    Bucket(
                        source,
                        "old",
                        "",
                        "source",
                        LeanObjects(source, "old", 4, credentials=credentials, verify=True),
                    ),
                    Bucket(
                        destination,
                        "new",
                        "",
                        "destination",
                        LeanObjects(destination, "new", 4, credentials=credentials, verify=True),
                    ),
                ),
            )
            source_stub.assert_no_pending_responses()
            destination_stub.assert_no_pending_responses()
            assert server.pending() == 0
            lean_source.assert_requests()
            lean_destination.assert_requests()


def client(endpoint_url: str | None = None) -> S3Client:
    return boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
        endpoint_url=endpoint_url,
        config=Config(s3={"addressing_style": "path"}),
    )


def not_found(stub: Expectations, method: str, key: str, bucket: str) -> None:
    stub.add_client_error(
        method,
        service_error_code="404" if method == "head_object" else "NoSuchKey",
        http_status_code=404,
        expected_params={"Bucket": bucket, "Key": key},
    )


def get_response(body: bytes = BODY, etag: str = MD5) -> dict[str, Any]:
    return {
        "Body": StreamingBody(io.BytesIO(body), len(body)),
        "ContentLength": len(body),
        "ETag": f'"{etag}"',
        "ContentType": "image/jpeg",
        "CacheControl": "public, max-age=315576000, immutable",
        "ContentDisposition": "inline",
        "ContentLanguage": "en",
        "Expires": datetime(2036, 1, 1, tzinfo=UTC),
        "Metadata": {"origin": "mastodon"},
    }


def acl_response(public: bool) -> dict[str, Any]:
    grants: list[dict[str, Any]] = [
        {"Grantee": {"Type": "CanonicalUser", "ID": "owner"}, "Permission": "FULL_CONTROL"}
    ]
    if public:
        grants.append({"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"})
    return {"Owner": {"ID": "owner"}, "Grants": grants}


def expected_put(key: str, acl: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "Bucket": "new",
        "Key": key,
        "Body": BODY,
        "ContentMD5": base64.b64encode(hashlib.md5(BODY).digest()).decode(),  # noqa: S324
        "ContentType": "image/jpeg",
        "CacheControl": "public, max-age=315576000, immutable",
        "ContentDisposition": "inline",
        "ContentLanguage": "en",
        "Expires": datetime(2036, 1, 1, tzinfo=UTC),
        "Metadata": {"origin": "mastodon"},
    }
    if acl is not None:
        params["ACL"] = acl
    return params


@pytest.mark.parametrize(
    ("mode", "public", "sent_acl"),
    [
        (AclMode.COPY, True, "public-read"),
        (AclMode.COPY, False, "private"),
        (AclMode.PUBLIC_READ, None, "public-read"),
        (AclMode.PRIVATE, None, "private"),
        (AclMode.NONE, None, None),
    ],
)
def test_copy_sends_source_headers_and_the_acl_of_the_mode(
    stubs: Sides,
    mode: AclMode,
    public: bool | None,
    sent_acl: str | None,
) -> None:
    source_stub, destination_stub, copier = stubs
    # given the destination lacks the object and the source has it
    not_found(destination_stub, "head_object", KEY, "new")
    source_stub.add_response("get_object", get_response(), {"Bucket": "old", "Key": KEY})
    if public is not None:  # only the copy mode reads the source ACL
        source_stub.add_response(
            "get_object_acl", acl_response(public), {"Bucket": "old", "Key": KEY}
        )
    destination_stub.add_response("put_object", {"ETag": f'"{MD5}"'}, expected_put(KEY, sent_acl))
    # when
    result = copier(acl=mode).copy(REF)
    # then
    assert (result.outcome, result.bytes_copied, result.destination_key) == (
        Outcome.COPIED,
        len(BODY),
        KEY,
    )


def test_same_size_at_the_destination_is_skipped_with_two_heads(
    stubs: Sides,
) -> None:
    source_stub, destination_stub, copier = stubs
    destination_stub.add_response(
        "head_object", {"ContentLength": 28}, {"Bucket": "new", "Key": KEY}
    )
    source_stub.add_response(
        "head_object", {"ContentLength": 28, "ETag": f'"{MD5}"'}, {"Bucket": "old", "Key": KEY}
    )
    assert copier().copy(REF).outcome == Outcome.SKIPPED


def test_missing_under_every_candidate_key(
    stubs: Sides,
) -> None:
    source_stub, destination_stub, copier = stubs
    not_found(destination_stub, "head_object", KEY, "new")
    not_found(source_stub, "get_object", KEY, "old")
    not_found(source_stub, "get_object", LEGACY, "old")
    result = copier().copy(REF)
    assert result.outcome == Outcome.MISSING
    assert result.reason


def test_found_at_an_alternate_is_copied_to_that_key_under_the_destination_prefix(
    stubs: Sides,
) -> None:
    source_stub, destination_stub, copier = stubs
    ref = ObjectRef(RecordType.PREVIEW_CARDS, 1, "image", "original", f"m/{KEY}", (f"m/{LEGACY}",))
    not_found(destination_stub, "head_object", f"n/{KEY}", "new")
    not_found(source_stub, "get_object", f"m/{KEY}", "old")
    source_stub.add_response("get_object", get_response(), {"Bucket": "old", "Key": f"m/{LEGACY}"})
    not_found(destination_stub, "head_object", f"n/{LEGACY}", "new")
    destination_stub.add_response(
        "put_object", {"ETag": f'"{MD5}"'}, expected_put(f"n/{LEGACY}", None)
    )
    result = copier(source_prefix="m", destination_prefix="n", acl=AclMode.NONE).copy(ref)
    assert (result.outcome, result.source_key, result.destination_key) == (
        Outcome.COPIED,
        f"m/{LEGACY}",
        f"n/{LEGACY}",
    )


def test_force_skips_the_destination_check(
    stubs: Sides,
) -> None:
    source_stub, destination_stub, copier = stubs
    source_stub.add_response("get_object", get_response(), {"Bucket": "old", "Key": KEY})
    destination_stub.add_response("put_object", {"ETag": f'"{MD5}"'}, expected_put(KEY, None))
    result = copier(acl=AclMode.NONE, force=True).copy(REF)
    assert result.outcome == Outcome.COPIED


def md5_header(md5_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(md5_hex)).decode()


def test_a_body_that_does_not_match_its_etag_is_refused_retried_then_failed(
    stubs: Sides,
) -> None:
    # given a source whose bytes are never those its ETag states
    source_stub, destination_stub, copier = stubs
    waits: list[float] = []
    for _ in range(3):
        not_found(destination_stub, "head_object", KEY, "new")
        source_stub.add_response(
            "get_object", get_response(etag="0" * 32), {"Bucket": "old", "Key": KEY}
        )
        # the ETag goes out as Content-MD5, unhashed: the destination refuses the bytes
        destination_stub.add_client_error(
            "put_object",
            service_error_code="BadDigest",
            expected_params={**expected_put(KEY, None), "ContentMD5": md5_header("0" * 32)},
        )
    retry = replace(STREAM_RETRIES, sleep=waits.append)
    # when
    result = copier(retry=retry, acl=AclMode.NONE).copy_or_fail(REF)
    # then
    assert result.outcome == Outcome.FAILED
    assert "differs from ETag" in result.reason
    assert "3 attempts" in result.reason
    assert len(waits) == 2  # a backoff between attempts, none after the last


def test_an_upload_refused_as_changed_in_flight_is_sent_again(stubs: Sides) -> None:
    # given a destination that got a changed body once (BadDigest), then the right one
    source_stub, destination_stub, copier = stubs
    relayed = isinstance(destination_stub, LeanExpectations)
    not_found(destination_stub, "head_object", KEY, "new")
    source_stub.add_response("get_object", get_response(), {"Bucket": "old", "Key": KEY})
    destination_stub.add_client_error(
        "put_object", service_error_code="BadDigest", expected_params=expected_put(KEY, None)
    )
    if relayed:  # a relayed body is gone once sent: the retry asks again and reads it again
        not_found(destination_stub, "head_object", KEY, "new")
        source_stub.add_response("get_object", get_response(), {"Bucket": "old", "Key": KEY})
    destination_stub.add_response("put_object", {"ETag": f'"{MD5}"'}, expected_put(KEY, None))
    waits: list[float] = []
    # when
    result = copier(acl=AclMode.NONE, retry=replace(STREAM_RETRIES, sleep=waits.append)).copy(REF)
    # then the body, hashed and found to be the source's, went again: copied (botocore
    # sends the body it holds at once; the lean relay after one backoff and a fresh GET)
    assert result.outcome == Outcome.COPIED
    assert len(waits) == (1 if relayed else 0)


@pytest.mark.parametrize(
    ("etag", "encryption"),
    [(f"{'1' * 32}-2", None), ("2" * 32, "aws:kms")],
    ids=["multipart-etag", "sse-kms"],
)
def test_a_source_etag_that_is_no_md5_is_not_sent_the_body_is_hashed(
    stubs: Sides, etag: str, encryption: str | None
) -> None:
    source_stub, destination_stub, copier = stubs
    not_found(destination_stub, "head_object", KEY, "new")
    answer = get_response(etag=etag)
    if encryption is not None:
        answer["ServerSideEncryption"] = encryption
    source_stub.add_response("get_object", answer, {"Bucket": "old", "Key": KEY})
    # expected_put's Content-MD5 is the MD5 of the body
    destination_stub.add_response("put_object", {"ETag": f'"{MD5}"'}, expected_put(KEY, None))
    result = copier(acl=AclMode.NONE).copy(REF)
    assert result.outcome == Outcome.COPIED


def test_server_side_copy_keeps_metadata_and_sets_the_acl(
    stubs: Sides,
) -> None:
    source_stub, destination_stub, copier = stubs
    not_found(destination_stub, "head_object", KEY, "new")
    source_stub.add_response(
        "head_object", {"ContentLength": 28, "ETag": f'"{MD5}"'}, {"Bucket": "old", "Key": KEY}
    )
    source_stub.add_response("get_object_acl", acl_response(False), {"Bucket": "old", "Key": KEY})
    destination_stub.add_response(
        "copy_object",
        {"CopyObjectResult": {"ETag": f'"{MD5}"'}},
        {
            "Bucket": "new",
            "Key": KEY,
            "CopySource": {"Bucket": "old", "Key": KEY},
            "MetadataDirective": "COPY",
            "ACL": "private",
        },
    )
    result = copier(server_side=True).copy(REF)
    assert result.outcome == Outcome.COPIED


def test_multipart_parts_carry_their_md5_and_the_upload_is_aborted_on_failure(
    stubs: Sides,
) -> None:
    source_stub, destination_stub, copier = stubs
    body = bytes(range(256)) * 40  # 10,240 bytes: three parts of 4,096 at most
    not_found(destination_stub, "head_object", KEY, "new")
    source_stub.add_response(
        "get_object",
        get_response(body, hashlib.md5(body).hexdigest()),  # noqa: S324
        {"Bucket": "old", "Key": KEY},
    )
    headers = expected_put(KEY, None)
    del headers["Body"], headers["ContentMD5"]
    destination_stub.add_response("create_multipart_upload", {"UploadId": "u1"}, headers)
    destination_stub.add_response(
        "upload_part",
        {"ETag": '"p1"'},
        {
            "Bucket": "new",
            "Key": KEY,
            "UploadId": "u1",
            "PartNumber": 1,
            "Body": body[:4096],
            "ContentMD5": base64.b64encode(hashlib.md5(body[:4096]).digest()).decode(),  # noqa: S324
        },
    )
    destination_stub.add_client_error(
        "upload_part", service_error_code="InternalError", http_status_code=500
    )
    destination_stub.add_response(
        "abort_multipart_upload", {}, {"Bucket": "new", "Key": KEY, "UploadId": "u1"}
    )
    options: dict[str, Any] = {
        "acl": AclMode.NONE,
        "multipart_threshold_bytes": 4096,
        "part_size_bytes": 4096,
    }
    result = copier(**options).copy_or_fail(REF)
    assert result.outcome == Outcome.FAILED
    assert "InternalError" in result.reason
