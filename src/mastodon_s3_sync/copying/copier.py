"""Copying one object reference: skip, copy (streamed or server-side) or report missing.

Every object ends as exactly one :class:`Outcome`. Bytes travel with their headers and
their ACL class; what is written is checked (size, MD5) before it counts as copied.
Memory per copy is bounded by one part (``part_size_bytes``) whatever the object size.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import botocore.exceptions
import urllib3.exceptions

from mastodon_s3_sync.config.settings import MIB, AclMode
from mastodon_s3_sync.mastodon.layout import (
    ObjectRef,
    apply_key_prefix,
    is_blank,
    unsafe_key_reason,
)
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.storage.lean import TRANSPORT_ERRORS
from mastodon_s3_sync.storage.listing import ABSENT, Listed, Sighting
from mastodon_s3_sync.storage.protocol import (
    PRIVATE,
    PUBLIC_READ,
    StreamingUploads,
    acl_class,
    is_not_found,
)
from mastodon_s3_sync.storage.retry import RetryPolicy
from mastodon_s3_sync.storage.s3 import Bucket

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef
from mastodon_s3_sync.copying.results import (
    WITHHELD_REASON,
    ByteBudget,
    CopyError,
    CopyOptions,
    CopyResult,
    Interrupted,
    fixed_acl,
)
from mastodon_s3_sync.copying.survey import NOT_SURVEYED, Sightings, Survey

READ_CHUNK = 1 * MIB
RELAY_CHUNK = 1 * MIB
"""The buffer a relayed body passes through (:meth:`Copier._relay`)."""


MAX_SINGLE_COPY = 5 * 1024 * MIB  # CopyObject's limit; larger objects are streamed


STREAM_RETRIES = RetryPolicy(attempts=3, base_seconds=0.5)
"""Whole-object attempts when a body breaks off or fails its check (a fresh GET each)."""


_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")


_MD5_SHAPED_ETAG = re.compile(r"^[0-9a-f]{32}(-\d+)?$")


DIGEST_REFUSALS = frozenset({"BadDigest", "InvalidDigest"})
"""What a destination answers when a body does not match its Content-MD5."""


class _Retryable(CopyError):
    """A broken or corrupt transfer: worth a fresh attempt."""


@dataclass
class _Found:
    key: str
    size: int
    etag: str
    response: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def encrypted(self) -> bool:
        """Stored with SSE-KMS or SSE-C (as far as the GET said)."""
        response = self.response or {}
        kms = str(response.get("ServerSideEncryption", "")).startswith("aws:kms")
        return kms or bool(response.get("SSECustomerAlgorithm"))


def _describe(error: botocore.exceptions.ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'error')}: {details.get('Message', '')}".rstrip(": ")


def _plain_etag(etag: str) -> str:
    return etag.strip('"').lower()


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _source_md5(found: _Found) -> str | None:
    """The MD5 of the source's bytes as its ETag states it, or None: a multipart ETag
    (``-N``) and the ETags of SSE-KMS and SSE-C objects are no MD5 of the body."""
    etag = _plain_etag(found.etag)
    if not _MD5_ETAG.match(etag) or found.encrypted:
        return None
    return etag


def _as_body(buffer: bytearray | memoryview) -> bytes:
    """The stores send any bytes-like body; the stubs only name ``bytes``."""
    return cast(bytes, buffer)


_STREAM_ERRORS = (
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    *TRANSPORT_ERRORS,
)


class Copier:
    """Copies object references from ``source`` to ``destination``. Thread-safe."""

    def __init__(
        self,
        source: Bucket,
        destination: Bucket,
        options: CopyOptions,
        stop: threading.Event | None = None,
        retry: RetryPolicy = STREAM_RETRIES,
    ) -> None:
        self.source = source
        self.destination = destination
        self.options = options
        self._retry = retry
        self._stop = stop or threading.Event()
        self._source_prefix = apply_key_prefix(source.key_prefix, "")
        self._budget = ByteBudget(options.memory_budget_bytes)
        self._relays = isinstance(destination.objects, StreamingUploads)

    def destination_key(self, source_key: str) -> str:
        """The same layout path under the destination's key prefix."""
        if self.source.key_prefix == self.destination.key_prefix:
            return source_key
        relative = source_key
        if not is_blank(self.source.key_prefix) and source_key.startswith(self._source_prefix):
            relative = source_key[len(self._source_prefix) :]
        return apply_key_prefix(self.destination.key_prefix, relative)

    def survey(self) -> Survey:
        """Listings for the skip checks of one ordered pass."""
        return Survey(self.source, self.destination, self.destination_key)

    def copy_or_fail(self, ref: ObjectRef, seen: Sightings = NOT_SURVEYED) -> CopyResult:
        """Like :meth:`copy`, but a failure is returned as a FAILED result with its reason."""
        try:
            return self.copy(ref, seen)
        except CopyError as error:
            return CopyResult(ref, Outcome.FAILED, reason=str(error))
        except botocore.exceptions.ClientError as error:
            return CopyResult(ref, Outcome.FAILED, reason=_describe(error))
        except (botocore.exceptions.BotoCoreError, *_STREAM_ERRORS) as error:
            return CopyResult(ref, Outcome.FAILED, reason=f"{type(error).__name__}: {error}")

    def copy(self, ref: ObjectRef, seen: Sightings = NOT_SURVEYED) -> CopyResult:
        """Skip, copy, withhold or report missing; raises on failure (so a queue can retry).

        ``seen`` spares the requests that listings already answered; a retry asks again.
        A key that is no plain storage key (``..``, NUL, ...) is refused: FAILED, no request.
        An object Mastodon made private is withheld, with no request, from a destination
        that could not keep it private (:meth:`CopyOptions.withholds`).
        """
        for key in (ref.key, *ref.alternates):
            if (unsafe := unsafe_key_reason(key)) is not None:
                return CopyResult(
                    ref, Outcome.FAILED, reason=f"refused key {key[:100]!r}: {unsafe}"
                )
        if self.options.withholds(ref):
            return CopyResult(ref, Outcome.WITHHELD, reason=WITHHELD_REASON)
        attempt = 1
        while True:
            try:
                if attempt == 1:
                    return self._copy_once(ref, seen, relay=self._relays)
                return self._copy_once(ref, NOT_SURVEYED, relay=False)
            except _Retryable as error:
                if not self._retry.may_retry(attempt):
                    raise CopyError(f"{error} (after {attempt} attempts)") from None
            except _STREAM_ERRORS as error:
                if not self._retry.may_retry(attempt):
                    raise CopyError(
                        f"transfer broke off: {type(error).__name__}: {error} "
                        f"(after {attempt} attempts)"
                    ) from None
            self._retry.pause(attempt)
            attempt += 1

    def _copy_once(self, ref: ObjectRef, seen: Sightings, *, relay: bool) -> CopyResult:
        candidates = (ref.key, *ref.alternates)
        if not self.options.force:
            present = self._destination_size(self.destination_key(ref.key), seen.destination)
            if present is not None:
                found = self._find(candidates, seen, with_body=False)
                if found is None or (found.key == ref.key and found.size == present):
                    return self._skipped(ref, found)
        found = self._find(candidates, seen, with_body=not self.options.server_side)
        if found is None:
            return CopyResult(ref, Outcome.MISSING, reason="not at the source under any key")
        server_side = self.options.server_side and found.size <= MAX_SINGLE_COPY
        if self.options.server_side and not server_side:
            found = self._find((found.key,), NOT_SURVEYED, with_body=True)
            if found is None:
                return CopyResult(ref, Outcome.MISSING, reason="deleted at the source meanwhile")
        destination_key = self.destination_key(found.key)
        try:
            if not self.options.force and found.key != ref.key:
                present = self._head_size(self.destination, destination_key)
                if present == found.size:
                    return self._skipped(ref, found)
            acl, made_private = self._acl(ref, found.key)
            if server_side:
                self._server_side_copy(found, destination_key, acl)
            else:
                self._stream_copy(found, destination_key, acl, relay=relay)
        finally:
            self._close(found)
        return CopyResult(
            ref,
            Outcome.COPIED,
            found.key,
            destination_key,
            found.size,
            made_private=made_private,
        )

    def _skipped(self, ref: ObjectRef, found: _Found | None) -> CopyResult:
        reason = "" if found is not None else "absent at the source, present at the destination"
        key = found.key if found is not None else ref.key
        return CopyResult(ref, Outcome.SKIPPED, key, self.destination_key(key), 0, reason)

    @staticmethod
    def _close(found: _Found) -> None:
        if found.response is not None:
            found.response["Body"].close()

    def _destination_size(self, key: str, seen: Sighting) -> int | None:
        if isinstance(seen, Listed):
            return seen.size
        if seen is ABSENT:
            return None
        return self._head_size(self.destination, key)

    def _head_size(self, bucket: Bucket, key: str) -> int | None:
        try:
            return int(bucket.objects.head_object(key)["ContentLength"])
        except botocore.exceptions.ClientError as error:
            if is_not_found(error):
                return None
            raise CopyError(f"HEAD {bucket.side} {key}: {_describe(error)}") from None

    def _find(
        self, candidates: tuple[str, ...], seen: Sightings, *, with_body: bool
    ) -> _Found | None:
        objects = self.source.objects
        for index, key in enumerate(candidates):
            sighting = seen.of_candidate(index)  # absent when listed may exist by now: ask
            if isinstance(sighting, Listed) and not with_body:
                return _Found(key, sighting.size, sighting.etag)
            try:
                if with_body:
                    response = objects.get_object(key)
                    return _Found(key, response["ContentLength"], response["ETag"], response)
                head = objects.head_object(key)
                return _Found(key, head["ContentLength"], head["ETag"])
            except botocore.exceptions.ClientError as error:
                if not is_not_found(error):
                    raise CopyError(f"reading source {key}: {_describe(error)}") from None
        return None

    def _acl(self, ref: ObjectRef, source_key: str) -> tuple[str | None, bool]:
        """The ACL to write, and whether it is private though the source's is public."""
        mode = self.options.settings.acl
        if mode == AclMode.NONE:
            return None, False
        if mode != AclMode.COPY:
            return fixed_acl(mode, ref), False
        try:
            source_acl = acl_class(self.source.objects, source_key)
        except botocore.exceptions.ClientError as error:
            raise CopyError(
                f"reading the ACL of {source_key}: {_describe(error)} "
                "(a provider without ACLs needs --acl public-read, private or none)"
            ) from None
        if ref.private and source_acl == PUBLIC_READ:
            return PRIVATE, True
        return source_acl, False

    def _headers(self, found: _Found, acl: str | None) -> dict[str, Any]:
        response = found.response
        assert response is not None
        headers: dict[str, Any] = {
            name: response[name]
            for name in (
                "ContentType",
                "CacheControl",
                "ContentDisposition",
                "ContentEncoding",
                "ContentLanguage",
            )
            if response.get(name)
        }
        expires = response.get("Expires")
        if isinstance(expires, datetime):
            headers["Expires"] = expires
        if response.get("Metadata"):
            headers["Metadata"] = response["Metadata"]
        if acl is not None:
            headers["ACL"] = acl
        return headers

    def _stream_copy(
        self, found: _Found, destination_key: str, acl: str | None, *, relay: bool
    ) -> None:
        headers = self._headers(found, acl)
        if found.size > self.options.settings.multipart_threshold_bytes:
            with self._budget.hold(self.options.settings.part_size_bytes):
                self._multipart_copy(found, destination_key, headers)
            return
        source_md5 = _source_md5(found)
        if relay and source_md5 is not None:
            self._relay(found, destination_key, headers, source_md5)
            return
        with self._budget.buffer(found.size) as buffer:
            received = self._read_into(found, buffer)
            if found.response is not None and found.response["Body"].read(1):
                raise _Retryable(f"source {found.key}: body longer than {found.size} bytes")
            self._check_size(found, received)
            self._put_checked(found, destination_key, buffer, headers)

    def _relay(self, found: _Found, key: str, headers: dict[str, Any], md5_hex: str) -> None:
        """Send the body on to the destination as it arrives, with the source's MD5 as its
        Content-MD5: the upload's round trip overlaps the download and no buffer holds the
        whole object. Sent once; any failure is retried by a buffered attempt."""
        store = cast(StreamingUploads, self.destination.objects)
        fields = {**headers, "ContentMD5": base64.b64encode(bytes.fromhex(md5_hex)).decode()}
        with self._budget.buffer(min(found.size, RELAY_CHUNK)) as chunk:
            try:
                response = store.put_stream(key, self._chunks(found, chunk), found.size, fields)
            except botocore.exceptions.ClientError as error:
                raise _Retryable(f"destination {key}: {_describe(error)}") from None
        self._check_etag(key, response.get("ETag", ""), {md5_hex})

    def _chunks(self, found: _Found, chunk: memoryview) -> Iterator[memoryview]:
        """The body, read into ``chunk`` and yielded piece by piece; a body shorter or longer
        than its size raises before its last byte is yielded, so no upload completes."""
        left = found.size
        while left:
            received = self._read_into(found, chunk[: min(left, len(chunk))])
            if not received:
                raise _Retryable(f"source {found.key}: read {found.size - left} of {found.size}")
            left -= received
            if not left and found.response is not None and found.response["Body"].read(1):
                raise _Retryable(f"source {found.key}: body longer than {found.size} bytes")
            yield chunk[:received]

    def _put_checked(
        self, found: _Found, key: str, body: memoryview, headers: dict[str, Any]
    ) -> None:
        """PutObject whose Content-MD5 is the source's own MD5 when its ETag is one: the
        destination then refuses any byte that is not the source's, and nothing is hashed
        here. Otherwise, or when the destination refuses that digest, the body is hashed."""
        source_md5 = _source_md5(found)
        if source_md5 is not None:
            try:
                self._put(key, body, headers, source_md5)
                return
            except botocore.exceptions.ClientError as error:
                if _code(error) not in DIGEST_REFUSALS:
                    raise
        md5_hex = hashlib.md5(body).hexdigest()  # noqa: S324 (S3's integrity check)
        if source_md5 is not None and md5_hex != source_md5:
            raise _Retryable(
                f"source {found.key}: body MD5 {md5_hex} differs from ETag {source_md5}"
            )
        try:
            self._put(key, body, headers, md5_hex)
        except botocore.exceptions.ClientError as error:
            if _code(error) not in DIGEST_REFUSALS:
                raise
            raise _Retryable(f"destination {key}: {_describe(error)}") from None

    def _put(self, key: str, body: memoryview, headers: dict[str, Any], md5_hex: str) -> None:
        md5 = base64.b64encode(bytes.fromhex(md5_hex)).decode()
        response = self.destination.objects.put_object(
            key, _as_body(body), {**headers, "ContentMD5": md5}
        )
        self._check_etag(key, response.get("ETag", ""), {md5_hex})

    @staticmethod
    def _read(found: _Found, amount: int) -> bytearray:
        """Up to ``amount`` bytes of the body into a new buffer of that many or fewer."""
        buffer = bytearray(amount)
        with memoryview(buffer) as view:
            filled = Copier._read_into(found, view)
        del buffer[filled:]
        return buffer

    @staticmethod
    def _read_into(found: _Found, view: memoryview) -> int:
        """Fill ``view`` from the body (no second copy of it); how many bytes came."""
        assert found.response is not None
        body = found.response["Body"]
        amount, filled = len(view), 0
        readinto = getattr(body, "readinto", None)  # the lean client's: straight into place
        while filled < amount:
            end = min(filled + READ_CHUNK, amount)
            if readinto is not None:
                received = readinto(view[filled:end])
            else:
                chunk = body.read(end - filled)
                received = len(chunk)
                view[filled : filled + received] = chunk
            if not received:
                break
            filled += received
        return filled

    @staticmethod
    def _check_size(found: _Found, received: int) -> None:
        if received != found.size:
            raise _Retryable(f"source {found.key}: read {received} of {found.size} bytes")

    @staticmethod
    def _check_source(found: _Found, received: int, md5_hex: str) -> None:
        Copier._check_size(found, received)
        etag = _source_md5(found)
        if etag is not None and etag != md5_hex:
            raise _Retryable(f"source {found.key}: body MD5 {md5_hex} differs from ETag {etag}")

    def _check_etag(self, key: str, etag: str, expected: set[str]) -> None:
        """Fail (and remove the object) when an MD5-shaped ETag matches no expected digest."""
        written = _plain_etag(etag)
        if _MD5_SHAPED_ETAG.match(written) and written not in expected:
            self.destination.client.delete_object(Bucket=self.destination.name, Key=key)
            raise _Retryable(
                f"destination {key}: ETag {written} after writing {' or '.join(sorted(expected))}"
            )

    def _parts(self, found: _Found) -> Iterator[bytearray]:
        while True:
            if self._stop.is_set():
                raise Interrupted("stopped before the object was complete")
            part = self._read(found, self.options.settings.part_size_bytes)
            if not part:
                return
            yield part

    def _multipart_copy(self, found: _Found, key: str, headers: dict[str, Any]) -> None:
        client, name = self.destination.client, self.destination.name
        upload_id = client.create_multipart_upload(Bucket=name, Key=key, **headers)["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            digests: list[bytes] = []
            received, whole = 0, hashlib.md5()  # noqa: S324
            for number, part in enumerate(self._parts(found), start=1):
                digest = hashlib.md5(part)  # noqa: S324
                whole.update(part)
                received += len(part)
                response = client.upload_part(
                    Bucket=name,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=_as_body(part),
                    ContentMD5=base64.b64encode(digest.digest()).decode(),
                )
                parts.append({"PartNumber": number, "ETag": response["ETag"]})
                digests.append(digest.digest())
            self._check_source(found, received, whole.hexdigest())
            completed = client.complete_multipart_upload(
                Bucket=name, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self._abort(key, upload_id)
            raise
        finally:
            self._abort_unfinished_uploads(key)
        composite = hashlib.md5(b"".join(digests)).hexdigest()  # noqa: S324
        # Servers differ on multipart ETags: AWS and moto give "<md5 of part md5s>-N".
        self._check_etag(
            key, completed.get("ETag", ""), {f"{composite}-{len(parts)}", whole.hexdigest()}
        )

    def _server_side_copy(self, found: _Found, key: str, acl: str | None) -> None:
        extra: dict[str, Any] = {"ACL": acl} if acl is not None else {}
        response = self.destination.client.copy_object(
            Bucket=self.destination.name,
            Key=key,
            CopySource={"Bucket": self.source.name, "Key": found.key},
            MetadataDirective="COPY",
            **extra,
        )
        etag = _source_md5(found)
        if etag is not None:
            self._check_etag(key, response.get("CopyObjectResult", {}).get("ETag", ""), {etag})

    def _abort(self, key: str, upload_id: str) -> None:
        # If the abort fails too, the original error is the one to report.
        with contextlib.suppress(
            botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError
        ):
            self.destination.client.abort_multipart_upload(
                Bucket=self.destination.name, Key=key, UploadId=upload_id
            )

    def _abort_unfinished_uploads(self, key: str) -> None:
        """Abort every upload of exactly ``key`` still open after this copy ended.

        They are orphans: an upload whose CreateMultipartUpload answer was lost (the retry
        started another), or one left by a run that was killed. Cleanup only: a provider
        that cannot list uploads leaves them to its lifecycle rules.
        """
        client, name = self.destination.client, self.destination.name
        with contextlib.suppress(
            botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError
        ):
            listed = client.list_multipart_uploads(Bucket=name, Prefix=key)
            for upload in listed.get("Uploads", []):
                if upload.get("Key") == key and "UploadId" in upload:
                    self._abort(key, upload["UploadId"])
