"""The catalog against a real PostgreSQL cluster with Mastodon-shaped schemas."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from mastodon_s3_sync.demo.schema import SchemaVersion
from mastodon_s3_sync.errors import DatabaseError
from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter
from mastodon_s3_sync.mastodon.layout import RecordType, Release
from mastodon_s3_sync.mastodon.plan import format_summary, write_plan
from mastodon_s3_sync.mastodon.selection import select
from tests.support.mastodon_db import MastodonDb

pytestmark = pytest.mark.integration

MakeDb = Callable[..., MastodonDb]
H = "0123456789abcdef"


def insert(db: MastodonDb, table: str, **columns: Any) -> None:
    names = ", ".join(columns)
    values = ", ".join(f":{name}" for name in columns)
    db.conn.run(f"INSERT INTO {table} ({names}) VALUES ({values})", **columns)


def insert_account(db: MastodonDb, account_id: int, **columns: Any) -> None:
    now = datetime(2026, 1, 1)
    insert(db, "accounts", id=account_id, created_at=now, updated_at=now, **columns)


def insert_media(db: MastodonDb, media_id: int, **columns: Any) -> None:
    now = datetime(2026, 1, 1)
    defaults: dict[str, Any] = {
        "file_file_name": f"{H}.png",
        "file_content_type": "image/png",
        "file_file_size": 100,
        "file_updated_at": now,
    }
    defaults.update(columns)
    insert(db, "media_attachments", id=media_id, created_at=now, updated_at=now, **defaults)


def keys(catalog: Catalog, record_type: RecordType, filt: CatalogFilter | None = None) -> list[str]:
    return [
        ref.key for row in catalog.walk(record_type, filt or CatalogFilter()) for ref in row.objects
    ]


def test_paging_crosses_page_boundaries_without_gaps_or_repeats(mastodon_db: MakeDb) -> None:
    # given 23 media rows with snowflake and sequential ids, pages of 5
    db = mastodon_db()
    ids = sorted([*range(1, 12), *(109348123456789000 + n for n in range(12))])
    for media_id in ids:
        insert_media(db, media_id)
    # when
    walked = [
        row.record_id
        for row in Catalog(db.conn, page_size=5).walk(RecordType.MEDIA_ATTACHMENTS, CatalogFilter())
    ]
    # then
    assert walked == ids
    assert keys(Catalog(db.conn, page_size=5), RecordType.MEDIA_ATTACHMENTS) == keys(
        Catalog(db.conn, page_size=1000), RecordType.MEDIA_ATTACHMENTS
    )


def test_exact_page_multiple_and_empty_table(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    catalog = Catalog(db.conn, page_size=4)
    assert list(catalog.walk(RecordType.ACCOUNTS, CatalogFilter())) == []
    for account_id in range(1, 9):
        insert_account(db, account_id, avatar_file_name=f"{H}.png")
    assert [row.record_id for row in catalog.walk(RecordType.ACCOUNTS, CatalogFilter())] == list(
        range(1, 9)
    )


def test_starts_below_the_instance_actor(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    insert_account(db, -99, avatar_file_name=f"{H}.png")
    insert_account(db, 5, avatar_file_name=f"{H}.png")
    walked = list(Catalog(db.conn, page_size=10).walk(RecordType.ACCOUNTS, CatalogFilter()))
    assert [row.record_id for row in walked] == [-99, 5]
    assert walked[0].objects[0].key == f"accounts/avatars/000/000/original/{H}.png"


def test_rows_without_files_are_not_read(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    insert_media(db, 1, file_file_name=None, remote_url="https://r.example/x", type=3)
    insert_media(db, 2, file_file_name="")
    insert_media(db, 3)
    walked = list(
        Catalog(db.conn, page_size=10).walk(RecordType.MEDIA_ATTACHMENTS, CatalogFilter())
    )
    assert [row.record_id for row in walked] == [3]


def test_after_id_and_limit(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    for media_id in range(1, 21):
        insert_media(db, media_id)
    catalog = Catalog(db.conn, page_size=3)
    walked = catalog.walk(RecordType.MEDIA_ATTACHMENTS, CatalogFilter(after_id=7, limit=8))
    assert [row.record_id for row in walked] == list(range(8, 16))
    walked = catalog.walk(RecordType.MEDIA_ATTACHMENTS, CatalogFilter(after_id=18, limit=8))
    assert [row.record_id for row in walked] == [19, 20]


def test_since_selects_attachments_changed_since(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    insert_account(db, 1, avatar_file_name="old.png", avatar_updated_at=datetime(2025, 1, 1))
    insert_account(
        db,
        2,
        avatar_file_name="old.png",
        avatar_updated_at=datetime(2025, 1, 1),
        header_file_name="new.png",
        header_updated_at=datetime(2026, 5, 1),
    )
    insert_account(db, 3, avatar_file_name="unknown.png", avatar_updated_at=None)
    filt = CatalogFilter(since=datetime(2026, 1, 1))
    assert keys(Catalog(db.conn, page_size=10), RecordType.ACCOUNTS, filt) == [
        "accounts/headers/000/000/002/original/new.png",
        "accounts/avatars/000/000/003/original/unknown.png",
    ]


def test_skip_remote_cache(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    insert_account(db, 1, avatar_file_name="l.png")
    insert_account(db, 2, domain="remote.example", avatar_file_name="r.png")
    insert_media(db, 1)
    insert_media(db, 2, remote_url="https://r.example/x", file_storage_schema_version=1)
    insert_media(db, 3, remote_url="  ")  # blank: local
    insert(
        db,
        "preview_cards",
        id=1,
        image_file_name="c.jpg",
        created_at=datetime(2026, 1, 1),
        updated_at=datetime(2026, 1, 1),
    )
    catalog = Catalog(db.conn, page_size=10)
    filt = CatalogFilter(skip_remote_cache=True)
    assert [r.record_id for r in catalog.walk(RecordType.ACCOUNTS, filt)] == [1]
    assert [r.record_id for r in catalog.walk(RecordType.MEDIA_ATTACHMENTS, filt)] == [1, 3]
    assert list(catalog.walk(RecordType.PREVIEW_CARDS, filt)) == []
    assert [r.record_id for r in catalog.walk(RecordType.PREVIEW_CARDS, CatalogFilter())] == [1]


def _remote_media_with_thumbnail(db: MastodonDb, **thumbnail: Any) -> None:
    insert_media(
        db,
        7,
        remote_url="https://r.example/a.mp3",
        file_file_name=f"{H}.mp3",
        file_content_type="audio/mpeg",
        file_storage_schema_version=1,
        thumbnail_file_name="fedcba9876543210.jpeg",
        **thumbnail,
    )


def test_current_schema_puts_new_remote_thumbnails_under_cache(mastodon_db: MakeDb) -> None:
    db = mastodon_db(SchemaVersion.CURRENT)
    _remote_media_with_thumbnail(db, thumbnail_storage_schema_version=1)
    assert keys(Catalog(db.conn, page_size=10), RecordType.MEDIA_ATTACHMENTS) == [
        f"cache/media_attachments/files/000/000/007/original/{H}.mp3",
        "cache/media_attachments/thumbnails/000/000/007/original/fedcba9876543210.jpeg",
    ]


def test_pre_4_6_schema_reads_missing_thumbnail_version_as_null(mastodon_db: MakeDb) -> None:
    db = mastodon_db(SchemaVersion.V4_5)
    _remote_media_with_thumbnail(db)
    assert keys(Catalog(db.conn, page_size=10), RecordType.MEDIA_ATTACHMENTS) == [
        f"cache/media_attachments/files/000/000/007/original/{H}.mp3",
        "media_attachments/thumbnails/000/000/007/original/fedcba9876543210.jpeg",
    ]


def test_mastodon_3_1_schema_has_no_cache_and_no_thumbnails(mastodon_db: MakeDb) -> None:
    db = mastodon_db(SchemaVersion.V3_1)
    insert_media(db, 7, remote_url="https://r.example/a.png")
    insert_account(
        db, 1, domain="r.example", avatar_file_name="a.gif", avatar_content_type="image/gif"
    )
    catalog = Catalog(db.conn, page_size=10)
    assert keys(catalog, RecordType.MEDIA_ATTACHMENTS) == [
        f"media_attachments/files/000/000/007/original/{H}.png",
        f"media_attachments/files/000/000/007/small/{H}.png",
    ]
    assert keys(catalog, RecordType.ACCOUNTS) == [
        "accounts/avatars/000/000/001/original/a.gif",
        "accounts/avatars/000/000/001/static/a.png",
    ]


def test_a_database_without_mastodon_tables_is_refused(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    db.conn.run("DROP TABLE custom_emojis")
    with pytest.raises(DatabaseError, match="no table custom_emojis"):
        list(Catalog(db.conn, page_size=10).walk(RecordType.CUSTOM_EMOJIS, CatalogFilter()))


def test_a_table_missing_required_columns_is_refused(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    db.conn.run("ALTER TABLE preview_cards DROP COLUMN image_file_name")
    with pytest.raises(DatabaseError, match="no column image_file_name"):
        list(Catalog(db.conn, page_size=10).walk(RecordType.PREVIEW_CARDS, CatalogFilter()))


def test_expected_sizes_come_from_the_database(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    insert_media(db, 1, file_file_size=2_000_000_000)
    [row] = Catalog(db.conn, page_size=10).walk(RecordType.MEDIA_ATTACHMENTS, CatalogFilter())
    assert [ref.expected_size for ref in row.objects] == [2_000_000_000, None]


# -- the other attachments (storage spec §2.7), optional tables, the release ----------------

ALL_TYPES = list(RecordType)
NO_PROVIDERS = "preview_card_providers: no table (Mastodon before 3.5)"
NO_IMPORTS = "imports: no table (Mastodon 4.4+)"


@pytest.mark.parametrize(
    ("version", "skipped", "release"),
    [
        (SchemaVersion.V3_1, [NO_PROVIDERS], Release(3, 1)),
        (SchemaVersion.V3_5, [], Release(3, 3)),  # nothing of 3.5 changes a key
        (SchemaVersion.V4_2, [], Release(4, 2)),
        (SchemaVersion.V4_3, [], Release(4, 3)),
        (SchemaVersion.V4_5, [NO_IMPORTS], Release(4, 4)),  # 4.4-shaped
        (SchemaVersion.CURRENT, [NO_IMPORTS], Release(4, 4)),
    ],
    ids=lambda value: getattr(value, "name", None),
)
def test_optional_tables_and_release_per_schema(
    mastodon_db: MakeDb, version: SchemaVersion, skipped: list[str], release: Release
) -> None:
    # given an empty database of that release
    db = mastodon_db(version)
    catalog = Catalog(db.conn, page_size=10)
    # then the absent tables are named once each, and every type walks without error
    assert [str(line) for line in catalog.skipped_types(ALL_TYPES)] == skipped
    assert catalog.release() == release
    for record_type in ALL_TYPES:
        assert list(catalog.walk(record_type, CatalogFilter())) == []
        assert catalog.count_rows(record_type, CatalogFilter()) == 0


def insert_site_uploads(db: MastodonDb) -> None:
    now = datetime(2026, 1, 1)
    for upload_id, var, name in (
        (1, "thumbnail", f"{H}.jpeg"),
        (2, "mascot", f"{H}.gif"),
        (3, "favicon", f"{H}.ico"),
        (4, "app_icon", f"{H}.png"),
    ):
        insert(
            db,
            "site_uploads",
            id=upload_id,
            var=var,
            file_file_name=name,
            file_file_size=1000 + upload_id,
            created_at=now,
            updated_at=now,
        )


APP_ICON_SIZES = [
    *(57, 60, 72, 76, 114, 120, 144, 152, 167, 180, 1024),
    *(36, 48, 96, 192, 256, 384, 512),
]
ORIGINALS = [
    f"site_uploads/files/000/000/001/original/{H}.jpeg",
    f"site_uploads/files/000/000/002/original/{H}.gif",
    f"site_uploads/files/000/000/003/original/{H}.ico",
    f"site_uploads/files/000/000/004/original/{H}.png",
]
THUMBNAIL_STYLES = [
    f"site_uploads/files/000/000/001/@1x/{H}.png",
    f"site_uploads/files/000/000/001/@2x/{H}.png",
]
FAVICON_STYLES = [f"site_uploads/files/000/000/003/{size}/{H}.png" for size in (16, 32, 48)]
APP_ICON_STYLES = [f"site_uploads/files/000/000/004/{size}/{H}.png" for size in APP_ICON_SIZES]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (SchemaVersion.V3_5, ORIGINALS),  # before 4.0 site uploads had no styles
        (SchemaVersion.V4_2, [ORIGINALS[0], *THUMBNAIL_STYLES, *ORIGINALS[1:]]),
        (
            SchemaVersion.V4_3,
            [
                ORIGINALS[0],
                *THUMBNAIL_STYLES,
                ORIGINALS[1],
                ORIGINALS[2],
                *FAVICON_STYLES,
                ORIGINALS[3],
                *APP_ICON_STYLES,
            ],
        ),
    ],
    ids=lambda value: getattr(value, "name", None),
)
def test_site_upload_styles_follow_the_detected_release(
    mastodon_db: MakeDb, version: SchemaVersion, expected: list[str]
) -> None:
    db = mastodon_db(version)
    insert_site_uploads(db)
    assert keys(Catalog(db.conn, page_size=3), RecordType.SITE_UPLOADS) == expected


def test_provider_icons_backups_and_imports_on_a_4_3_schema(mastodon_db: MakeDb) -> None:
    # given a 4.3 database, the last with imports
    db = mastodon_db(SchemaVersion.V4_3)
    now = datetime(2026, 1, 1)
    insert(db, "preview_card_providers", id=5, domain="a.example", created_at=now, updated_at=now)
    insert(
        db,
        "preview_card_providers",
        id=6,
        domain="b.example",
        icon_file_name=f"{H}.ico",
        icon_file_size=3_000_000_000,  # bigint
        created_at=now,
        updated_at=now,
    )
    archive = f"archive-20260101000000-{H}{H}.zip"
    insert(db, "backups", id=1, processed=False, created_at=now, updated_at=now)
    insert(
        db, "backups", id=2, dump_file_name=archive, processed=True, created_at=now, updated_at=now
    )
    insert(
        db,
        "imports",
        id=9,
        type=0,
        account_id=1,
        data_file_name="a.csv",
        created_at=now,
        updated_at=now,
    )
    catalog = Catalog(db.conn, page_size=10)
    # then only rows with a file are read, and never under cache/
    providers = list(catalog.walk(RecordType.PREVIEW_CARD_PROVIDERS, CatalogFilter()))
    assert [row.record_id for row in providers] == [6]
    assert [(ref.key, ref.expected_size) for ref in providers[0].objects] == [
        (f"preview_card_providers/icons/000/000/006/original/{H}.ico", 3_000_000_000),
        (f"preview_card_providers/icons/000/000/006/static/{H}.png", None),
    ]
    assert keys(catalog, RecordType.BACKUPS) == [f"backups/dumps/000/000/002/original/{archive}"]
    assert keys(catalog, RecordType.IMPORTS) == ["imports/data/000/000/009/original/a.csv"]
    # and none of them is remote cache
    local = CatalogFilter(skip_remote_cache=True)
    assert catalog.count_rows(RecordType.PREVIEW_CARD_PROVIDERS, local) == 1
    assert keys(catalog, RecordType.BACKUPS, local) == keys(catalog, RecordType.BACKUPS)


def test_since_applies_to_the_other_models(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    now = datetime(2026, 1, 1)
    for backup_id, updated in ((1, datetime(2025, 12, 1)), (2, datetime(2026, 2, 1)), (3, None)):
        insert(
            db,
            "backups",
            id=backup_id,
            dump_file_name=f"{backup_id}.zip",
            dump_updated_at=updated,
            created_at=now,
            updated_at=now,
        )
    filt = CatalogFilter(since=datetime(2026, 1, 1))
    assert keys(Catalog(db.conn, page_size=10), RecordType.BACKUPS, filt) == [
        "backups/dumps/000/000/002/original/2.zip",
        "backups/dumps/000/000/003/original/3.zip",
    ]


def test_a_missing_table_every_release_has_is_refused(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    db.conn.run("DROP TABLE backups")
    catalog = Catalog(db.conn, page_size=10)
    with pytest.raises(DatabaseError, match="no table backups"):
        list(catalog.walk(RecordType.BACKUPS, CatalogFilter()))
    with pytest.raises(DatabaseError, match="no table backups"):
        catalog.table_columns(RecordType.BACKUPS)


def test_plan_summary_says_which_types_the_database_has_no_table_for(mastodon_db: MakeDb) -> None:
    db = mastodon_db(SchemaVersion.V4_5)
    catalog, chosen = Catalog(db.conn, page_size=10), select(ALL_TYPES)
    summaries = write_plan(catalog, chosen.walked(catalog), CatalogFilter(), None)
    lines = format_summary(summaries, 1.0, chosen.left_out(catalog)).splitlines()
    assert lines[-1] == NO_IMPORTS
    walked = [str(t) for t in ALL_TYPES if t != RecordType.IMPORTS]
    assert [line.split()[0] for line in lines[2 : 2 + len(walked)]] == walked


# -- privacy from the database (storage spec §5, docs/privacy-rules.md) -----------------------

LOCAL, REMOTE, UNSUSPENDED, ACTIVE = 1, 2, 3, 4
SUSPENDED_AT = datetime(2026, 2, 1)


def insert_privacy_story(db: MastodonDb) -> None:
    """A suspended local and a suspended remote account, one suspended then unsuspended, one
    never suspended, with media each; the active account's second status was removed but kept
    for a report (``deleted_at``)."""
    now = datetime(2026, 1, 1)
    for account_id, domain in ((LOCAL, None), (REMOTE, "remote.example"), (UNSUSPENDED, None)):
        insert_account(
            db, account_id, domain=domain, suspended_at=SUSPENDED_AT, avatar_file_name=f"{H}.png"
        )
    insert_account(db, ACTIVE, avatar_file_name=f"{H}.png")
    db.conn.run("UPDATE accounts SET suspended_at = NULL WHERE id = :id", id=UNSUSPENDED)
    for status_id, deleted_at in ((1, None), (2, SUSPENDED_AT)):
        insert(
            db,
            "statuses",
            id=status_id,
            account_id=ACTIVE,
            created_at=now,
            updated_at=now,
            deleted_at=deleted_at,
        )
    remote_file = {"remote_url": "https://remote.example/a.png"}
    insert_media(db, 11, account_id=LOCAL)
    insert_media(db, 12, account_id=REMOTE, **remote_file)
    insert_media(db, 13, account_id=UNSUSPENDED)
    insert_media(db, 14, account_id=ACTIVE, status_id=1)
    insert_media(db, 15, account_id=ACTIVE, status_id=2)  # the removed status's
    insert_media(db, 16, account_id=None, status_id=99)  # no account, status gone


def private_ids(db: MastodonDb, page_size: int = 2) -> dict[RecordType, set[int]]:
    catalog = Catalog(db.conn, page_size=page_size)
    found: dict[RecordType, set[int]] = {}
    for record_type in (RecordType.ACCOUNTS, RecordType.MEDIA_ATTACHMENTS):
        refs = [ref for row in catalog.walk(record_type, CatalogFilter()) for ref in row.objects]
        assert refs
        found[record_type] = {ref.record_id for ref in refs if ref.private}
        # every style of a row shares its row's privacy
        for ref in refs:
            assert ref.private == (ref.record_id in found[record_type])
    return found


@pytest.mark.parametrize(
    ("version", "private_media"),
    [
        # 3.1 deleted a suspended account's media (no privacy to keep); 3.3 made it private.
        (SchemaVersion.V3_1, set()),
        (SchemaVersion.V3_5, {11, 12}),
        (SchemaVersion.V4_3, {11, 12}),
        # 4.4 also makes private the media of a removed status kept for moderation.
        (SchemaVersion.V4_5, {11, 12, 15}),
        (SchemaVersion.CURRENT, {11, 12, 15}),
    ],
    ids=lambda value: getattr(value, "name", None),
)
def test_media_mastodon_made_private_per_release(
    mastodon_db: MakeDb, version: SchemaVersion, private_media: set[int]
) -> None:
    # given suspended local and remote accounts, an unsuspended one and a removed status
    db = mastodon_db(version)
    insert_privacy_story(db)
    # then exactly their media is private (pages of 2 rows: the join holds across pages);
    # avatars and headers stay public, and the unsuspended account's media is public again
    assert private_ids(db) == {
        RecordType.ACCOUNTS: set(),
        RecordType.MEDIA_ATTACHMENTS: private_media,
    }


def test_backups_are_private_from_4_2(mastodon_db: MakeDb) -> None:
    now = datetime(2026, 1, 1)
    for version, private in ((SchemaVersion.V3_5, False), (SchemaVersion.CURRENT, True)):
        db = mastodon_db(version)
        insert(
            db, "backups", id=1, dump_file_name="a.zip", dump_file_size=9, created_at=now,
            updated_at=now,
        )  # fmt: skip
        catalog = Catalog(db.conn, page_size=10)
        [row] = catalog.walk(RecordType.BACKUPS, CatalogFilter())
        assert [ref.private for ref in row.objects] == [private]


def test_plan_summary_counts_private_objects_per_type(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    insert_privacy_story(db)
    catalog = Catalog(db.conn, page_size=10)
    types = [RecordType.ACCOUNTS, RecordType.MEDIA_ATTACHMENTS]
    summaries = write_plan(catalog, types, CatalogFilter(), None)
    # media rows 11, 12 and 15, two styles each (original, small)
    assert [(s.record_type, s.private) for s in summaries] == [(types[0], 0), (types[1], 6)]
    lines = format_summary(summaries, 1.0).splitlines()
    assert "private" in lines[0].split()
    assert lines[3].split()[:4] == ["media_attachments", "6", "12", "6"]
    assert lines[4].split()[:4] == ["total", "10", "16", "6"]
