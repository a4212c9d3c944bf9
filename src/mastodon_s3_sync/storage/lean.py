"""A lean S3 client for the hot path: GET, HEAD, PUT and GET ?acl of one object, list pages.

Most Mastodon objects are 10-300 KB, so the cost of a copy is the cost of its requests, and
botocore spends about 3.5 ms of CPU on each (events, endpoint rules, response parsing) — more
than the transfer; a ListObjectsV2 page of 1,000 keys costs it ~100 ms, mostly parsing dates
we never read. This client signs with SigV4 and talks HTTP/1.1 over pooled keep-alive
connections itself, for these requests only. It takes its endpoint, addressing style and
region from a botocore client's public API (a presigned URL, ``meta``), and its credentials and
certificate checks from the edge that built that client; it answers in boto3's shapes and
raises botocore's ``ClientError`` (it is an :class:`~mastodon_s3_sync.storage.protocol.ObjectStore`
like the botocore adapter), so callers treat both alike; every other request stays with
botocore.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import http.client
import queue
import re
import ssl
import time
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import botocore.exceptions
from botocore.httpsession import get_cert_path

from mastodon_s3_sync import __version__
from mastodon_s3_sync.storage.documents import error_fields, grants_public_read, list_page_fields
from mastodon_s3_sync.storage.http1 import Connection, Response
from mastodon_s3_sync.storage.retry import REQUEST_RETRIES, RetryPolicy, is_transient
from mastodon_s3_sync.storage.s3 import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS

if TYPE_CHECKING:
    from botocore.credentials import Credentials
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadBucketOutputTypeDef

_UNSIGNED = "UNSIGNED-PAYLOAD"
_META = "x-amz-meta-"
_SPACES = re.compile(r"[ \t]+")
_PUT_HEADERS = {
    "ContentType": "Content-Type",
    "CacheControl": "Cache-Control",
    "ContentDisposition": "Content-Disposition",
    "ContentEncoding": "Content-Encoding",
    "ContentLanguage": "Content-Language",
    "ContentMD5": "Content-MD5",
    "ACL": "x-amz-acl",
}
_GET_HEADERS = {
    "content-type": "ContentType",
    "cache-control": "CacheControl",
    "content-disposition": "ContentDisposition",
    "content-encoding": "ContentEncoding",
    "content-language": "ContentLanguage",
    "x-amz-server-side-encryption": "ServerSideEncryption",
    "x-amz-server-side-encryption-customer-algorithm": "SSECustomerAlgorithm",
}
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
"""What a broken connection raises here (ConnectionError, IncompleteRead, timeouts…)."""


def lean_objects(
    client: S3Client,
    bucket: str,
    max_connections: int,
    credentials: Credentials | None,
    verify: bool | str,
    head: HeadBucketOutputTypeDef | None = None,
) -> LeanObjects | None:
    """The lean client for ``bucket``, or None where botocore must stay: an HTTP proxy is
    configured for the endpoint, there are no credentials to sign with, or the bucket lives
    in another region than the client's (botocore follows S3's redirects; we do not).

    ``credentials`` and ``verify`` (certificate checks: a CA bundle path, True, or False)
    are those ``client`` was made with; ``head`` is the bucket's HeadBucket answer where the
    caller has one (the preflight's), else HeadBucket is asked here."""
    if credentials is None:
        return None
    endpoint = urllib.parse.urlsplit(client.meta.endpoint_url)
    proxies = urllib.request.getproxies()
    if endpoint.scheme in proxies and not urllib.request.proxy_bypass(endpoint.hostname or ""):
        return None
    try:
        answer = head if head is not None else client.head_bucket(Bucket=bucket)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
        return None  # the preflight reports what is wrong; botocore copes with the rest
    region = answer["ResponseMetadata"].get("HTTPHeaders", {}).get("x-amz-bucket-region")
    if region and region != (client.meta.region_name or "us-east-1"):
        return None
    return LeanObjects(client, bucket, max_connections, credentials=credentials, verify=verify)


class LeanObjects:
    """GET, HEAD, PUT (whole or streamed) and ACL class of objects in one bucket. Thread-safe."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        max_connections: int,
        *,
        credentials: Credentials,
        verify: bool | str,
        retry: RetryPolicy = REQUEST_RETRIES,
    ) -> None:
        presigned = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60
        )
        url = urllib.parse.urlsplit(presigned)
        self._https = url.scheme == "https"
        self._host = url.netloc
        self._base_path = url.path[: -len("k")]
        self._region = client.meta.region_name or "us-east-1"
        self._credentials = credentials
        # Loading the CA store costs ~50 ms: only for an https endpoint.
        self._tls = _tls_context(verify) if self._https else None
        self._retry = retry
        self._events = client.meta.events  # so a RequestCounter of the client counts ours too
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue(max_connections)
        weakref.finalize(self, _close_idle, self._idle)
        self._signing_keys: dict[tuple[str, str], bytes] = {}

    # -- the requests ---------------------------------------------------------------------

    def get_object(self, key: str) -> dict[str, Any]:
        """GetObject: a boto3-shaped answer whose ``Body`` streams from the connection."""
        connection, response = self._send("GET", key, "", {}, b"", "GetObject")
        headers = response.headers
        answer: dict[str, Any] = {
            "ContentLength": int(headers.get("content-length", "0")),
            "ETag": headers.get("etag", ""),
            "Body": LeanBody(response, connection, self),
            **{field: headers[name] for name, field in _GET_HEADERS.items() if name in headers},
        }
        if "expires" in headers:
            answer["Expires"] = _http_date(headers["expires"])
        metadata = {
            name[len(_META) :]: value for name, value in headers.items() if name.startswith(_META)
        }
        if metadata:
            answer["Metadata"] = metadata
        return answer

    def put_object(self, key: str, body: bytes, fields: Mapping[str, Any]) -> dict[str, Any]:
        """PutObject with boto3's parameter names (ContentType, ACL, Metadata, …)."""
        response, _ = self._exchange("PUT", key, "", _put_headers(fields), body, "PutObject")
        return {"ETag": response.getheader("ETag", "")}

    def put_stream(
        self, key: str, chunks: Iterable[memoryview], size: int, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PutObject whose body is sent as ``chunks`` yields it (``Content-Length`` given, so
        no chunked encoding); sent once (:class:`~.protocol.StreamingUploads`)."""
        headers = {**_put_headers(fields), "Content-Length": str(size)}
        response, _ = self._exchange("PUT", key, "", headers, _OneShot(chunks), "PutObject")
        return {"ETag": response.getheader("ETag", "")}

    def head_object(self, key: str) -> dict[str, Any]:
        """HeadObject: ``ContentLength`` and ``ETag``."""
        response, _ = self._exchange("HEAD", key, "", {}, b"", "HeadObject")
        return {
            "ContentLength": int(response.getheader("Content-Length", "0")),
            "ETag": response.getheader("ETag", ""),
        }

    def is_public(self, key: str) -> bool:
        """Whether the object's ACL lets everyone read it (GetObjectAcl)."""
        _, document = self._exchange("GET", key, "acl", {}, b"", "GetObjectAcl")
        return grants_public_read(document)

    def list_page(self, prefix: str, start_after: str, max_keys: int) -> dict[str, Any]:
        """ListObjectsV2, one page: ``Contents`` (Key, Size, ETag) and ``IsTruncated``."""
        parameters = {"list-type": "2", "encoding-type": "url", "max-keys": str(max_keys)}
        parameters |= {"prefix": prefix, **({"start-after": start_after} if start_after else {})}
        query = "&".join(
            f"{_uri(name)}={_uri(value)}" for name, value in sorted(parameters.items())
        )
        _, document = self._exchange("GET", None, query, {}, b"", "ListObjectsV2")
        try:
            return list_page_fields(document)
        except (ValueError, KeyError) as error:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "InvalidListing", "Message": f"unreadable page: {error}"}},
                "ListObjectsV2",
            ) from None

    # -- HTTP --------------------------------------------------------------------------------

    def _exchange(
        self,
        method: str,
        key: str | None,
        query: str,
        headers: dict[str, str],
        body: bytes | _OneShot,
        operation: str,
    ) -> tuple[Response, bytes]:
        """A request whose whole (small) answer is read, retried like :meth:`_send`."""
        attempt = 1
        while True:
            connection, response = self._send(method, key, query, headers, body, operation)
            try:
                document = response.read()
            except TRANSPORT_ERRORS:
                connection.close()
                if _sent(body) or not self._retry.may_retry(attempt):
                    raise
                attempt += 1
                continue
            self.finish(connection, response)
            return response, document

    def _send(
        self,
        method: str,
        key: str | None,
        query: str,
        headers: dict[str, str],
        body: bytes | _OneShot,
        operation: str,
    ) -> tuple[Connection, Response]:
        """Send with retries (throttling, 5xx, broken connections); a 2xx answer or raise.

        ``key`` None: a request on the bucket. ``query``: as sent and as signed (names and
        values URI-encoded, sorted), a bare name standing for ``name=``. A one-shot body
        whose first chunk went out is never sent again: its failure is raised."""
        if key is None:
            path = self._base_path.rstrip("/") or "/"
        else:
            path = self._base_path + urllib.parse.quote(key, safe="/~")
        target = f"{path}?{query}" if query else path
        attempt = 0
        while True:
            connection = self._idle_connection()
            reused = connection is not None
            try:
                if connection is None:
                    connection = self._new_connection()
                canonical = query if "=" in query or not query else f"{query}="
                signed = self._sign(method, path, canonical, headers)
                signed["Accept-Encoding"] = "identity"
                if isinstance(body, bytes | bytearray | memoryview) and (body or method == "PUT"):
                    signed["Content-Length"] = str(len(body))
                self._events.emit(f"before-send.s3.{operation}")
                connection.request(method, target, signed, body)
                response = connection.response(method)
                if response.status < 300:
                    return connection, response
                error = _client_error(response, operation)
            except TRANSPORT_ERRORS:
                if connection is not None:
                    connection.close()
                if _sent(body):
                    raise
                if reused:
                    continue  # a pooled connection the server had closed: costs no attempt
                attempt += 1
                if not self._retry.may_retry(attempt):
                    raise
            except BaseException:  # from a one-shot body's chunks: the request is cut short
                if connection is not None:
                    connection.close()
                raise
            else:
                self.finish(connection, response)
                attempt += 1
                if _sent(body) or not _transient(error) or not self._retry.may_retry(attempt):
                    raise error
            self._retry.pause(attempt)

    def _idle_connection(self) -> Connection | None:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return None

    def _new_connection(self) -> Connection:
        return Connection(
            self._host,
            tls=self._tls,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
        )

    def finish(self, connection: Connection, response: Response) -> None:
        """After an answer: the connection back to the pool for the next request when the
        answer was read whole and the server keeps it open (closed otherwise, or when the
        pool is full)."""
        if not (response.complete and response.reusable):
            connection.close()
            return
        try:
            self._idle.put_nowait(connection)
        except queue.Full:
            connection.close()

    def _sign(self, method: str, path: str, query: str, headers: dict[str, str]) -> dict[str, str]:
        """SigV4 headers (payload unsigned: every upload carries Content-MD5)."""
        frozen = self._credentials.get_frozen_credentials()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = stamp[:8]
        signed = {
            **headers,
            "Host": self._host,
            "x-amz-date": stamp,
            "x-amz-content-sha256": _UNSIGNED,
            "User-Agent": f"mastodon-s3-sync/{__version__}",
        }
        if frozen.token:
            signed["x-amz-security-token"] = frozen.token
        canonical = {name.lower(): _trim(str(value)) for name, value in signed.items()}
        names = sorted(name for name in canonical if name != "user-agent")
        request = "\n".join(
            [
                method,
                path,
                query,
                *(f"{name}:{canonical[name]}" for name in names),
                "",
                ";".join(names),
                _UNSIGNED,
            ]
        )
        scope = f"{day}/{self._region}/s3/aws4_request"
        # Header values go out as latin-1 (storage/http1.py): hash the same bytes.
        digest = hashlib.sha256(request.encode("latin-1")).hexdigest()
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, digest])
        signature = hmac.new(
            self._signing_key(frozen.secret_key or "", day), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        signed["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        return signed

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached = self._signing_keys.get((secret, day))
        if cached is None:
            key = f"AWS4{secret}".encode()
            for part in (day, self._region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._signing_keys = {(secret, day): key}
            cached = key
        return cached


class _OneShot:
    """A streamed body: its chunks, and whether sending them began."""

    def __init__(self, chunks: Iterable[memoryview]) -> None:
        self._chunks = chunks
        self.started = False

    def __iter__(self) -> Iterator[memoryview]:
        self.started = True
        return iter(self._chunks)


def _sent(body: bytes | _OneShot) -> bool:
    """Whether ``body`` cannot be sent again: a one-shot body already (partly) sent."""
    return isinstance(body, _OneShot) and body.started


def _put_headers(fields: Mapping[str, Any]) -> dict[str, str]:
    """PutObject's headers from boto3's parameter names."""
    headers = {
        _PUT_HEADERS[name]: str(value) for name, value in fields.items() if name in _PUT_HEADERS
    }
    if isinstance(fields.get("Expires"), datetime):
        headers["Expires"] = email.utils.format_datetime(fields["Expires"], usegmt=True)
    for name, value in (fields.get("Metadata") or {}).items():
        headers[f"{_META}{name}"] = value
    return headers


class LeanBody:
    """A GET's body: read it, then close it (the connection goes back to the pool when the
    body was read to its end, and is dropped otherwise)."""

    def __init__(self, response: Response, connection: Connection, owner: LeanObjects) -> None:
        self._response = response
        self._connection: Connection | None = connection
        self._owner = owner

    def read(self, amount: int | None = None) -> bytes:
        """Up to ``amount`` bytes (all that is left without it); b"" at the end."""
        return self._response.read(amount)

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` from the body without an intermediate copy; 0 at the end."""
        return self._response.readinto(buffer)

    def close(self) -> None:
        """Give the connection back, or drop it if the body was not read to its end."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._owner.finish(connection, self._response)


def _uri(text: str) -> str:
    """SigV4's URI encoding of a query name or value (RFC 3986 unreserved kept)."""
    return urllib.parse.quote(text, safe="-_.~")


def _trim(value: str) -> str:
    """SigV4's header value: outer spaces removed, inner runs of spaces made one (only
    spaces and tabs: a latin-1 \\xa0 may be half of a UTF-8 character)."""
    value = value.strip(" \t")
    return _SPACES.sub(" ", value) if "  " in value or "\t" in value else value


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    """The certificate checks botocore's client was made with."""
    if verify is False:
        return ssl._create_unverified_context()  # noqa: S323 (the user turned checks off)
    return ssl.create_default_context(
        cafile=verify if isinstance(verify, str) else get_cert_path(True)
    )


def _close_idle(idle: queue.LifoQueue[Connection]) -> None:
    while True:
        try:
            idle.get_nowait().close()
        except queue.Empty:
            return


def _client_error(response: Response, operation: str) -> botocore.exceptions.ClientError:
    fields = error_fields(response.read())
    error = {
        "Code": fields.get("Code") or str(response.status),
        "Message": fields.get("Message") or response.reason,
    }
    return botocore.exceptions.ClientError(
        {"Error": error, "ResponseMetadata": {"HTTPStatusCode": response.status}},  # type: ignore[typeddict-item]
        operation,
    )


def _transient(error: botocore.exceptions.ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return is_transient(status, str(error.response.get("Error", {}).get("Code", "")))


def _http_date(text: str) -> datetime | str:
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return text
