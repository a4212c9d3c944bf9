"""The benchmark dataset: a deterministic Mastodon-like media mix and its database.

By count, as an instance's bucket holds them: ~40% previews (10-60 KB: media ``small``,
emoji ``static``), ~25% avatars, headers and emoji (5-300 KB), ~25% image originals
(0.2-3 MB), ~8% preview cards (10-200 KB), ~2% videos (5-40 MB). Sizes are drawn
log-uniformly within each range (real uploads cluster at the low end), keyed on the row
and style so the same ``(objects, seed)`` always gives the same keys, sizes and bytes.

The rows are real Mastodon rows (the sandbox schema), loaded with ``COPY``; the object
references come from the product's own layout rules, so ``run`` enumerates exactly the
keys the other tools are handed in a ``--files-from`` list.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mastodon_s3_sync.demo.loader import insert_rows
from mastodon_s3_sync.demo.media import CACHE_CONTROL, content_type_for
from mastodon_s3_sync.demo.schema import SchemaVersion, create_schema
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType, objects_for_row

if TYPE_CHECKING:
    import pg8000.native
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

KB, MB = 1000, 1000 * 1000
MIB = 1024 * 1024
UPLOAD_WORKERS = 16

Row = dict[str, object]

# Size classes: (low, high) bytes.
PREVIEW = (10 * KB, 60 * KB)
PROFILE_OR_EMOJI = (5 * KB, 300 * KB)
ORIGINAL = (200 * KB, 3 * MB)
PREVIEW_CARD = (10 * KB, 200 * KB)
VIDEO = (5 * MB, 40 * MB)

# Rows per object of the mix. Each media row makes two objects (original + small), each
# emoji two (image + static), each account two (avatar + header), each card one:
# previews 2% + 25% + 13% = 40%, avatars/headers/emoji 13% + 12% = 25%, originals 25%,
# videos 2%, cards the remaining 8%.
VIDEO_ROWS = 0.02
IMAGE_ROWS = 0.25
EMOJI_ROWS = 0.13
ACCOUNT_ROWS = 0.06

_MEDIA_ID_BASE = 109_348_123_456_789_012  # a snowflake of late 2022
_SNOWFLAKE_STEP = 1 << 16
_CREATED = datetime(2024, 3, 1)
_IMAGE_TYPES = (("image/jpeg", "jpeg", 60), ("image/png", "png", 25), ("image/webp", "webp", 15))
_PROFILE_TYPES = (("image/jpeg", "jpeg", 55), ("image/png", "png", 45))
_BLOCK = random.Random(0).randbytes(8 * MIB)


@dataclass(frozen=True)
class DatasetObject:
    """One object of the dataset: its reference, size and Content-Type."""

    ref: ObjectRef
    size: int
    content_type: str

    @property
    def key(self) -> str:
        """The canonical key (where the object is written)."""
        return self.ref.key


@dataclass(frozen=True)
class Dataset:
    """Rows per table and the objects they stand for, in enumeration order."""

    rows: Mapping[RecordType, list[Row]]
    objects: list[DatasetObject]

    @property
    def total_bytes(self) -> int:
        """Sum of the object sizes."""
        return sum(obj.size for obj in self.objects)

    def counts_by_class(self) -> dict[str, int]:
        """Objects per size class of the mix, for the results' description."""
        counts: dict[str, int] = {}
        for obj in self.objects:
            counts[size_class(obj.ref)] = counts.get(size_class(obj.ref), 0) + 1
        return counts


def size_class(ref: ObjectRef) -> str:
    """Which class of the mix ``ref`` belongs to."""
    if ref.style in ("small", "static"):
        return "preview"
    if ref.record_type is RecordType.PREVIEW_CARDS:
        return "preview card"
    if ref.record_type is RecordType.MEDIA_ATTACHMENTS:
        return "video" if ref.key.endswith(".mp4") else "original"
    return "avatar/header/emoji"


