"""Generated rows of the other attachments in the bucket (storage spec §2.7): ``site_uploads``,
``preview_card_providers``, ``backups`` and ``imports``.

Their ``*_file_size`` values are small (1-40 KiB), so the seeded bucket holds objects of
exactly the sizes the database records (see ``media.seed_bucket``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from mastodon_s3_sync.demo.rows import (
    DOMAINS,
    RECENT_LAST,
    SNOWFLAKE_FLOOR,
    Row,
    Weighted,
    hex16,
    spread,
)
from mastodon_s3_sync.demo.schema import STORAGE_SCHEMA, SchemaVersion

_KIB = 1024
# (var, content type, extension): what an admin uploads under Admin > Server settings.
_SITE_UPLOADS = (
    ("thumbnail", "image/jpeg", ".jpeg"),
    ("mascot", "image/gif", ".gif"),
    ("favicon", "image/vnd.microsoft.icon", ".ico"),
    ("app_icon", "image/png", ".png"),
)
# favicon and app_icon arrived in 4.3 (commit bc24c4792d).
_SITE_UPLOADS_BEFORE_4_3 = _SITE_UPLOADS[:2]


def _small_size(rnd: random.Random) -> int:
    return _KIB + int(rnd.random() * 39 * _KIB)


def site_uploads(
    rnd: random.Random, count: int, version: SchemaVersion, start_id: int | None
) -> Iterator[Row]:
    """One row per ``var`` the release knows (``var`` is unique), at most ``count``."""
    kinds = _SITE_UPLOADS if version.has(SchemaVersion.V4_3) else _SITE_UPLOADS_BEFORE_4_3
    if count > len(kinds):
        raise ValueError(f"site_uploads has one row per var: at most {len(kinds)} in {version}")
    first = 1 if start_id is None else start_id
    times = spread(count, version.has(STORAGE_SCHEMA))
    for i, (var, content_type, ext) in enumerate(kinds[:count]):
        created = next(times)
        width = 1200 if var == "thumbnail" else 512
        yield {
            "id": first + i,
            "var": var,
            "file_file_name": f"{hex16(rnd)}{ext}",
            "file_content_type": content_type,
            "file_file_size": _small_size(rnd),
            "file_updated_at": created,
            "meta": {
                "width": width,
                "height": width * 630 // 1200 if var == "thumbnail" else width,
            },
            "created_at": created,
            "updated_at": created,
            "blurhash": "UDF~ErD%00xu~qxuIUIUt7j[j[ay" if var == "thumbnail" else None,
        }


_ICON_TYPES: Weighted[tuple[str, str]] = Weighted(
    [(70, ("image/png", ".png")), (30, ("image/vnd.microsoft.icon", ".ico"))]
)


def preview_card_providers(
    rnd: random.Random, count: int, version: SchemaVersion, start_id: int | None
) -> Iterator[Row]:
    """Link providers; some with an icon (Mastodon's own code never sets one: an admin's or a
    fork's doing, which is exactly what a copier must not lose)."""
    r = rnd.random
    first = 1 if start_id is None else start_id
    times = spread(count, version.has(STORAGE_SCHEMA))
    for i in range(count):
        provider_id = first + i
        created = next(times)
        has_icon = r() < 0.5
        content_type, ext = _ICON_TYPES.pick(r())
        domain = DOMAINS[i % len(DOMAINS)].replace(".example", f"-news{provider_id}.example")
        reviewed = r() < 0.6
        yield {
            "id": provider_id,
            "domain": domain,
            "icon_file_name": f"{hex16(rnd)}{ext}" if has_icon else None,
            "icon_content_type": content_type if has_icon else None,
            "icon_file_size": _small_size(rnd) if has_icon else None,
            "icon_updated_at": created if has_icon else None,
            "trendable": (r() < 0.7) if reviewed else None,
            "reviewed_at": created + timedelta(days=1) if reviewed else None,
            "requested_review_at": created,
            "created_at": created,
            "updated_at": created,
        }


def backups(
    rnd: random.Random, count: int, version: SchemaVersion, start_id: int | None
) -> Iterator[Row]:
    """Archive downloads of the last days; one in five still being written (no dump yet)."""
    r = rnd.random
    first = 1 if start_id is None else start_id
    newest = RECENT_LAST if version.has(STORAGE_SCHEMA) else datetime(2020, 5, 1)
    for i in range(count):
        created = newest - timedelta(days=7) + timedelta(hours=i * 167 // max(count, 1))
        processed = r() >= 0.2
        name = f"archive-{created:%Y%m%d%H%M%S}-{rnd.getrandbits(128):032x}.zip"
        yield {
            "id": first + i,
            "user_id": 1 + int(r() * 5_000),
            "dump_file_name": name if processed else None,
            "dump_content_type": "application/zip" if processed else None,
            "dump_updated_at": created + timedelta(minutes=5) if processed else None,
            "processed": processed,
            "created_at": created,
            "updated_at": created,
            "dump_file_size": _small_size(rnd) if processed else None,
        }


# Import#type: following 0, blocking 1, muting 2, domain_blocking 3, bookmarks 4; the file
# name is the uploaded CSV's (Mastodon's own exports are named like this).
_IMPORT_FILES = (
    "following_accounts.csv",
    "blocked_accounts.csv",
    "muted_accounts.csv",
    "blocked_domains.csv",
    "bookmarks.csv",
)


def imports(
    rnd: random.Random, count: int, version: SchemaVersion, start_id: int | None
) -> Iterator[Row]:
    """Uploaded CSV files (the table is dropped in 4.4; rows of 4.2-4.3 are leftovers)."""
    r = rnd.random
    first = 1 if start_id is None else start_id
    modern = version.has(STORAGE_SCHEMA)
    times = spread(count, modern)
    for i in range(count):
        created = next(times)
        kind = int(r() * len(_IMPORT_FILES))
        account_id = SNOWFLAKE_FLOOR + int(r() * 1_000_000) if modern else 1 + int(r() * 5_000)
        yield {
            "id": first + i,
            "type": kind,
            "approved": r() < 0.9,
            "created_at": created,
            "updated_at": created,
            "data_file_name": _IMPORT_FILES[kind],
            "data_content_type": "text/csv",
            "data_file_size": _small_size(rnd),
            "data_updated_at": created,
            "account_id": account_id,
            "overwrite": r() < 0.2,
        }
