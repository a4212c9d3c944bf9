"""Fill a source bucket with the objects a Mastodon database references.

Integration tests and the ``demo`` command need a bucket that looks like one Mastodon
wrote: every key the database implies, with the headers Mastodon sends (storage spec §5),
some objects private, and the usual damage (rows whose files are gone, rows half-moved by
an interrupted ``tootctl upgrade storage-schema``). :func:`seed_bucket` writes it and
returns a :class:`SeedManifest` saying exactly what is where, so tests can check a copy
byte for byte.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import random
from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import botocore.exceptions

from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = [
    "CACHE_CONTROL",
    "SeedManifest",
    "SeededObject",
    "content_type_for",
    "create_bucket",
    "seed_bucket",
]

CACHE_CONTROL = "public, max-age=315576000, immutable"
"""What Mastodon 2.6.5+ sends with every upload."""
DEFAULT_SEED_WORKERS = 8
MULTIPART_PART_SIZE = 5 * 1024 * 1024
"""Part size for multipart seeding (S3's minimum for all parts but the last)."""

_KIB = 1024
_ORIGINAL_SIZE_RANGE = (1 * _KIB, 40 * _KIB)
_DERIVED_SIZE_RANGE = (1 * _KIB, 8 * _KIB)
_BLOCK_SIZE = 64 * _KIB
_FALLBACK_CONTENT_TYPE = "application/octet-stream"

Acl = Literal["public-read", "private"]

# What Paperclip's content detection gives for the files Mastodon writes (spec §5).
_CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "mp3": "audio/mpeg",
    "ico": "image/vnd.microsoft.icon",
    "zip": "application/zip",
    "csv": "text/csv",
}
# Leading bytes of each format, so that sniffing the content agrees with the header.
_MAGIC = {
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/gif": b"GIF89a",
    "image/webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    "image/avif": b"\x00\x00\x00\x1cftypavif",
    "video/mp4": b"\x00\x00\x00\x18ftypmp42",
    "video/quicktime": b"\x00\x00\x00\x14ftypqt  ",
    "audio/mpeg": b"ID3\x04\x00",
    "image/vnd.microsoft.icon": b"\x00\x00\x01\x00",
    "application/zip": b"PK\x03\x04",
}


@dataclass(frozen=True)
class SeededObject:
    """One object as written: where, how big, its MD5 and the headers it was given.

    ``acl`` is None when no ACL was sent (``acl_supported=False``). ``etag`` is what the
    server answered, without quotes (an MD5, or ``<hex>-N`` for a multipart upload on most
    servers).
    """

    ref: ObjectRef
    key: str
    size: int
    md5: str
    content_type: str
    cache_control: str
    acl: Acl | None
    etag: str
    multipart: bool = False


@dataclass
class SeedManifest:
    """What :func:`seed_bucket` wrote (keyed by the key actually written) and left out."""

    objects: dict[str, SeededObject] = field(default_factory=dict)
    missing: list[ObjectRef] = field(default_factory=list)
    """Refs deliberately not written (rows that outlived their files)."""
    legacy: list[ObjectRef] = field(default_factory=list)
    """Refs written at ``alternates[0]`` (the other ``cache/`` placement)."""

    @property
    def total_bytes(self) -> int:
        """Sum of the sizes written."""
        return sum(obj.size for obj in self.objects.values())

    def for_ref(self, ref: ObjectRef) -> SeededObject | None:
        """The object written for ``ref`` (at its key or an alternate), or None."""
        for key in (ref.key, *ref.alternates):
            seeded = self.objects.get(key)
            if seeded is not None and seeded.ref == ref:
                return seeded
        return None


def content_type_for(ref: ObjectRef, key: str | None = None) -> str:
    """The Content-Type Mastodon stored for ``ref`` (from the extension of ``key``).

    A preview card's ``.gif`` original holds JPEG bytes and says so (spec §5): the key's
    extension lies, the header does not.
    """
    name = (key or ref.key).rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    is_card_original = ref.record_type is RecordType.PREVIEW_CARDS and ref.style == "original"
    if is_card_original and extension == "gif":
        return "image/jpeg"
    return _CONTENT_TYPES.get(extension, _FALLBACK_CONTENT_TYPE)


def create_bucket(client: S3Client, bucket: str) -> None:
    """Create ``bucket`` (in the client's region); an existing bucket of ours is fine."""
    try:
        client.create_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        client.head_bucket(Bucket=bucket)  # raises if it exists but is not ours


@dataclass(frozen=True)
class _Plan:
    ref: ObjectRef
    key: str
    size: int
    content_type: str
    acl: Acl | None
    content_seed: str


def _body(plan: _Plan) -> bytes:
    """Deterministic pseudo-random bytes: a random block per object, repeated."""
    rng = random.Random(plan.content_seed)  # noqa: S311 - test data, not secrets
    magic = _MAGIC.get(plan.content_type, b"")
    if plan.size <= _BLOCK_SIZE:
        return (magic + rng.randbytes(plan.size))[: plan.size]
    block = rng.randbytes(_BLOCK_SIZE)
    repeats, rest = divmod(plan.size - len(magic), _BLOCK_SIZE)
    return magic + block * repeats + block[:rest]


def _small_size(ref: ObjectRef, seed: int) -> int:
    low, high = _ORIGINAL_SIZE_RANGE if ref.style == "original" else _DERIVED_SIZE_RANGE
    if ref.expected_size is not None and low <= ref.expected_size <= high:
        return ref.expected_size  # the database's size, when it is that small: exact
    return random.Random(f"size:{seed}:{ref.key}").randint(low, high)  # noqa: S311


def _acl_args(acl: Acl | None) -> dict[str, Any]:
    return {} if acl is None else {"ACL": acl}


