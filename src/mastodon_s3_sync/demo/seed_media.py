"""Generated ``media_attachments`` (every content type, thumbnails) and ``preview_cards`` rows."""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from mastodon_s3_sync.demo.rows import (
    DOMAINS,
    LEGACY_FIRST,
    LEGACY_LAST,
    LEGACY_SHARE,
    LEGACY_SHARE_SEQUENTIAL_TABLES,
    RECENT_LAST,
    SIZES,
    SNOWFLAKE_FLOOR,
    THUMBNAIL_SCHEMA_SINCE,
    V3_1_LAST,
    Row,
    Weighted,
    file_meta,
    hex16,
    odd_positions,
    row_ids,
    snowflake,
    spread,
)
from mastodon_s3_sync.demo.schema import STORAGE_SCHEMA, SchemaVersion

_IMAGE, _GIFV, _VIDEO, _UNKNOWN, _AUDIO = 0, 1, 2, 3, 4


_MB = 1_000_000


# (type, content type, extension, min size, max size, kind, needs Mastodon 4.0+)
_MEDIA_KINDS: Weighted[tuple[int, str, str, int, int, str, bool]] = Weighted(
    [
        (38, (_IMAGE, "image/jpeg", ".jpeg", 200_000, 3 * _MB, "image", False)),
        (4, (_IMAGE, "image/jpeg", ".jpg", 200_000, 3 * _MB, "image", False)),
        (12, (_IMAGE, "image/png", ".png", 200_000, 3 * _MB, "image", False)),
        (5, (_IMAGE, "image/webp", ".webp", 200_000, 3 * _MB, "image", True)),
        (2, (_IMAGE, "image/gif", ".gif", 200_000, 3 * _MB, "image", False)),
        (0.5, (_IMAGE, "image/avif", ".avif", 200_000, 3 * _MB, "image", True)),
        (5, (_GIFV, "video/mp4", ".mp4", 200_000, 8 * _MB, "video", False)),
        (10, (_VIDEO, "video/mp4", ".mp4", 5 * _MB, 40 * _MB, "video", False)),
        (0.3, (_VIDEO, "video/quicktime", ".mov", 5 * _MB, 40 * _MB, "raw_video", False)),
        (2, (_AUDIO, "audio/mpeg", ".mp3", 1 * _MB, 15 * _MB, "audio", False)),
    ]
)


_THUMBNAIL_TYPES = (("image/png", ".png"), ("image/jpeg", ".jpeg"))


def media_attachments(
    rnd: random.Random, count: int, version: SchemaVersion, start_id: int | None
) -> Iterator[Row]:
    r = rnd.random
    bits = rnd.getrandbits
    modern = version.has(STORAGE_SCHEMA)
    odd = odd_positions(rnd, count, ("empty_file_name", "blank_remote_url", "no_extension"))
    legacy_window = (LEGACY_FIRST, LEGACY_LAST["media_attachments"] if modern else V3_1_LAST)
    account_span = snowflake(RECENT_LAST) - SNOWFLAKE_FLOOR
    ids = row_ids(
        rnd,
        count,
        start_id=start_id,
        legacy_share=LEGACY_SHARE["media_attachments"],
        legacy_window=legacy_window,
        snowflakes=modern,
    )
    for i, (media_id, created, legacy) in enumerate(ids):
        type_, kind_content_type, ext, size_lo, size_hi, kind, needs_modern = _MEDIA_KINDS.pick(r())
        if needs_modern and not modern:
            # WebP and AVIF media arrived in 4.0.
            type_, kind_content_type, ext, kind = _IMAGE, "image/jpeg", ".jpeg", "image"
        # Only audio and video take a thumbnail (cover art, custom upload or remote icon).
        thumbnail_allowed = modern and type_ in (_VIDEO, _AUDIO)
        odd_kind = odd.get(i)
        # Odd rows are local uploads, so they always carry a file.
        remote = odd_kind is None and kind != "raw_video" and r() < 0.6
        domain = DOMAINS[int(r() * len(DOMAINS))] if remote else None
        content_type: str | None = kind_content_type
        file_name: str | None = f"{bits(64):016x}{ext}"
        file_updated_at: datetime | None = created
        meta: dict[str, object] | None = (
            file_meta(rnd, video=kind == "video") if r() < 0.9 else None
        )
        schema_version = None if legacy and r() < 0.5 else 1
        processing = None if legacy else 2
        status_id: int | None = None
        scheduled_status_id = None
        shortcode = None
        if remote:
            remote_url = f"https://files.{domain}/media/{bits(64):016x}{ext}"
            account_id = (
                int(r() * 50_000) + 1 if legacy else SNOWFLAKE_FLOOR + int(r() * account_span)
            )
            u = r()
            if u < 0.08:
                # Never downloaded (failed, too big, reject_media): no file, type unknown.
                type_ = _UNKNOWN
                content_type = file_name = file_updated_at = meta = None
                schema_version = None
            elif u < 0.18:
                # Media cache retention / `tootctl media remove` cleared the file, kept the row.
                content_type = file_name = file_updated_at = None
            elif u < 0.22:
                # Re-downloaded later (media proxy, `tootctl media refresh`).
                file_updated_at = created + timedelta(days=1 + int(r() * 300))
                schema_version = 1
        else:
            remote_url = ""
            account_id = (
                int(r() * 5_000) + 1 if legacy else SNOWFLAKE_FLOOR + int(r() * account_span)
            )
            shortcode = base64.urlsafe_b64encode(bits(112).to_bytes(14, "big")).decode()[:19]
            if kind == "raw_video":
                # Uploaded through /api/v2/media and not converted yet: the raw original.
                processing = 0 if r() < 0.7 else 1
        u = r()
        if u < 0.9:
            status_id = media_id + 1 + int(r() * 4_000_000) if not legacy else media_id * 7 + 3
        elif u < 0.92 and not remote:
            scheduled_status_id = 1 + int(r() * 1_000_000)
        size = None if file_name is None else size_lo + int(r() * (size_hi - size_lo))
        row: Row = {
            "id": media_id,
            "status_id": status_id,
            "file_file_name": file_name,
            "file_content_type": content_type,
            "file_file_size": size,
            "file_updated_at": file_updated_at,
            "remote_url": remote_url,
            "created_at": created,
            "updated_at": created if file_updated_at is None else file_updated_at,
            "shortcode": shortcode,
            "type": type_,
            "file_meta": meta,
            "account_id": account_id,
            "description": None,
            "scheduled_status_id": scheduled_status_id,
            "blurhash": None,
            "processing": processing,
            "file_storage_schema_version": schema_version,
            "thumbnail_file_name": None,
            "thumbnail_content_type": None,
            "thumbnail_file_size": None,
            "thumbnail_updated_at": None,
            "thumbnail_remote_url": None,
            "thumbnail_storage_schema_version": None,
        }
        if thumbnail_allowed and r() < (0.5 if kind == "audio" else 0.25):
            _thumbnail(rnd, row, domain, created, file_name is not None)
        if odd_kind == "empty_file_name":
            row["file_file_name"] = ""
        elif odd_kind == "blank_remote_url":
            row["remote_url"] = "   "
        elif odd_kind == "no_extension":
            row["file_file_name"] = f"{bits(64):016x}"
        yield row


