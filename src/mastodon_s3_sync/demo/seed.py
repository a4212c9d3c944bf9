"""Deterministic, realistic rows for the sandbox's Mastodon tables, and a fast loader.

:func:`generate_rows` only computes rows (dicts keyed by column name); :func:`insert_rows`
loads any such rows with ``COPY ... FROM STDIN``. The generated data mirrors what the copier
meets in production (see docs/mastodon-storage.md): snowflake and legacy sequential ids, local
and remote rows, every content type Mastodon stores, rows whose files were cleared, remote
media never downloaded, legacy rows outside ``cache/``, and a handful of odd-but-legal values.
The same seed always gives the same rows.
"""

from __future__ import annotations

import base64
import json
import operator
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pg8000.exceptions import DatabaseError
from pg8000.native import Connection, identifier

from mastodon_s3_sync.demo.schema import TABLES, SchemaVersion, table_columns

__all__ = [
    "DEFAULT_COUNTS",
    "LOCAL_DOMAIN",
    "generate_rows",
    "insert_rows",
    "seed_database",
]

Row = dict[str, object]

#: The sandbox instance's own domain (the instance actor's username).
LOCAL_DOMAIN = "sandbox.example"
#: A small instance's worth of rows, for demos.
DEFAULT_COUNTS: Mapping[str, int] = {
    "accounts": 2_000,
    "media_attachments": 20_000,
    "custom_emojis": 500,
    "preview_cards": 3_000,
}
INSTANCE_ACTOR_ID = -99
COPY_CHUNK_ROWS = 3000

_EPOCH = datetime(1970, 1, 1)
# Snowflake ids are spread over this window ("recent" rows).
_RECENT_FIRST = datetime(2022, 1, 1)
_RECENT_LAST = datetime(2026, 6, 30)
# Sequential-id rows predate the switch to snowflakes (media 3.2.0, accounts 3.4.0).
_LEGACY_FIRST = datetime(2017, 4, 1)
_LEGACY_LAST = {"accounts": datetime(2021, 3, 1), "media_attachments": datetime(2020, 6, 22)}
# Databases still on 3.1.x hold nothing newer than this.
_V3_1_LAST = datetime(2020, 5, 1)
# Thumbnails assigned after Mastodon 4.6 get thumbnail_storage_schema_version = 1.
_THUMBNAIL_SCHEMA_SINCE = datetime(2026, 2, 1)
_LEGACY_SHARE = {"accounts": 0.05, "media_attachments": 0.03}
_LEGACY_SHARE_SEQUENTIAL_TABLES = 0.10
_ODD_ROWS_MIN_COUNT = 100
_ODD_ROWS_EVERY = 50_000

_DOMAINS = tuple(
    f"{name}.example"
    for name in (
        "mastodon",
        "social",
        "fosstodon",
        "hachyderm",
        "infosec",
        "mstdn",
        "toot",
        "chaos",
        "photog",
        "masto",
        "norden",
        "sigmoid",
        "tech",
        "universeodon",
        "aus",
        "mas",
    )
)
_WORDS = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "blobcat",
)
_SIZES = ((1280, 720), (1920, 1080), (1080, 1350), (800, 600), (2048, 1536), (640, 640))


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _snowflake(moment: datetime) -> int:
    return _ms(moment) << 16


_SNOWFLAKE_FLOOR = _snowflake(_RECENT_FIRST)


_T = TypeVar("_T")


class _Weighted(Generic[_T]):
    """Weighted choice among prebuilt options, driven by one ``random()`` value."""

    def __init__(self, options: Iterable[tuple[float, _T]]) -> None:
        self._items: list[_T] = []
        self._cumulative: list[float] = []
        total = 0.0
        for weight, item in options:
            total += weight
            self._items.append(item)
            self._cumulative.append(total)
        self._cumulative = [c / total for c in self._cumulative]

    def pick(self, u: float) -> _T:
        for threshold, item in zip(self._cumulative, self._items, strict=True):
            if u < threshold:
                return item
        return self._items[-1]