def _put(
    client: S3Client, bucket: str, plan: _Plan, multipart_threshold: int | None
) -> SeededObject:
    body = _body(plan)
    md5 = hashlib.md5(body, usedforsecurity=False)  # S3's Content-MD5 and ETag
    multipart = multipart_threshold is not None and plan.size >= multipart_threshold
    if multipart:
        etag = _put_multipart(client, bucket, plan, body)
    else:
        answer = client.put_object(
            Bucket=bucket,
            Key=plan.key,
            Body=body,
            ContentMD5=base64.b64encode(md5.digest()).decode("ascii"),
            ContentType=plan.content_type,
            CacheControl=CACHE_CONTROL,
            **_acl_args(plan.acl),
        )
        etag = answer["ETag"]
    return SeededObject(
        ref=plan.ref,
        key=plan.key,
        size=plan.size,
        md5=md5.hexdigest(),
        content_type=plan.content_type,
        cache_control=CACHE_CONTROL,
        acl=plan.acl,
        etag=etag.strip('"'),
        multipart=multipart,
    )


def _put_multipart(client: S3Client, bucket: str, plan: _Plan, body: bytes) -> str:
    """Upload in ascending part order (rclone serve s3 requires it), as Mastodon's SDK would."""
    upload = client.create_multipart_upload(
        Bucket=bucket,
        Key=plan.key,
        ContentType=plan.content_type,
        CacheControl=CACHE_CONTROL,
        **_acl_args(plan.acl),
    )
    upload_id = upload["UploadId"]
    try:
        parts: list[CompletedPartTypeDef] = []
        for number, offset in enumerate(range(0, len(body), MULTIPART_PART_SIZE), start=1):
            chunk = body[offset : offset + MULTIPART_PART_SIZE]
            digest = hashlib.md5(chunk, usedforsecurity=False).digest()
            answer = client.upload_part(
                Bucket=bucket,
                Key=plan.key,
                UploadId=upload_id,
                PartNumber=number,
                Body=chunk,
                ContentMD5=base64.b64encode(digest).decode("ascii"),
            )
            parts.append({"ETag": answer["ETag"], "PartNumber": number})
        done = client.complete_multipart_upload(
            Bucket=bucket, Key=plan.key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        # The upload may already be gone (rclone drops it on a bad part); the original
        # error is the one that matters.
        with contextlib.suppress(botocore.exceptions.ClientError):
            client.abort_multipart_upload(Bucket=bucket, Key=plan.key, UploadId=upload_id)
        raise
    return done["ETag"]


def seed_bucket(
    client: S3Client,
    bucket: str,
    refs: Iterable[ObjectRef],
    *,
    seed: int = 0,
    private_record_ids: Collection[int] = (),
    private_types: Collection[RecordType] = (),
    missing_every: int = 0,
    gone_types: Collection[RecordType] | None = None,
    legacy_every: int = 0,
    large_sizes: bool = False,
    acl_supported: bool = True,
    multipart_threshold: int | None = None,
    workers: int = DEFAULT_SEED_WORKERS,
) -> SeedManifest:
    """Write an object for each ref, as Mastodon would have, and say what was written.

    Bytes depend only on ``seed`` and ``ref.key``. Sizes are small (1-40 KiB originals,
    1-8 KiB other styles; an original's database size, ``expected_size``, when it is in
    that range) unless ``large_sizes`` is set, in which case an original's database size is
    used whenever known. Headers are Mastodon's: Content-Type from the extension (except a
    preview card's ``.gif``, which is JPEG), :data:`CACHE_CONTROL`, and ACL ``public-read``,
    or ``private`` for refs whose ``record_id`` is in ``private_record_ids`` or whose type
    is in ``private_types`` (no ACL header if not ``acl_supported``).

    ``missing_every=N`` leaves out every Nth ref (of the ``gone_types``, when given);
    ``legacy_every=M`` writes every Mth written ref that has alternates at
    ``alternates[0]`` (the other ``cache/`` placement). Objects of ``multipart_threshold``
    bytes or more are uploaded in :data:`MULTIPART_PART_SIZE` parts, as Mastodon's SDK
    does above 15 MB. The bucket must exist (see :func:`create_bucket`); ``client`` should
    allow ``workers`` connections.
    """
    if missing_every < 0 or legacy_every < 0:
        raise ValueError("missing_every and legacy_every must be >= 0")
    if workers < 1:
        raise ValueError("workers must be >= 1")
    private = frozenset(private_record_ids)
    manifest = SeedManifest()
    plans: list[_Plan] = []
    planned_keys: set[str] = set()
    written = eligible = 0
    for ref in refs:
        if gone_types is None or ref.record_type in gone_types:
            eligible += 1
            if missing_every and eligible % missing_every == 0:
                manifest.missing.append(ref)
                continue
        written += 1
        key = ref.key
        if legacy_every and written % legacy_every == 0 and ref.alternates:
            key = ref.alternates[0]
            manifest.legacy.append(ref)
        if key in planned_keys:
            raise ValueError(f"two refs would be written at the same key {key!r}")
        planned_keys.add(key)
        size = (
            ref.expected_size
            if large_sizes and ref.expected_size is not None
            else _small_size(ref, seed)
        )
        acl: Acl | None = None
        if acl_supported:
            is_private = ref.record_id in private or ref.record_type in private_types
            acl = "private" if is_private else "public-read"
        plans.append(
            _Plan(
                ref=ref,
                key=key,
                size=size,
                content_type=content_type_for(ref, key),
                acl=acl,
                content_seed=f"body:{seed}:{ref.key}",
            )
        )
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seed-bucket") as pool:
        for seeded in pool.map(lambda plan: _put(client, bucket, plan, multipart_threshold), plans):
            manifest.objects[seeded.key] = seeded
    return manifest
