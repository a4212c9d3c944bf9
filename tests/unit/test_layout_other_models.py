"""Layout rules of the other attachments in the bucket (mastodon-storage.md §2.7): site
uploads per ``var`` and per release, preview card provider icons, backups, imports.

Expected keys are written out by hand from the spec, not computed by the code under test.
"""

from __future__ import annotations

from typing import Any

import pytest

from mastodon_s3_sync.mastodon.layout import (
    RecordType,
    Release,
    folders,
    is_local,
    objects_for_row,
)
from mastodon_s3_sync.mastodon.models import uploaded_private

H = "0123456789abcdef"
SITE = RecordType.SITE_UPLOADS
PROVIDER = RecordType.PREVIEW_CARD_PROVIDERS
BACKUP = RecordType.BACKUPS
IMPORT = RecordType.IMPORTS
BEFORE_4_0, V4_2, V4_3 = Release(3, 5), Release(4, 2), Release(4, 3)
ARCHIVE = "archive-20260601120000-0123456789abcdef0123456789abcdef.zip"


def site_upload(var: str | None, file_name: str | None = f"{H}.jpeg") -> dict[str, Any]:
    return {"id": 3, "var": var, "file_file_name": file_name}


def site(style: str, name: str) -> str:
    return f"site_uploads/files/000/000/003/{style}/{name}"


APP_ICON_SIZES = [
    "57", "60", "72", "76", "114", "120", "144", "152", "167", "180", "1024",
    "36", "48", "96", "192", "256", "384", "512",
]  # fmt: skip
THUMBNAIL_KEYS = [site("original", f"{H}.jpeg"), site("@1x", f"{H}.png"), site("@2x", f"{H}.png")]
PROVIDER_KEYS = [
    f"preview_card_providers/icons/000/000/017/original/{H}.ico",
    f"preview_card_providers/icons/000/000/017/static/{H}.png",
]

# (description, type, row, release, keys in order)
CASES: list[tuple[str, RecordType, dict[str, Any], Release, list[str]]] = [
    ("thumbnail from 4.3", SITE, site_upload("thumbnail"), V4_3, THUMBNAIL_KEYS),
    ("thumbnail 4.0-4.2", SITE, site_upload("thumbnail"), V4_2, THUMBNAIL_KEYS),
    ("thumbnail before 4.0", SITE, site_upload("thumbnail"), BEFORE_4_0, THUMBNAIL_KEYS[:1]),
    (
        "thumbnail PNG",
        SITE,
        site_upload("thumbnail", f"{H}.png"),
        V4_3,
        [site("original", f"{H}.png"), site("@1x", f"{H}.png"), site("@2x", f"{H}.png")],
    ),
    ("mascot from 4.3", SITE, site_upload("mascot"), V4_3, THUMBNAIL_KEYS[:1]),
    ("mascot 4.0-4.2", SITE, site_upload("mascot"), V4_2, THUMBNAIL_KEYS[:1]),
    ("mascot before 4.0", SITE, site_upload("mascot"), BEFORE_4_0, THUMBNAIL_KEYS[:1]),
    (
        "favicon from 4.3",
        SITE,
        site_upload("favicon", f"{H}.ico"),
        V4_3,
        [
            site("original", f"{H}.ico"),
            site("16", f"{H}.png"),
            site("32", f"{H}.png"),
            site("48", f"{H}.png"),
        ],
    ),
    (
        "favicon before 4.3: an unknown var",
        SITE,
        site_upload("favicon", f"{H}.ico"),
        V4_2,
        [site("original", f"{H}.ico")],
    ),
    (
        "app_icon from 4.3",
        SITE,
        site_upload("app_icon", f"{H}.webp"),
        V4_3,
        [site("original", f"{H}.webp"), *(site(size, f"{H}.png") for size in APP_ICON_SIZES)],
    ),
    (
        "app_icon before 4.3: an unknown var",
        SITE,
        site_upload("app_icon", f"{H}.webp"),
        V4_2,
        [site("original", f"{H}.webp")],
    ),
    ("hero (gone in 4.0): unknown var", SITE, site_upload("hero"), V4_3, THUMBNAIL_KEYS[:1]),
    ("var NULL", SITE, site_upload(None), V4_3, THUMBNAIL_KEYS[:1]),
    ("provider icon", PROVIDER, {"id": 17, "icon_file_name": f"{H}.ico"}, V4_3, PROVIDER_KEYS),
    (
        "provider icon before 4.0",
        PROVIDER,
        {"id": 17, "icon_file_name": f"{H}.ico"},
        BEFORE_4_0,
        PROVIDER_KEYS,
    ),
    (
        "backup dump",
        BACKUP,
        {"id": 42, "dump_file_name": ARCHIVE},
        V4_3,
        [f"backups/dumps/000/000/042/original/{ARCHIVE}"],
    ),
    (
        "backup dump before 4.0",
        BACKUP,
        {"id": 42, "dump_file_name": ARCHIVE},
        BEFORE_4_0,
        [f"backups/dumps/000/000/042/original/{ARCHIVE}"],
    ),
    (
        "import CSV",
        IMPORT,
        {"id": 7, "data_file_name": "following_accounts.csv"},
        V4_3,
        ["imports/data/000/000/007/original/following_accounts.csv"],
    ),
    (
        "import, id past 1e9",
        IMPORT,
        {"id": 1234567890, "data_file_name": "a.csv"},
        V4_2,
        ["imports/data/001/234/567/890/original/a.csv"],
    ),
]