def _thumbnail(
    rnd: random.Random, row: Row, domain: str | None, created: datetime, has_file: bool
) -> None:
    """Attach a thumbnail: cover art, a custom upload, or a remote ``icon``."""
    r = rnd.random
    content_type, ext = _THUMBNAIL_TYPES[int(r() * len(_THUMBNAIL_TYPES))]
    if domain is not None:
        row["thumbnail_remote_url"] = f"https://files.{domain}/thumbs/{hex16(rnd)}{ext}"
    if not has_file:
        return
    row["thumbnail_file_name"] = f"{hex16(rnd)}{ext}"
    row["thumbnail_content_type"] = content_type
    row["thumbnail_file_size"] = 20_000 + int(r() * 480_000)
    row["thumbnail_updated_at"] = created
    if created >= THUMBNAIL_SCHEMA_SINCE or r() < 0.05:
        row["thumbnail_storage_schema_version"] = 1


_CARD_IMAGE_TYPES: Weighted[tuple[str, str]] = Weighted(
    [
        (60, ("image/jpeg", ".jpg")),
        (10, ("image/jpeg", ".jpeg")),
        (25, ("image/png", ".png")),
        (5, ("image/gif", ".gif")),
    ]
)


_CARD_TYPES: Weighted[int] = Weighted([(80, 0), (5, 1), (12, 2), (3, 3)])


def preview_cards(
    rnd: random.Random, count: int, version: SchemaVersion, start_id: int | None
) -> Iterator[Row]:
    r = rnd.random
    modern = version.has(STORAGE_SCHEMA)
    first = 1 if start_id is None else start_id
    n_legacy = round(count * LEGACY_SHARE_SEQUENTIAL_TABLES) if start_id is None else 0
    odd = odd_positions(rnd, count, ("empty_file_name",))
    times = spread(count, modern)
    for i in range(count):
        card_id = first + i
        created = next(times)
        site = DOMAINS[int(r() * len(DOMAINS))].replace(".example", "-news.example")
        card_type = _CARD_TYPES.pick(r())
        u = r()
        has_image = u < 0.45
        # `tootctl preview_cards remove` and the vacuum clear the image but keep the version.
        cleared = 0.45 <= u < 0.6
        content_type, ext = _CARD_IMAGE_TYPES.pick(r())
        width, height = SIZES[int(r() * len(SIZES))] if has_image else (0, 0)
        schema_version = None if i < n_legacy and r() < 0.6 else 1
        row: Row = {
            "id": card_id,
            "url": f"https://{site}/articles/{card_id}",
            "title": f"Article {card_id}",
            "description": "",
            "image_file_name": f"{hex16(rnd)}{ext}" if has_image else None,
            "image_content_type": content_type if has_image else None,
            "image_file_size": 10_000 + int(r() * 990_000) if has_image else None,
            "image_updated_at": created if has_image else None,
            "type": card_type,
            "html": "",
            "author_name": "",
            "author_url": "",
            "provider_name": site,
            "provider_url": f"https://{site}/",
            "width": width,
            "height": height,
            "created_at": created,
            "updated_at": created,
            "embed_url": "",
            "image_storage_schema_version": schema_version if has_image or cleared else None,
            "blurhash": None,
            "author_account_id": None,
            "unverified_author_account_id": None,
        }
        if odd.get(i) == "empty_file_name":
            row["image_file_name"] = ""
        yield row
