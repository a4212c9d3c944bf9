"""What the copier asks of one bucket: GET, HEAD, PUT and ACL class of an object; a list page.

Two adapters satisfy :class:`ObjectStore`: :class:`~mastodon_s3_sync.storage.s3.BotoObjects`
(botocore) and :class:`~mastodon_s3_sync.storage.lean.LeanObjects` (the lean SigV4 client of
the hot path). Both answer in boto3's shapes and raise botocore's ``ClientError``, so the
copier treats them alike. Multipart uploads, server-side CopyObject, DeleteObject and
(the copier's writes that are rare per object) stay with the botocore client of the bucket.
Stores that can send a body while it is still being read also satisfy
:class:`StreamingUploads`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import botocore.exceptions

PUBLIC_READ = "public-read"
PRIVATE = "private"
ALL_USERS_URI = "http://acs.amazonaws.com/groups/global/AllUsers"
"""The grantee of a public object's READ grant."""
READ_PERMISSIONS = frozenset({"READ", "FULL_CONTROL"})
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class ObjectStore(Protocol):
    """Single-object requests on one bucket, in boto3's parameter and answer shapes."""

    def get_object(self, key: str) -> dict[str, Any]:
        """GetObject: ``ContentLength``, ``ETag``, the standard headers, ``Metadata`` and a
        ``Body`` with ``read``/``close`` that streams from the connection."""
        ...

    def head_object(self, key: str) -> dict[str, Any]:
        """HeadObject: at least ``ContentLength`` and ``ETag``."""
        ...

    def put_object(self, key: str, body: bytes, fields: Mapping[str, Any]) -> dict[str, Any]:
        """PutObject with boto3's field names (ContentType, ACL, Metadata, ContentMD5, …)."""
        ...

    def is_public(self, key: str) -> bool:
        """Whether the object's ACL lets everyone read it (GetObjectAcl)."""
        ...

    def list_page(self, prefix: str, start_after: str, max_keys: int) -> dict[str, Any]:
        """ListObjectsV2: ``Contents`` (Key, Size, ETag) after ``start_after``, and
        ``IsTruncated``."""
        ...


@runtime_checkable
class StreamingUploads(Protocol):
    """A store that sends an upload's body as it is read from elsewhere (the lean client, a
    directory); botocore must be able to send a body again, so its adapter has no such call."""

    def put_stream(
        self, key: str, chunks: Iterable[memoryview], size: int, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PutObject of exactly ``size`` bytes, sent chunk by chunk as ``chunks`` yields them
        (each chunk is sent before the next is asked for). Sent once: a failure is raised,
        not retried, and an exception from ``chunks`` ends the request before its last byte,
        so nothing is stored."""
        ...


def acl_class(store: ObjectStore, key: str) -> str:
    """``public-read`` when everyone may read the object, else ``private``."""
    return PUBLIC_READ if store.is_public(key) else PRIVATE


def is_not_found(error: botocore.exceptions.ClientError) -> bool:
    """Whether an error answer says the object (or key) does not exist."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.response.get("Error", {}).get("Code", "")) in NOT_FOUND_CODES or status == 404