def _ids(
    rnd: random.Random,
    count: int,
    *,
    start_id: int | None,
    legacy_share: float,
    legacy_window: tuple[datetime, datetime],
    snowflakes: bool,
) -> Iterator[tuple[int, datetime, bool]]:
    """Strictly increasing ``(id, created_at, legacy)``: sequential ids first, then snowflakes."""
    first = 1 if start_id is None else start_id
    if not snowflakes:
        n_legacy = count
    elif first >= _SNOWFLAKE_FLOOR:
        n_legacy = 0
    else:
        n_legacy = round(count * legacy_share)
    r = rnd.random
    t0, t1 = (_ms(t) for t in legacy_window)
    step_ms = (t1 - t0) / max(n_legacy, 1)
    next_id = first
    for i in range(n_legacy):
        yield next_id, _EPOCH + timedelta(milliseconds=t0 + int(i * step_ms)), True
        # Deleted rows leave gaps in sequences.
        next_id += 1 if r() < 0.9 else 2 + int(r() * 5)
    n_snowflakes = count - n_legacy
    if n_snowflakes:
        low = max(first, _SNOWFLAKE_FLOOR)
        high = max(_snowflake(_RECENT_LAST), low + n_snowflakes)
        step = (high - low) // n_snowflakes
        for i in range(n_snowflakes):
            sid = low + i * step + int(r() * step)
            yield sid, _EPOCH + timedelta(milliseconds=sid >> 16), False


def _odd_positions(rnd: random.Random, count: int, kinds: tuple[str, ...]) -> dict[int, str]:
    """A handful of row positions per odd kind (none for tiny data sets)."""
    if count < _ODD_ROWS_MIN_COUNT or not kinds:
        return {}
    per_kind = 1 + count // _ODD_ROWS_EVERY
    positions = rnd.sample(range(count), per_kind * len(kinds))
    return {pos: kinds[i % len(kinds)] for i, pos in enumerate(positions)}


def _hex16(rnd: random.Random) -> str:
    """A ``SecureRandom.hex(8)``-style file name stem."""
    return f"{rnd.getrandbits(64):016x}"


def _meta(rnd: random.Random, *, video: bool) -> dict[str, object]:
    width, height = _SIZES[int(rnd.random() * len(_SIZES))]
    scale = max(width, height) / 640
    original: dict[str, object] = {"width": width, "height": height}
    if video:
        original["duration"] = round(1 + rnd.random() * 120, 2)
        original["frame_rate"] = "30/1"
    small = {"width": int(width / scale), "height": int(height / scale)}
    return {"original": original, "small": small}


# -- accounts ------------------------------------------------------------------------------

_AVATAR_TYPES: _Weighted[tuple[str, str, bool]] = _Weighted(
    [
        (30, ("image/jpeg", ".jpeg", False)),
        (10, ("image/jpeg", ".jpg", False)),
        (35, ("image/png", ".png", False)),
        (8, ("image/gif", ".gif", False)),
        (12, ("image/webp", ".webp", True)),
    ]
)


def _accounts(
    rnd: random.Random, count: int, version: SchemaVersion, start_id: int | None
) -> Iterator[Row]:
    r = rnd.random
    modern = version.has(SchemaVersion.V4_5)
    if start_id is None and count > 0:
        count -= 1
        yield _instance_actor()
    odd = _odd_positions(rnd, count, ("empty_file_name", "no_extension"))
    legacy_window = (_LEGACY_FIRST, _LEGACY_LAST["accounts"] if modern else _V3_1_LAST)
    ids = _ids(
        rnd,
        count,
        start_id=start_id,
        legacy_share=_LEGACY_SHARE["accounts"],
        legacy_window=legacy_window,
        snowflakes=modern,
    )
    for i, (account_id, created, legacy) in enumerate(ids):
        odd_kind = odd.get(i)
        # Odd rows are local accounts with an avatar, so the odd value is what gets tested.
        local = odd_kind is not None or r() < 0.12
        domain = None if local else _DOMAINS[int(r() * len(_DOMAINS))]
        username = f"{_WORDS[int(r() * len(_WORDS))]}_{account_id:x}"
        row: Row = {
            "id": account_id,
            "username": username,
            "domain": domain,
            "created_at": created,
            "updated_at": created + timedelta(seconds=int(r() * 86_400 * 90)),
            "note": "",
            "display_name": username.split("_", 1)[0].capitalize(),
            "uri": "" if local else f"https://{domain}/users/{username}",
            "url": None if local else f"https://{domain}/@{username}",
            "locked": r() < 0.05,
            "actor_type": "Service" if r() < 0.03 else "Person",
            "silenced_at": created + timedelta(days=30) if r() < 0.005 else None,
            "suspended_at": created + timedelta(days=10) if r() < 0.01 else None,
        }
        schema_version = None if legacy and r() < 0.5 else 1
        avatar_share = 1.0 if odd_kind else 0.85
        for attachment, share in (("avatar", avatar_share), ("header", 0.45)):
            _account_image(rnd, row, attachment, share, domain, created, schema_version, modern)
        if odd_kind == "empty_file_name":
            row["avatar_file_name"] = ""
        elif odd_kind == "no_extension":
            row["avatar_file_name"] = _hex16(rnd)
        yield row