@pytest.mark.parametrize(
    ("record_type", "row", "release", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_keys_per_style_and_release(
    record_type: RecordType, row: dict[str, Any], release: Release, expected: list[str]
) -> None:
    refs = objects_for_row(record_type, row, release=release)
    assert [ref.key for ref in refs] == expected
    assert {ref.record_type for ref in refs} == {record_type}


@pytest.mark.parametrize(
    ("record_type", "row", "release"),
    [case[1:4] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_never_under_cache(record_type: RecordType, row: dict[str, Any], release: Release) -> None:
    # no local?: not even an alternate placement under cache/ (not with a key prefix either)
    for key_prefix in ("", "mastodon"):
        for ref in objects_for_row(record_type, row, key_prefix=key_prefix, release=release):
            for key in (ref.key, *ref.alternates):
                assert "cache" not in key.split("/"), key


def test_without_a_release_the_newest_rules_apply() -> None:
    keys = [ref.key for ref in objects_for_row(SITE, site_upload("favicon", f"{H}.png"))]
    assert keys == [
        site("original", f"{H}.png"),
        site("16", f"{H}.png"),
        site("32", f"{H}.png"),
        site("48", f"{H}.png"),
    ]


def test_key_prefix_alternate_is_the_unprefixed_key_only() -> None:
    [ref] = objects_for_row(BACKUP, {"id": 42, "dump_file_name": ARCHIVE}, key_prefix="m")
    assert ref.key == f"m/backups/dumps/000/000/042/original/{ARCHIVE}"
    assert ref.alternates == (f"backups/dumps/000/000/042/original/{ARCHIVE}",)


def test_expected_size_is_the_originals() -> None:
    row = {"id": 17, "icon_file_name": f"{H}.ico", "icon_file_size": 5_000_000_000}
    refs = objects_for_row(PROVIDER, row)
    assert [(ref.style, ref.expected_size) for ref in refs] == [
        ("original", 5_000_000_000),  # bigint column
        ("static", None),
    ]


@pytest.mark.parametrize(
    ("record_type", "row"),
    [
        (SITE, site_upload("thumbnail", None)),
        (SITE, site_upload("thumbnail", "  ")),
        (PROVIDER, {"id": 1, "icon_file_name": None}),  # what Mastodon's own code leaves
        (BACKUP, {"id": 1, "dump_file_name": None, "processed": False}),  # being written
        (IMPORT, {"id": 1, "data_file_name": ""}),
    ],
)
def test_no_file_no_object(record_type: RecordType, row: dict[str, Any]) -> None:
    assert objects_for_row(record_type, row) == []


@pytest.mark.parametrize("record_type", [SITE, PROVIDER, BACKUP, IMPORT])
def test_none_is_remote_cache(record_type: RecordType) -> None:
    # a provider's `domain` is the linked site, not a remote instance
    assert is_local(record_type, {"id": 1, "domain": "news.example"})


@pytest.mark.parametrize(
    ("record_type", "key_prefix", "expected"),
    [
        (SITE, "", ("site_uploads/files/",)),
        (PROVIDER, "", ("preview_card_providers/icons/",)),
        (BACKUP, "m", ("m/backups/dumps/", "backups/dumps/")),
        (IMPORT, "", ("imports/data/",)),
        (
            RecordType.ACCOUNTS,
            "m",
            (
                "m/accounts/avatars/",
                "m/accounts/headers/",
                "m/cache/accounts/avatars/",
                "m/cache/accounts/headers/",
                "accounts/avatars/",
                "accounts/headers/",
                "cache/accounts/avatars/",
                "cache/accounts/headers/",
            ),
        ),
        (
            RecordType.PREVIEW_CARDS,
            "",
            ("preview_cards/images/", "cache/preview_cards/images/"),
        ),
    ],
)
def test_folders(record_type: RecordType, key_prefix: str, expected: tuple[str, ...]) -> None:
    assert folders(record_type, key_prefix) == expected


@pytest.mark.parametrize(
    ("record_type", "release", "private"),
    [
        (BACKUP, Release(4, 1), False),
        (BACKUP, Release(4, 2), True),
        (BACKUP, Release(4, 6), True),
        (SITE, Release(4, 6), False),
        (IMPORT, Release(4, 3), False),
        (RecordType.MEDIA_ATTACHMENTS, Release(4, 6), False),
    ],
)
def test_backups_are_uploaded_private_from_4_2(
    record_type: RecordType, release: Release, private: bool
) -> None:
    assert uploaded_private(record_type, release) is private
