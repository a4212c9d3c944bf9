"""Generated ``accounts`` (avatars, headers, the instance actor) and ``custom_emojis`` rows."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from mastodon_s3_sync.demo.rows import (
    DOMAINS,
    INSTANCE_ACTOR_ID,
    LEGACY_FIRST,
    LEGACY_LAST,
    LEGACY_SHARE,
    LEGACY_SHARE_SEQUENTIAL_TABLES,
    LOCAL_DOMAIN,
    V3_1_LAST,
    WORDS,
    Row,
    Weighted,
    hex16,
    odd_positions,
    row_ids,
    spread,
)
from mastodon_s3_sync.demo.schema import STORAGE_SCHEMA, SchemaVersion

_AVATAR_TYPES: Weighted[tuple[str, str, bool]] = Weighted(
    [
        (30, ("image/jpeg", ".jpeg", False)),
        (10, ("image/jpeg", ".jpg", False)),
        (35, ("image/png", ".png", False)),
        (8, ("image/gif", ".gif", False)),
        (12, ("image/webp", ".webp", True)),
    ]
)


def accounts(
    rnd: random.Random, count: int, version: SchemaVersion, start_id: int | None
) -> Iterator[Row]:
    r = rnd.random
    modern = version.has(STORAGE_SCHEMA)
    if start_id is None and count > 0:
        count -= 1
        yield _instance_actor()
    odd = odd_positions(rnd, count, ("empty_file_name", "no_extension"))
    legacy_window = (LEGACY_FIRST, LEGACY_LAST["accounts"] if modern else V3_1_LAST)
    ids = row_ids(
        rnd,
        count,
        start_id=start_id,
        legacy_share=LEGACY_SHARE["accounts"],
        legacy_window=legacy_window,
        snowflakes=modern,
    )
    for i, (account_id, created, legacy) in enumerate(ids):
        odd_kind = odd.get(i)
        # Odd rows are local accounts with an avatar, so the odd value is what gets tested.
        local = odd_kind is not None or r() < 0.12
        domain = None if local else DOMAINS[int(r() * len(DOMAINS))]
        username = f"{WORDS[int(r() * len(WORDS))]}_{account_id:x}"
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
            "suspension_origin": None,
            "indexable": False,
        }
        schema_version = None if legacy and r() < 0.5 else 1
        avatar_share = 1.0 if odd_kind else 0.85
        for attachment, share in (("avatar", avatar_share), ("header", 0.45)):
            _account_image(rnd, row, attachment, share, domain, created, schema_version, modern)
        if odd_kind == "empty_file_name":
            row["avatar_file_name"] = ""
        elif odd_kind == "no_extension":
            row["avatar_file_name"] = hex16(rnd)
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
            remote_url = f"https://files.{domain}/{attachment}s/{hex16(rnd)}{ext}"
        version = schema_version
        if remote and r() < 0.03:
            # Pruned profile media (tootctl, domain blocks): the file is cleared, the URL and
            # the schema version stay.
            content_type = None
        else:
            file_name = f"{hex16(rnd)}{ext}"
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
        "suspension_origin": None,
        "indexable": False,
    }
    for attachment in ("avatar", "header"):
        for suffix in ("file_name", "content_type", "file_size", "updated_at"):
            row[f"{attachment}_{suffix}"] = None
        row[f"{attachment}_storage_schema_version"] = None
    row["avatar_remote_url"] = None
    row["header_remote_url"] = ""
    return row


_EMOJI_TYPES: Weighted[tuple[str, str]] = Weighted(
    [(70, ("image/png", ".png")), (22, ("image/gif", ".gif")), (8, ("image/webp", ".webp"))]
)


def custom_emojis(
    rnd: random.Random, count: int, version: SchemaVersion, start_id: int | None
) -> Iterator[Row]:
    r = rnd.random
    modern = version.has(STORAGE_SCHEMA)
    first = 1 if start_id is None else start_id
    n_legacy = round(count * LEGACY_SHARE_SEQUENTIAL_TABLES) if start_id is None else 0
    times = spread(count, modern)
    for i in range(count):
        emoji_id = first + i
        created = next(times)
        local = r() < 0.1
        domain = None if local else DOMAINS[int(r() * len(DOMAINS))]
        content_type, ext = _EMOJI_TYPES.pick(r())
        row: Row = {
            "id": emoji_id,
            "shortcode": f"{WORDS[int(r() * len(WORDS))]}{emoji_id}",
            "domain": domain,
            "image_file_name": f"{hex16(rnd)}{ext}",
            "image_content_type": content_type,
            "image_file_size": 1_000 + int(r() * 255_000),
            "image_updated_at": created,
            "created_at": created,
            "updated_at": created,
            "disabled": r() < 0.02,
            "uri": None if local else f"https://{domain}/emojis/{emoji_id}",
            "image_remote_url": None
            if local
            else f"https://files.{domain}/emoji/{hex16(rnd)}{ext}",
            "visible_in_picker": True,
            "category_id": None,
            "image_storage_schema_version": None if i < n_legacy and r() < 0.5 else 1,
        }
        yield row
