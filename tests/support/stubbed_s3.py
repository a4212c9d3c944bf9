"""Stubber's expectations for both object-store adapters.

botocore's ``Stubber`` checks the parameters of the requests botocore sends. For the lean
adapter, :class:`LeanExpectations` takes the same expectations, answers its requests from a
:class:`~tests.support.recording_s3.RecordingS3` on 127.0.0.1 with what S3 would send, and
checks what arrived on the wire (method, path, query, object headers, body); the requests
the lean adapter leaves to botocore still go to the Stubber.
"""

from __future__ import annotations

import email.utils
import urllib.parse
from typing import Any, Protocol

from botocore.stub import Stubber

from tests.support.recording_s3 import Answer, RecordingS3

LEAN_REQUESTS = {
    "get_object": ("GET", ""),
    "head_object": ("HEAD", ""),
    "put_object": ("PUT", ""),
    "get_object_acl": ("GET", "acl"),
}
"""The single-object requests the lean adapter sends itself (the rest stay botocore's)."""
OBJECT_HEADERS = {
    "ContentType": "content-type",
    "CacheControl": "cache-control",
    "ContentDisposition": "content-disposition",
    "ContentEncoding": "content-encoding",
    "ContentLanguage": "content-language",
    "ContentMD5": "content-md5",
    "ACL": "x-amz-acl",
    "ServerSideEncryption": "x-amz-server-side-encryption",
}


class Expectations(Protocol):
    """What a test expects of one side, in Stubber's terms (Stubber satisfies it)."""

    def add_response(
        self, method: str, service_response: dict[str, Any], expected_params: dict[str, Any]
    ) -> None: ...

    def add_client_error(
        self,
        method: str,
        *,
        service_error_code: str = "",
        http_status_code: int = 400,
        expected_params: dict[str, Any] | None = None,
    ) -> None: ...


class LeanExpectations:
    """Stubber's expectations for the lean adapter: its requests are answered and recorded
    by a server on 127.0.0.1 and checked byte for byte; the others go to the Stubber."""

    def __init__(self, server: RecordingS3, stub: Stubber, bucket: str) -> None:
        self._server, self._stub, self._bucket = server, stub, bucket
        self._expected: list[tuple[str, str, str, dict[str, Any]]] = []

    def add_response(
        self, method: str, service_response: dict[str, Any], expected_params: dict[str, Any]
    ) -> None:
        if method not in LEAN_REQUESTS:
            self._stub.add_response(method, service_response, expected_params)
            return
        self._expect(method, expected_params)
        self._server.answer(self._bucket, _answer(method, service_response))

    def add_client_error(
        self,
        method: str,
        *,
        service_error_code: str = "",
        http_status_code: int = 400,
        expected_params: dict[str, Any] | None = None,
    ) -> None:
        if method not in LEAN_REQUESTS:
            self._stub.add_client_error(
                method,
                service_error_code=service_error_code,
                http_status_code=http_status_code,
                expected_params=expected_params,
            )
            return
        self._expect(method, expected_params or {})
        document = f"<Error><Code>{service_error_code}</Code><Message>stub</Message></Error>"
        self._server.answer(self._bucket, Answer(http_status_code, body=document.encode()))

    def _expect(self, method: str, params: dict[str, Any]) -> None:
        verb, query = LEAN_REQUESTS[method]
        path = f"/{params['Bucket']}/{urllib.parse.quote(params['Key'], safe='/~')}"
        self._expected.append((verb, path, query, params))

    def assert_requests(self) -> None:
        """Every expected request arrived, in order, as expected."""
        received = [
            request
            for request in self._server.received
            if request.path.startswith(f"/{self._bucket}/")
        ]
        assert len(received) == len(self._expected)
        for request, (verb, path, query, params) in zip(received, self._expected, strict=True):
            assert (request.method, request.path, request.query) == (verb, path, query)
            assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=a/")
            if verb == "PUT":
                assert request.body == params["Body"]
                assert _object_headers(request.headers) == _put_headers(params)


def _answer(method: str, response: dict[str, Any]) -> Answer:
    """The HTTP answer S3 gives where botocore would parse ``response``."""
    if method == "get_object_acl":
        return Answer(body=_acl_document(response["Grants"]).encode())
    headers = {"ETag": response["ETag"]} if "ETag" in response else {}
    if method == "head_object":
        return Answer(headers={**headers, "Content-Length": str(response["ContentLength"])})
    if method == "put_object":
        return Answer(headers=headers)
    for field, header in OBJECT_HEADERS.items():
        if field in response:
            headers[header] = response[field]
    if "Expires" in response:
        headers["expires"] = email.utils.format_datetime(response["Expires"], usegmt=True)
    for name, value in response.get("Metadata", {}).items():
        headers[f"x-amz-meta-{name}"] = value
    return Answer(headers=headers, body=response["Body"].read())


def _acl_document(grants: list[dict[str, Any]]) -> str:
    """An AccessControlPolicy as AWS writes it (namespaced, xsi:type on each grantee)."""
    entries = "".join(
        f'<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:type="{grant["Grantee"]["Type"]}">'
        + (
            f"<URI>{grant['Grantee']['URI']}</URI>"
            if "URI" in grant["Grantee"]
            else f"<ID>{grant['Grantee']['ID']}</ID>"
        )
        + f"</Grantee><Permission>{grant['Permission']}</Permission></Grant>"
        for grant in grants
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Owner><ID>owner</ID></Owner><AccessControlList>{entries}</AccessControlList>"
        "</AccessControlPolicy>"
    )


def _object_headers(headers: dict[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in headers.items()
        if name in OBJECT_HEADERS.values() or name == "expires" or name.startswith("x-amz-meta-")
    }


def _put_headers(params: dict[str, Any]) -> dict[str, str]:
    """The headers of a PutObject with boto3's ``params``, as S3 defines them."""
    headers = {header: params[field] for field, header in OBJECT_HEADERS.items() if field in params}
    if "Expires" in params:
        headers["expires"] = email.utils.format_datetime(params["Expires"], usegmt=True)
    for name, value in params.get("Metadata", {}).items():
        headers[f"x-amz-meta-{name}"] = value
    return headers