def _account_image(
    rnd: random.Random,
    row: Row,
    attachment: str,
    share: float,
    domain: str | None,
    created: datetime,
    schema_version: int | None,
    modern: bool,
) -> None:
    """Fill the avatar_* or header_* columns of an account row."""
    r = rnd.random
    remote = domain is not None
    # No image: remote accounts store '', local ones NULL; header_remote_url is NOT NULL.
    remote_url: str | None = "" if remote or attachment == "header" else None
    version = file_name = content_type = size = updated_at = None
    if r() < share:
        content_type, ext, needs_modern = _AVATAR_TYPES.pick(r())
        if needs_modern and not modern:
            content_type, ext = "image/png", ".png"
        if remote:
            remote_url = f"https://files.{domain}/{attachment}s/{_hex16(rnd)}{ext}"
        version = schema_version
        if remote and r() < 0.03:
            # Pruned profile media (tootctl, domain blocks): the file is cleared, the URL and
            # the schema version stay.
            content_type = None
        else:
            file_name = f"{_hex16(rnd)}{ext}"
            size = 5_000 + int(r() * 295_000)
            updated_at = created + timedelta(seconds=int(r() * 86_400 * 30))
    row[f"{attachment}_file_name"] = file_name
    row[f"{attachment}_content_type"] = content_type
    row[f"{attachment}_file_size"] = size
    row[f"{attachment}_updated_at"] = updated_at
    row[f"{attachment}_remote_url"] = remote_url
    row[f"{attachment}_storage_schema_version"] = version


def _instance_actor() -> Row:
    created = datetime(2019, 9, 1)
    row: Row = {
        "id": INSTANCE_ACTOR_ID,
        "username": LOCAL_DOMAIN,
        "domain": None,
        "created_at": created,
        "updated_at": created,
        "note": "",
        "display_name": "",
        "uri": "",
        "url": None,
        "locked": True,
        "actor_type": "Application",
        "silenced_at": None,
        "suspended_at": None,
    }
    for attachment in ("avatar", "header"):
        for suffix in ("file_name", "content_type", "file_size", "updated_at"):
            row[f"{attachment}_{suffix}"] = None
        row[f"{attachment}_storage_schema_version"] = None
    row["avatar_remote_url"] = None
    row["header_remote_url"] = ""
    return row


# -- media_attachments ---------------------------------------------------------------------

