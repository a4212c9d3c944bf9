"""Mastodon's local file storage (``public/system``) as either side of a copy.

Read, a file answers as Mastodon's own upload to S3 would have (mastodon-storage.md §5):
``Cache-Control: public, max-age=315576000, immutable``, a Content-Type sniffed from its
bytes (:mod:`.content_type`), and the ACL class of its mode: Mastodon ``chmod 0600``s the
files it makes private (``UpdateMediaAttachmentsPermissionsService``), so a file without
the read bit for others is ``private``.

Written, a file appears whole or not at all: bytes go to a temporary name in the target
directory, are flushed to disk, get their mode (``0600`` private, ``0644`` otherwise), and
are renamed into place. No path leaves the root: unsafe keys are refused again here, and a
key whose directories resolve (through a symlink) outside the root is refused.

:class:`DiskObjects` is the :class:`~mastodon_s3_sync.storage.protocol.ObjectStore`;
:class:`DiskClient` answers the few S3 client calls the copier and ``verify`` make besides
(multipart writes of large objects, HEAD, ACL, delete) in botocore's shapes and errors.
A directory is not listed: a ``stat`` per file is cheaper than walking the tree.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import os
import secrets
import stat
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import botocore.exceptions

from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.layout import unsafe_key_reason
from mastodon_s3_sync.storage.content_type import SNIFF_BYTES, detect
from mastodon_s3_sync.storage.listing import NotListable
from mastodon_s3_sync.storage.protocol import ALL_USERS_URI, PRIVATE
from mastodon_s3_sync.storage.s3 import Bucket

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MASTODON_CACHE_CONTROL = "public, max-age=315576000, immutable"
"""What Mastodon sends with every upload since 2.6.5 (mastodon-storage.md §5)."""
PUBLIC_FILE_MODE = 0o644
PRIVATE_FILE_MODE = 0o600
PARTIAL_SUFFIX = ".mss-partial"
"""Temporary files end so; one left by a killed run is removed when its key is copied."""


def _error(code: str, status: int, message: str, operation: str) -> botocore.exceptions.ClientError:
    """The error an S3 server would answer, so callers handle both sides alike."""
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return botocore.exceptions.ClientError(cast(Any, response), operation)


@dataclass(frozen=True)
class _Upload:
    """A file being written under a temporary name."""

    key: str
    directory: Path
    temporary: Path
    handle: IO[bytes]
    digest: Any  # hashlib's md5 object (its class is private)


class DiskObjects:
    """The :class:`ObjectStore` of one directory tree, keys as relative paths."""

    def __init__(
        self,
        root: Path,
        public_mode: int = PUBLIC_FILE_MODE,
        private_mode: int = PRIVATE_FILE_MODE,
    ) -> None:
        self.root = root
        self._real_root = os.path.realpath(root)
        self._public_mode = public_mode
        self._private_mode = private_mode

    def path(self, key: str, operation: str = "GetObject") -> Path:
        """Where ``key`` lives; AccessDenied for a key that would leave the root."""
        if (unsafe := unsafe_key_reason(key)) is not None:
            raise _error("AccessDenied", 403, f"refused key {key[:100]!r}: {unsafe}", operation)
        path = self.root / key
        real = os.path.realpath(path)
        if not real.startswith(self._real_root + os.sep):
            raise _error(
                "AccessDenied", 403, f"{key} resolves outside {self.root} (a symlink)", operation
            )
        return path

    def _stat(self, key: str, operation: str) -> os.stat_result:
        try:
            status = os.stat(self.path(key, operation))
        except (FileNotFoundError, NotADirectoryError):
            raise _error("NoSuchKey", 404, f"no file {key}", operation) from None
        except PermissionError as error:
            raise _error("AccessDenied", 403, str(error), operation) from None
        if not stat.S_ISREG(status.st_mode):
            raise _error("NoSuchKey", 404, f"{key} is not a regular file", operation)
        return status

    def head_object(self, key: str) -> dict[str, Any]:
        """Size from ``stat``; no ETag (a file has none)."""
        return {"ContentLength": self._stat(key, "HeadObject").st_size, "ETag": ""}

    def get_object(self, key: str) -> dict[str, Any]:
        """The open file as the body, with the headers Mastodon would have uploaded."""
        self._stat(key, "GetObject")  # a regular file: opening a FIFO would block
        try:
            handle = open(self.path(key), "rb", buffering=0)  # noqa: SIM115 (the caller closes)
        except OSError as error:
            raise _error("AccessDenied", 403, str(error), "GetObject") from None
        try:
            status = os.fstat(handle.fileno())  # the size of the file opened
            head = handle.read(SNIFF_BYTES)
            handle.seek(0)
        except OSError as error:
            handle.close()
            raise _error("InternalError", 500, f"reading {key}: {error}", "GetObject") from None
        return {"Body": handle, "ContentLength": status.st_size, **_uploaded_headers(head, key)}

    def head_with_headers(self, key: str) -> dict[str, Any]:
        """HEAD with the headers of :meth:`get_object` (one read of the file's start)."""
        response = self.get_object(key)
        response.pop("Body").close()
        return response

    def put_object(self, key: str, body: bytes, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Write the file atomically; ``ContentMD5`` is checked before it is renamed."""
        return self.put_stream(key, (memoryview(body),), len(body), fields)

    def put_stream(
        self, key: str, chunks: Iterable[memoryview], size: int, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """:meth:`put_object` of a body written as it comes; it must be ``size`` bytes."""
        upload = self.begin(key)
        try:
            written = 0
            for chunk in chunks:
                self.write(upload, chunk)
                written += len(chunk)
            if written != size:
                raise _error("IncompleteBody", 400, f"{written} of {size} bytes", "PutObject")
            expected = fields.get("ContentMD5")
            if (
                expected is not None
                and base64.b64encode(upload.digest.digest()).decode() != expected
            ):
                raise _error("BadDigest", 400, "Content-MD5 differs", "PutObject")
            return self.finish(upload, fields.get("ACL"))
        except BaseException:
            self.discard(upload)
            raise

    def is_public(self, key: str) -> bool:
        """Whether others may read the file (Mastodon makes private files ``0600``)."""
        return bool(self._stat(key, "GetObjectAcl").st_mode & stat.S_IROTH)

    def list_page(self, prefix: str, start_after: str, max_keys: int) -> dict[str, Any]:
        """Not listed: a ``stat`` per file answers the skip checks."""
        raise NotListable(f"{self.root} is a directory: one stat per file")

    def begin(self, key: str) -> _Upload:
        """A temporary file beside ``key``'s final name (directories made as needed)."""
        final = self.path(key, "PutObject")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _error("AccessDenied", 403, str(error), "PutObject") from None
        self.path(key, "PutObject")  # the directories just made are no way out either
        temporary = final.parent / f".{final.name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        descriptor = os.open(temporary, flags, self._private_mode)
        handle = os.fdopen(descriptor, "wb")
        return _Upload(key, final.parent, temporary, handle, hashlib.md5())  # noqa: S324

    @staticmethod
    def write(upload: _Upload, data: bytes | memoryview) -> None:
        """Append ``data`` to the temporary file."""
        upload.handle.write(data)
        upload.digest.update(data)

    def finish(self, upload: _Upload, acl: str | None) -> dict[str, Any]:
        """Flush, set the mode of the ACL class, rename into place; the ETag is the MD5."""
        mode = self._private_mode if acl == PRIVATE else self._public_mode
        upload.handle.flush()
        os.fchmod(upload.handle.fileno(), mode)
        os.fsync(upload.handle.fileno())
        upload.handle.close()
        os.replace(upload.temporary, self.path(upload.key, "PutObject"))
        directory = os.open(upload.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
        return {"ETag": f'"{upload.digest.hexdigest()}"'}

    @staticmethod
    def discard(upload: _Upload) -> None:
        """Remove the temporary file of a write that did not finish."""
        upload.handle.close()
        upload.temporary.unlink(missing_ok=True)

    def leftovers(self, key: str) -> list[Path]:
        """Temporary files of ``key`` that a killed run left behind."""
        final = self.path(key, "ListMultipartUploads")
        if not final.parent.is_dir():
            return []
        return sorted(final.parent.glob(f".{glob.escape(final.name)}.*{PARTIAL_SUFFIX}"))

    def delete(self, key: str) -> None:
        """Remove the file (a write whose check failed)."""
        self.path(key, "DeleteObject").unlink(missing_ok=True)


def _uploaded_headers(head: bytes, key: str) -> dict[str, Any]:
    """What Mastodon sends with an upload of this file (no metadata)."""
    return {
        "ETag": "",
        "ContentType": detect(head, key),
        "CacheControl": MASTODON_CACHE_CONTROL,
        "Metadata": {},
    }


class _NoEvents:
    """A directory sends no requests: nothing to count (``RequestCounter.attach``)."""

    def register(self, *_: object, **__: object) -> None:
        """Ignore the handler."""


@dataclass(frozen=True)
class _Meta:
    events: _NoEvents


class DiskClient:
    """The S3 client calls the copier and ``verify`` make, answered by a directory.

    Multipart uploads of large objects are one temporary file, its parts appended in order
    (the copier sends them so); the upload id is the temporary file's name.
    """

    meta = _Meta(_NoEvents())

    def __init__(self, objects: DiskObjects) -> None:
        self._objects = objects
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        """HeadObject with the headers an upload of the file gets (``verify`` compares them)."""
        return self._objects.head_with_headers(Key)

    def get_object_acl(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        """A READ grant to everyone when others may read the file."""
        if not self._objects.is_public(Key):
            return {"Grants": []}
        return {"Grants": [{"Grantee": {"URI": ALL_USERS_URI}, "Permission": "READ"}]}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **fields: Any) -> dict[str, Any]:
        """PutObject (the demo seeds a directory through it as it seeds a bucket)."""
        return self._objects.put_object(Key, Body, fields)

    def delete_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        """DeleteObject."""
        self._objects.delete(Key)
        return {}

    def create_multipart_upload(
        self,
        *,
        Bucket: str,
        Key: str,
        ACL: str | None = None,
        **_headers: Any,
    ) -> dict[str, Any]:
        """A temporary file; the ACL class is kept for its mode."""
        upload = self._objects.begin(Key)
        upload_id = f"{upload.temporary.name}\n{ACL or ''}"
        with self._lock:
            self._uploads[upload_id] = upload
        return {"UploadId": upload_id}

    def upload_part(
        self,
        *,
        Bucket: str,
        Key: str,
        UploadId: str,
        PartNumber: int,
        Body: bytes,
        ContentMD5: str | None = None,
    ) -> dict[str, Any]:
        """Append the part (parts arrive in order)."""
        with self._lock:
            upload = self._uploads[UploadId]
        DiskObjects.write(upload, Body)
        return {"ETag": f'"{hashlib.md5(Body).hexdigest()}"'}  # noqa: S324

    def complete_multipart_upload(
        self,
        *,
        Bucket: str,
        Key: str,
        UploadId: str,
        MultipartUpload: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Rename the whole file into place; its ETag is the MD5 of all of it."""
        with self._lock:
            upload = self._uploads.pop(UploadId)
        acl = UploadId.rsplit("\n", 1)[1] or None
        try:
            return self._objects.finish(upload, acl)
        except BaseException:
            DiskObjects.discard(upload)
            raise

    def abort_multipart_upload(
        self,
        *,
        Bucket: str,
        Key: str,
        UploadId: str,
    ) -> dict[str, Any]:
        """Remove the temporary file (of this run's upload, or one a killed run left)."""
        with self._lock:
            upload = self._uploads.pop(UploadId, None)
        if upload is not None:
            DiskObjects.discard(upload)
            return {}
        name = UploadId.split("\n", 1)[0]
        if name.endswith(PARTIAL_SUFFIX) and "/" not in name:
            (self._objects.path(Key).parent / name).unlink(missing_ok=True)
        return {}

    def list_multipart_uploads(self, *, Bucket: str, Prefix: str) -> dict[str, Any]:
        """The temporary files of ``Prefix`` (a key) that no upload of this process owns."""
        with self._lock:
            owned = {upload.temporary for upload in self._uploads.values()}
        return {
            "Uploads": [
                {"Key": Prefix, "UploadId": path.name}
                for path in self._objects.leftovers(Prefix)
                if path not in owned
            ]
        }


def check_directory(settings: BucketSettings, side: str) -> Path:
    """The side's root: an existing directory, writable when it is the destination."""
    root = Path(str(settings.path))
    if not root.is_dir():
        raise SettingsError(
            f"[{side}] path (--{side}): {root} is not a directory; give Mastodon's "
            "public/system (PAPERCLIP_ROOT_PATH), or create it first"
        )
    if side == "destination" and not os.access(root, os.W_OK | os.X_OK):
        raise SettingsError(
            f"[{side}] path (--{side}): {root} is not writable by this user; run as the "
            "user Mastodon runs as, or give it the directory"
        )
    return root


def disk_bucket(settings: BucketSettings, side: str) -> Bucket:
    """One side on a directory (Mastodon's ``public/system``), which must exist."""
    root = check_directory(settings, side)
    objects = DiskObjects(root, public_mode=settings.file_mode or PUBLIC_FILE_MODE)
    return Bucket(
        disk_client(objects), str(root), settings.key_prefix, side, objects, keeps_headers=False
    )


def disk_client(objects: DiskObjects) -> S3Client:
    """A :class:`DiskClient` typed as the S3 client whose calls it answers."""
    return cast("S3Client", DiskClient(objects))