def _log_uniform(rng: random.Random, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return round(math.exp(rng.uniform(math.log(low), math.log(high))))


def _sizer(seed: int, table: RecordType, record_id: int) -> random.Random:
    """A generator per row, so one row's sizes never shift another's."""
    return random.Random(f"size:{seed}:{table}:{record_id}")


def _pick(rng: random.Random, choices: tuple[tuple[str, str, int], ...]) -> tuple[str, str]:
    content_type, extension, _ = rng.choices(choices, weights=[c[2] for c in choices])[0]
    return content_type, extension


def _name(rng: random.Random, extension: str) -> str:
    return f"{rng.getrandbits(64):016x}.{extension}"


def _media_row(seed: int, n: int, video: bool) -> Row:
    record_id = _MEDIA_ID_BASE + n * _SNOWFLAKE_STEP
    rng = random.Random(f"media:{seed}:{n}")
    content_type, extension = ("video/mp4", "mp4") if video else _pick(rng, _IMAGE_TYPES)
    size = _sizer(seed, RecordType.MEDIA_ATTACHMENTS, record_id)
    return {
        "id": record_id,
        "type": 2 if video else 0,
        "file_file_name": _name(rng, extension),
        "file_content_type": content_type,
        "file_file_size": _log_uniform(size, VIDEO if video else ORIGINAL),
        "file_updated_at": _CREATED,
        "remote_url": "",
        "created_at": _CREATED,
        "updated_at": _CREATED,
        "file_storage_schema_version": 1,
    }


def _emoji_row(seed: int, n: int) -> Row:
    rng = random.Random(f"emoji:{seed}:{n}")
    size = _sizer(seed, RecordType.CUSTOM_EMOJIS, n)
    return {
        "id": n,
        "shortcode": f"emoji{n}",
        "image_file_name": _name(rng, "png"),
        "image_content_type": "image/png",
        "image_file_size": _log_uniform(size, PROFILE_OR_EMOJI),
        "image_updated_at": _CREATED,
        "created_at": _CREATED,
        "updated_at": _CREATED,
        "image_storage_schema_version": 1,
    }


def _account_row(seed: int, n: int) -> Row:
    rng = random.Random(f"account:{seed}:{n}")
    size = _sizer(seed, RecordType.ACCOUNTS, n)
    row: Row = {
        "id": n,
        "username": f"user{n}",
        "created_at": _CREATED,
        "updated_at": _CREATED,
        "header_remote_url": "",
    }
    for attachment in ("avatar", "header"):
        content_type, extension = _pick(rng, _PROFILE_TYPES)
        row[f"{attachment}_file_name"] = _name(rng, extension)
        row[f"{attachment}_content_type"] = content_type
        row[f"{attachment}_file_size"] = _log_uniform(size, PROFILE_OR_EMOJI)
        row[f"{attachment}_updated_at"] = _CREATED
        row[f"{attachment}_storage_schema_version"] = 1
    return row


def _card_row(seed: int, n: int, size_bounds: tuple[int, int]) -> Row:
    rng = random.Random(f"card:{seed}:{n}")
    size = _sizer(seed, RecordType.PREVIEW_CARDS, n)
    return {
        "id": n,
        "url": f"https://news.example/articles/{n}",
        "image_file_name": _name(rng, "jpg"),
        "image_content_type": "image/jpeg",
        "image_file_size": _log_uniform(size, size_bounds),
        "image_updated_at": _CREATED + timedelta(seconds=n),
        "created_at": _CREATED,
        "updated_at": _CREATED,
        "image_storage_schema_version": 1,
    }


def _objects(rows: Mapping[RecordType, list[Row]], seed: int) -> list[DatasetObject]:
    objects = []
    for record_type, table_rows in rows.items():
        for row in table_rows:
            for ref in objects_for_row(record_type, row):
                if ref.expected_size is not None:
                    size = ref.expected_size
                else:  # a derived style (small, static): the database does not know its size
                    derived = random.Random(f"derived:{seed}:{ref.key}")
                    size = _log_uniform(derived, PREVIEW)
                objects.append(DatasetObject(ref, size, content_type_for(ref)))
    return objects


def mastodon_mix(objects: int, seed: int = 0) -> Dataset:
    """About ``objects`` objects (exactly, when it is a multiple of 50) in Mastodon's mix."""
    videos, images = round(objects * VIDEO_ROWS), round(objects * IMAGE_ROWS)
    emoji, accounts = round(objects * EMOJI_ROWS), round(objects * ACCOUNT_ROWS)
    cards = max(objects - 2 * (videos + images + emoji + accounts), 0)
    media_kinds = [True] * videos + [False] * images
    random.Random(f"order:{seed}").shuffle(media_kinds)  # videos spread among images
    rows: dict[RecordType, list[Row]] = {
        RecordType.ACCOUNTS: [_account_row(seed, n) for n in range(1, accounts + 1)],
        RecordType.MEDIA_ATTACHMENTS: [
            _media_row(seed, n, video) for n, video in enumerate(media_kinds, start=1)
        ],
        RecordType.CUSTOM_EMOJIS: [_emoji_row(seed, n) for n in range(1, emoji + 1)],
        RecordType.PREVIEW_CARDS: [_card_row(seed, n, PREVIEW_CARD) for n in range(1, cards + 1)],
    }
    return Dataset(rows, _objects(rows, seed))


def uniform_cards(objects: int, size: int, seed: int = 0) -> Dataset:
    """``objects`` preview cards of exactly ``size`` bytes (the small-object extreme)."""
    cards = [_card_row(seed, n, (size, size)) for n in range(1, objects + 1)]
    rows = {RecordType.PREVIEW_CARDS: cards}
    return Dataset(rows, _objects(rows, seed))


def seed_database(conn: pg8000.native.Connection, dataset: Dataset) -> None:
    """Create Mastodon's tables and load the dataset's rows (one COPY per table)."""
    create_schema(conn, SchemaVersion.CURRENT)
    for record_type, rows in dataset.rows.items():
        if rows:
            columns = sorted({column for row in rows for column in row})
            insert_rows(conn, str(record_type), ({c: row.get(c) for c in columns} for row in rows))
    conn.run("ANALYZE")


def body(size: int, salt: str) -> bytes:
    """Deterministic, incompressible-looking bytes: a random block from an offset."""
    start = random.Random(salt).randrange(len(_BLOCK))
    out = bytearray(_BLOCK[start : start + size])
    while len(out) < size:
        out += _BLOCK[: size - len(out)]
    return bytes(out)


def upload(client: S3Client, bucket: str, dataset: Dataset) -> None:
    """Write every object with Mastodon's headers, 16 at a time."""

    def put(obj: DatasetObject) -> None:
        client.put_object(
            Bucket=bucket,
            Key=obj.key,
            Body=body(obj.size, obj.key),
            ContentType=obj.content_type,
            CacheControl=CACHE_CONTROL,
        )

    with ThreadPoolExecutor(UPLOAD_WORKERS) as pool:
        list(pool.map(put, dataset.objects))


def upload_large(client: S3Client, bucket: str, key: str, size: int) -> None:
    """One object of ``size`` bytes, multipart, generated part by part (no big buffer)."""
    part_size = 16 * MIB
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType="audio/mpeg")[
        "UploadId"
    ]
    parts: list[CompletedPartTypeDef] = []
    for number, start in enumerate(range(0, size, part_size), start=1):
        part = body(min(part_size, size - start), f"{key}:{number}")
        etag = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def large_object(size: int) -> Dataset:
    """One audio row (no derived styles) whose file is ``size`` bytes: the memory scenario."""
    row: Row = {
        "id": 1,
        "type": 4,
        "file_file_name": "large.mp3",
        "file_content_type": "audio/mpeg",
        "file_file_size": size,
        "file_updated_at": _CREATED,
        "remote_url": "",
        "created_at": _CREATED,
        "updated_at": _CREATED,
        "file_storage_schema_version": 1,
    }
    (ref,) = objects_for_row(RecordType.MEDIA_ATTACHMENTS, row)
    return Dataset({RecordType.MEDIA_ATTACHMENTS: [row]}, [DatasetObject(ref, size, "audio/mpeg")])