_IMAGE, _GIFV, _VIDEO, _UNKNOWN, _AUDIO = 0, 1, 2, 3, 4
_MB = 1_000_000
# (type, content type, extension, min size, max size, kind, needs Mastodon 4.0+)
_MEDIA_KINDS: _Weighted[tuple[int, str, str, int, int, str, bool]] = _Weighted(
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


def _media_attachments(
    rnd: random.Random, count: int, version: SchemaVersion, start_id: int | None
) -> Iterator[Row]:
    r = rnd.random
    bits = rnd.getrandbits
    modern = version.has(SchemaVersion.V4_5)
    odd = _odd_positions(rnd, count, ("empty_file_name", "blank_remote_url", "no_extension"))
    legacy_window = (_LEGACY_FIRST, _LEGACY_LAST["media_attachments"] if modern else _V3_1_LAST)
    account_span = _snowflake(_RECENT_LAST) - _SNOWFLAKE_FLOOR
    ids = _ids(
        rnd,
        count,
        start_id=start_id,
        legacy_share=_LEGACY_SHARE["media_attachments"],
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
        domain = _DOMAINS[int(r() * len(_DOMAINS))] if remote else None
        content_type: str | None = kind_content_type
        file_name: str | None = f"{bits(64):016x}{ext}"
        file_updated_at: datetime | None = created
        meta: dict[str, object] | None = _meta(rnd, video=kind == "video") if r() < 0.9 else None
        schema_version = None if legacy and r() < 0.5 else 1
        processing = None if legacy else 2
        status_id: int | None = None
        scheduled_status_id = None
        shortcode = None
        if remote:
            remote_url = f"https://files.{domain}/media/{bits(64):016x}{ext}"
            account_id = (
                int(r() * 50_000) + 1 if legacy else _SNOWFLAKE_FLOOR + int(r() * account_span)
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
                int(r() * 5_000) + 1 if legacy else _SNOWFLAKE_FLOOR + int(r() * account_span)
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
        row["thumbnail_remote_url"] = f"https://files.{domain}/thumbs/{_hex16(rnd)}{ext}"
    if not has_file:
        return
    row["thumbnail_file_name"] = f"{_hex16(rnd)}{ext}"
    row["thumbnail_content_type"] = content_type
    row["thumbnail_file_size"] = 20_000 + int(r() * 480_000)
    row["thumbnail_updated_at"] = created
    if created >= _THUMBNAIL_SCHEMA_SINCE or r() < 0.05:
        row["thumbnail_storage_schema_version"] = 1


# -- custom_emojis -------------------------------------------------------------------------

_EMOJI_TYPES: _Weighted[tuple[str, str]] = _Weighted(
    [(70, ("image/png", ".png")), (22, ("image/gif", ".gif")), (8, ("image/webp", ".webp"))]
)


def _custom_emojis(
    rnd: random.Random, count: int, version: SchemaVersion, start_id: int | None
) -> Iterator[Row]:
    r = rnd.random
    modern = version.has(SchemaVersion.V4_5)
    first = 1 if start_id is None else start_id
    n_legacy = round(count * _LEGACY_SHARE_SEQUENTIAL_TABLES) if start_id is None else 0
    times = _spread(count, modern)
    for i in range(count):
        emoji_id = first + i
        created = next(times)
        local = r() < 0.1
        domain = None if local else _DOMAINS[int(r() * len(_DOMAINS))]
        content_type, ext = _EMOJI_TYPES.pick(r())
        row: Row = {
            "id": emoji_id,
            "shortcode": f"{_WORDS[int(r() * len(_WORDS))]}{emoji_id}",
            "domain": domain,
            "image_file_name": f"{_hex16(rnd)}{ext}",
            "image_content_type": content_type,
            "image_file_size": 1_000 + int(r() * 255_000),
            "image_updated_at": created,
            "created_at": created,
            "updated_at": created,
            "disabled": r() < 0.02,
            "uri": None if local else f"https://{domain}/emojis/{emoji_id}",
            "image_remote_url": None
            if local
            else f"https://files.{domain}/emoji/{_hex16(rnd)}{ext}",
            "visible_in_picker": True,
            "category_id": None,
            "image_storage_schema_version": None if i < n_legacy and r() < 0.5 else 1,
        }
        yield row


# -- preview_cards -------------------------------------------------------------------------

_CARD_IMAGE_TYPES: _Weighted[tuple[str, str]] = _Weighted(
    [
        (60, ("image/jpeg", ".jpg")),
        (10, ("image/jpeg", ".jpeg")),
        (25, ("image/png", ".png")),
        (5, ("image/gif", ".gif")),
    ]
)
_CARD_TYPES: _Weighted[int] = _Weighted([(80, 0), (5, 1), (12, 2), (3, 3)])


def _preview_cards(
    rnd: random.Random, count: int, version: SchemaVersion, start_id: int | None
) -> Iterator[Row]:
    r = rnd.random
    modern = version.has(SchemaVersion.V4_5)
    first = 1 if start_id is None else start_id
    n_legacy = round(count * _LEGACY_SHARE_SEQUENTIAL_TABLES) if start_id is None else 0
    odd = _odd_positions(rnd, count, ("empty_file_name",))
    times = _spread(count, modern)
    for i in range(count):
        card_id = first + i
        created = next(times)
        site = _DOMAINS[int(r() * len(_DOMAINS))].replace(".example", "-news.example")
        card_type = _CARD_TYPES.pick(r())
        u = r()
        has_image = u < 0.45
        # `tootctl preview_cards remove` and the vacuum clear the image but keep the version.
        cleared = 0.45 <= u < 0.6
        content_type, ext = _CARD_IMAGE_TYPES.pick(r())
        width, height = _SIZES[int(r() * len(_SIZES))] if has_image else (0, 0)
        schema_version = None if i < n_legacy and r() < 0.6 else 1
        row: Row = {
            "id": card_id,
            "url": f"https://{site}/articles/{card_id}",
            "title": f"Article {card_id}",
            "description": "",
            "image_file_name": f"{_hex16(rnd)}{ext}" if has_image else None,
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


def _spread(count: int, modern: bool) -> Iterator[datetime]:
    """Creation times for a sequential table, oldest first."""
    first, last = _LEGACY_FIRST, (_RECENT_LAST if modern else _V3_1_LAST)
    step = (last - first) / max(count, 1)
    for i in range(count):
        yield first + step * i


# -- public API ----------------------------------------------------------------------------

_Generator = Callable[[random.Random, int, SchemaVersion, int | None], Iterator[Row]]
_GENERATORS: dict[str, _Generator] = {
    "accounts": _accounts,
    "media_attachments": _media_attachments,
    "custom_emojis": _custom_emojis,
    "preview_cards": _preview_cards,
}


def generate_rows(
    table: str,
    count: int,
    *,
    seed: int = 0,
    version: SchemaVersion = SchemaVersion.CURRENT,
    start_id: int | None = None,
) -> Iterator[Row]:
    """Yield ``count`` realistic rows for ``table``, ids strictly increasing.

    Rows hold exactly the columns ``table`` has in ``version``. The same arguments always give
    the same rows. ``start_id`` is the lowest id to use (for appending to a seeded table);
    without it, ``accounts`` starts with the instance actor (id -99), and ``accounts`` and
    ``media_attachments`` start with a few legacy sequential ids before the snowflakes
    (databases on 3.1 hold only sequential ids).
    """
    if table not in _GENERATORS:
        raise ValueError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    # A string seed keeps tables independent and does not depend on PYTHONHASHSEED.
    rnd = random.Random(f"{table}:{seed}")  # noqa: S311 - test data, not secrets
    rows = _GENERATORS[table](rnd, count, version, start_id)
    present = set(table_columns(table, version))
    absent = [c for c in table_columns(table) if c not in present]
    return _without(rows, absent) if absent else rows


def _without(rows: Iterator[Row], columns: list[str]) -> Iterator[Row]:
    """Drop columns an older schema version lacks (generators fill every column)."""
    for row in rows:
        for column in columns:
            del row[column]
        yield row


def insert_rows(
    conn: Connection,
    table: str,
    rows: Iterable[Mapping[str, object]],
    version: SchemaVersion = SchemaVersion.CURRENT,
) -> int:
    """Load ``rows`` into ``table`` with one COPY in its own transaction; return how many.

    The first row's keys decide the columns; omitted columns take their defaults. Every row
    must have the same keys, all of which must exist in ``table`` in ``version``. Rows are
    converted and sent in chunks while the server loads earlier ones, so memory stays flat.
    Call it outside a transaction.
    """
    known = table_columns(table, version)
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return 0
    columns = tuple(first)
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ValueError(f"{table} has no column {', '.join(unknown)} in {version}")
    copy_sql = f"COPY {table} ({', '.join(identifier(c) for c in columns)}) FROM STDIN"
    stream = _CopyStream(_chain_first(first, iterator), columns)
    conn.run("START TRANSACTION")
    try:
        try:
            conn.run(copy_sql, stream=stream)
        except DatabaseError:
            stream.raise_failure()
            raise
        stream.raise_failure()
        _advance_id_sequence(conn, table, columns)
    except BaseException:
        conn.run("ROLLBACK")
        raise
    conn.run("COMMIT")
    return stream.rows


def seed_database(
    conn: Connection,
    version: SchemaVersion = SchemaVersion.CURRENT,
    counts: Mapping[str, int] = DEFAULT_COUNTS,
    seed: int = 0,
) -> dict[str, int]:
    """Generate and insert ``counts[table]`` rows per table; return the rows inserted."""
    unknown = set(counts) - set(TABLES)
    if unknown:
        raise ValueError(f"unknown tables: {', '.join(sorted(unknown))}")
    return {
        table: insert_rows(
            conn, table, generate_rows(table, counts[table], seed=seed, version=version), version
        )
        for table in TABLES
        if table in counts
    }


# -- COPY text format ----------------------------------------------------------------------

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_str(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _copy_datetime(value: datetime) -> str:
    # Mastodon's columns are `timestamp without time zone` holding UTC.
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat()


_encode_json = json.JSONEncoder(separators=(",", ":")).encode


def _copy_json(value: object) -> str:
    return _copy_str(_encode_json(value))


# Exact types only: one dict lookup per value keeps a million-row load fast.
_CONVERTERS: dict[type, Callable[[Any], str]] = {
    type(None): lambda _: "\\N",
    str: _copy_str,
    int: int.__repr__,
    bool: lambda v: "t" if v else "f",
    float: float.__repr__,
    datetime: lambda v: v.isoformat() if v.tzinfo is None else _copy_datetime(v),
    dict: _copy_json,
    list: _copy_json,
}


def _convert_other(value: object) -> str:
    """Subclasses (enums, ...) and rarer types, which the exact-type lookup misses."""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return _copy_datetime(value)
    if isinstance(value, date | Decimal):
        return str(value)
    if isinstance(value, str):
        return _copy_str(str.__str__(value))
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, dict | list):
        return _copy_json(value)
    raise TypeError(f"cannot COPY a value of type {type(value).__name__}: {value!r}")


class _CopyStream:
    """COPY text-format chunks for pg8000's ``stream=``, remembering a bad row's error.

    pg8000 cannot abort a COPY from the client side, so on a bad row the stream ends with a
    line no valid COPY data contains (a NUL byte): the server rejects the COPY, the
    connection stays usable, and :meth:`raise_failure` re-raises the row's error.
    """

    def __init__(self, rows: Iterator[Mapping[str, object]], columns: tuple[str, ...]) -> None:
        self._rows = rows
        self._columns = columns
        self._failure: Exception | None = None
        self.rows = 0

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._chunks()
        except Exception as exc:
            self._failure = exc
            yield "\x00\n"

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _chunks(self) -> Iterator[str]:
        columns = self._columns
        width = len(columns)
        get_values = operator.itemgetter(*columns)
        converters = _CONVERTERS
        chunk: list[str] = []
        for row in self._rows:
            if len(row) != width:
                raise ValueError(f"row {self.rows + 1} has columns {sorted(row)}, not {columns}")
            try:
                values = get_values(row)
            except KeyError as exc:
                raise ValueError(f"row {self.rows + 1} lacks column {exc}") from None
            if width == 1:
                values = (values,)
            chunk.append("\t".join([converters.get(type(v), _convert_other)(v) for v in values]))
            self.rows += 1
            if len(chunk) == COPY_CHUNK_ROWS:
                chunk.append("")  # every line ends with a newline, the last one too
                yield "\n".join(chunk)
                chunk.clear()
        if chunk:
            chunk.append("")
            yield "\n".join(chunk)


def _advance_id_sequence(conn: Connection, table: str, columns: tuple[str, ...]) -> None:
    """After explicit ids, move a bigserial's sequence past them so plain INSERTs work."""
    if "id" not in columns:
        return
    conn.run(
        f"SELECT setval(seq, GREATEST((SELECT max(id) FROM {table}), 1)) "
        f"FROM pg_get_serial_sequence(:table, 'id') AS seq WHERE seq IS NOT NULL",
        table=table,
    )


def _chain_first(
    first: Mapping[str, object], rest: Iterator[Mapping[str, object]]
) -> Iterator[Mapping[str, object]]:
    yield first
    yield from rest
