"""Layout rules against the worked examples (§7) and edge cases of mastodon-storage.md."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from mastodon_s3_sync.mastodon.layout import (
    RecordType,
    Style,
    id_partition,
    is_local,
    legacy_id_partition,
    objects_for_row,
    style_file_name,
)

H = "0123456789abcdef"
SNOWFLAKE = 109348123456789012
SNOW_PATH = "109/348/123/456/789/012"
MA = RecordType.MEDIA_ATTACHMENTS
ACC = RecordType.ACCOUNTS
EMOJI = RecordType.CUSTOM_EMOJIS
CARD = RecordType.PREVIEW_CARDS


def media(**columns: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": SNOWFLAKE,
        "remote_url": "",
        "file_file_name": f"{H}.jpeg",
        "file_content_type": "image/jpeg",
        "file_file_size": 1000,
        "file_storage_schema_version": 1,
    }
    row.update(columns)
    return row


def account(**columns: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"id": 1, "domain": None}
    row.update(columns)
    return row


def emoji(**columns: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"id": 4242, "domain": None, "image_content_type": "image/png"}
    row.update(columns)
    return row


def card(**columns: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"id": 123456789, "image_content_type": "image/jpeg"}
    row.update(columns)
    return row


FILES = f"media_attachments/files/{SNOW_PATH}"
THUMBS = f"media_attachments/thumbnails/{SNOW_PATH}"

# Every row of the worked-example table (§7): (description, type, row, key prefix, keys).
WORKED_EXAMPLES: list[tuple[str, RecordType, dict[str, Any], str, list[str]]] = [
    (
        "media JPEG local",
        MA,
        media(),
        "",
        [f"{FILES}/original/{H}.jpeg", f"{FILES}/small/{H}.jpeg"],
    ),
    (
        "media JPEG remote v=1",
        MA,
        media(remote_url="https://remote.example/a.jpeg"),
        "",
        [f"cache/{FILES}/original/{H}.jpeg", f"cache/{FILES}/small/{H}.jpeg"],
    ),
    (
        "media remote legacy v NULL, sequential id",
        MA,
        media(id=123456789, remote_url="https://r.example/x", file_storage_schema_version=None),
        "",
        [
            f"media_attachments/files/123/456/789/original/{H}.jpeg",
            f"media_attachments/files/123/456/789/small/{H}.jpeg",
        ],
    ),
    (
        "PNG local",
        MA,
        media(file_file_name=f"{H}.png", file_content_type="image/png"),
        "",
        [f"{FILES}/original/{H}.png", f"{FILES}/small/{H}.png"],
    ),
    (
        "WebP local",
        MA,
        media(file_file_name=f"{H}.webp", file_content_type="image/webp"),
        "",
        [f"{FILES}/original/{H}.webp", f"{FILES}/small/{H}.webp"],
    ),
    (
        "HEIC upload, stored as JPEG",
        MA,
        media(file_file_name=f"{H}.jpeg", file_content_type="image/jpeg"),
        "",
        [f"{FILES}/original/{H}.jpeg", f"{FILES}/small/{H}.jpeg"],
    ),
    (
        "static GIF",
        MA,
        media(file_file_name=f"{H}.gif", file_content_type="image/gif"),
        "",
        [f"{FILES}/original/{H}.gif", f"{FILES}/small/{H}.png"],
    ),
    (
        "animated GIF as gifv",
        MA,
        media(file_file_name=f"{H}.mp4", file_content_type="video/mp4", type=1),
        "",
        [f"{FILES}/original/{H}.mp4", f"{FILES}/small/{H}.png"],
    ),
    (
        "video",
        MA,
        media(file_file_name=f"{H}.mp4", file_content_type="video/mp4", type=2),
        "",
        [f"{FILES}/original/{H}.mp4", f"{FILES}/small/{H}.png"],
    ),
    (
        "video mid-processing",
        MA,
        media(file_file_name=f"{H}.mov", file_content_type="video/quicktime", processing=0),
        "",
        [f"{FILES}/original/{H}.mov", f"{FILES}/small/{H}.png"],
    ),
    (
        "audio",
        MA,
        media(file_file_name=f"{H}.mp3", file_content_type="audio/mpeg", type=4),
        "",
        [f"{FILES}/original/{H}.mp3"],
    ),
    (
        "AVIF uploaded under 4.0-4.1",
        MA,
        media(file_file_name=f"{H}.avif", file_content_type="image/avif"),
        "",
        [f"{FILES}/original/{H}.avif", f"{FILES}/small/{H}.avif"],
    ),
    (
        "thumbnail of local audio (cover art)",
        MA,
        media(
            file_file_name=f"{H}.mp3",
            file_content_type="audio/mpeg",
            thumbnail_file_name="fedcba9876543210.png",
            thumbnail_content_type="image/png",
        ),
        "",
        [f"{FILES}/original/{H}.mp3", f"{THUMBS}/original/fedcba9876543210.png"],
    ),
    (
        "remote thumbnail v=1 (4.6+)",
        MA,
        media(
            remote_url="https://r.example/a.mp3",
            file_file_name=f"{H}.mp3",
            file_content_type="audio/mpeg",
            thumbnail_file_name="fedcba9876543210.jpeg",
            thumbnail_storage_schema_version=1,
        ),
        "",
        [
            f"cache/{FILES}/original/{H}.mp3",
            f"cache/{THUMBS}/original/fedcba9876543210.jpeg",
        ],
    ),
    (
        "remote thumbnail v NULL (<= 4.5)",
        MA,
        media(
            remote_url="https://r.example/a.mp3",
            file_file_name=f"{H}.mp3",
            file_content_type="audio/mpeg",
            thumbnail_file_name="fedcba9876543210.jpeg",
            thumbnail_storage_schema_version=None,
        ),
        "",
        [
            f"cache/{FILES}/original/{H}.mp3",
            f"{THUMBS}/original/fedcba9876543210.jpeg",
        ],
    ),
    (
        "avatar local id 1 (spec fixture)",
        ACC,
        account(avatar_file_name="141ee5846d159cba.png", avatar_content_type="image/png"),
        "",
        ["accounts/avatars/000/000/001/original/141ee5846d159cba.png"],
    ),
    (
        "avatar GIF local id 1",
        ACC,
        account(avatar_file_name=f"{H}.gif", avatar_content_type="image/gif"),
        "",
        [
            f"accounts/avatars/000/000/001/original/{H}.gif",
            f"accounts/avatars/000/000/001/static/{H}.png",
        ],
    ),
    (
        "header remote v=1",
        ACC,
        account(
            id=110234567890123456,
            domain="remote.example",
            header_file_name=f"{H}.jpeg",
            header_content_type="image/jpeg",
            header_storage_schema_version=1,
        ),
        "",
        [f"cache/accounts/headers/110/234/567/890/123/456/original/{H}.jpeg"],
    ),
    (
        "header remote v=1, GIF",
        ACC,
        account(
            id=110234567890123456,
            domain="remote.example",
            header_file_name=f"{H}.gif",
            header_content_type="image/gif",
            header_storage_schema_version=1,
        ),
        "",
        [
            f"cache/accounts/headers/110/234/567/890/123/456/original/{H}.gif",
            f"cache/accounts/headers/110/234/567/890/123/456/static/{H}.png",
        ],
    ),
    (
        "custom emoji local",
        EMOJI,
        emoji(image_file_name=f"{H}.png"),
        "",
        [
            f"custom_emojis/images/000/004/242/original/{H}.png",
            f"custom_emojis/images/000/004/242/static/{H}.png",
        ],
    ),
    (
        "custom emoji remote v=1 GIF",
        EMOJI,
        emoji(
            id=987654,
            domain="remote.example",
            image_file_name=f"{H}.gif",
            image_content_type="image/gif",
            image_storage_schema_version=1,
        ),
        "",
        [
            f"cache/custom_emojis/images/000/987/654/original/{H}.gif",
            f"cache/custom_emojis/images/000/987/654/static/{H}.png",
        ],
    ),
    (
        "preview card v=1",
        CARD,
        card(image_file_name=f"{H}.jpg", image_storage_schema_version=1),
        "",
        [f"cache/preview_cards/images/123/456/789/original/{H}.jpg"],
    ),
    (
        "preview card v NULL",
        CARD,
        card(image_file_name=f"{H}.jpg", image_storage_schema_version=None),
        "",
        [f"preview_cards/images/123/456/789/original/{H}.jpg"],
    ),
    (
        "preview card v 0",
        CARD,
        card(image_file_name=f"{H}.jpg", image_storage_schema_version=0),
        "",
        [f"preview_cards/images/123/456/789/original/{H}.jpg"],
    ),
    (
        "preview card GIF source v=1",
        CARD,
        card(
            image_file_name=f"{H}.gif",
            image_content_type="image/gif",
            image_storage_schema_version=1,
        ),
        "",
        [f"cache/preview_cards/images/123/456/789/original/{H}.gif"],
    ),
    (
        "S3_KEY_PREFIX, remote media",
        MA,
        media(remote_url="https://r.example/a"),
        "mastodon",
        [f"mastodon/cache/{FILES}/original/{H}.jpeg", f"mastodon/cache/{FILES}/small/{H}.jpeg"],
    ),
    (
        "S3_KEY_PREFIX, local avatar",
        ACC,
        account(avatar_file_name=f"{H}.png", avatar_content_type="image/png"),
        "mastodon",
        [f"mastodon/accounts/avatars/000/000/001/original/{H}.png"],
    ),
]


@pytest.mark.parametrize(
    ("record_type", "row", "key_prefix", "expected"),
    [case[1:] for case in WORKED_EXAMPLES],
    ids=[case[0] for case in WORKED_EXAMPLES],
)
def test_worked_examples(
    record_type: RecordType, row: dict[str, Any], key_prefix: str, expected: list[str]
) -> None:
    keys = [ref.key for ref in objects_for_row(record_type, row, key_prefix=key_prefix)]
    assert keys == expected


# §6: states where no object is expected.
NOTHING_EXPECTED: list[tuple[str, RecordType, dict[str, Any]]] = [
    ("media file_name NULL (never downloaded)", MA, media(file_file_name=None, type=3)),
    ("media file_name empty", MA, media(file_file_name="")),
    ("media file_name whitespace (Ruby blank?)", MA, media(file_file_name="  ")),
    ("media cleared, remote_url kept", MA, media(file_file_name=None, remote_url="https://r/x")),
    ("avatar and header NULL", ACC, account(avatar_file_name=None, header_file_name=None)),
    ("avatar empty, header absent", ACC, account(avatar_file_name="")),
    ("emoji image NULL", EMOJI, emoji(image_file_name=None)),
    ("preview card without image", CARD, card(image_file_name=None)),
    ("preview card image empty", CARD, card(image_file_name="")),
]


@pytest.mark.parametrize(
    ("record_type", "row"),
    [case[1:] for case in NOTHING_EXPECTED],
    ids=[case[0] for case in NOTHING_EXPECTED],
)
def test_no_object_expected(record_type: RecordType, row: dict[str, Any]) -> None:
    assert objects_for_row(record_type, row) == []


def test_thumbnail_null_yields_only_the_file() -> None:
    refs = objects_for_row(MA, media(thumbnail_file_name=None))
    assert {ref.attachment for ref in refs} == {"file"}


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "image/webp"])
def test_no_static_style_for_non_gif_avatar_or_header(content_type: str) -> None:
    row = account(
        avatar_file_name=f"{H}.x",
        avatar_content_type=content_type,
        header_file_name=f"{H}.y",
        header_content_type=content_type,
    )
    assert {ref.style for ref in objects_for_row(ACC, row)} == {"original"}


@pytest.mark.parametrize("content_type", ["audio/mpeg", "audio/ogg", "video/x-ms-asf", None, "x/y"])
def test_no_small_style_for_audio_or_unknown_types(content_type: str | None) -> None:
    row = media(file_file_name=f"{H}.mp3", file_content_type=content_type)
    assert [ref.style for ref in objects_for_row(MA, row)] == ["original"]


@pytest.mark.parametrize(
    ("content_type", "small"),
    [
        ("image/heic", f"{H}.jpeg"),
        ("image/heif", f"{H}.jpeg"),
        ("video/webm", f"{H}.png"),
        ("video/ogg", f"{H}.png"),
        ("image/JPEG", None),  # exact match only: falls through to AUDIO_STYLES
    ],
)
def test_small_style_per_content_type(content_type: str, small: str | None) -> None:
    refs = objects_for_row(MA, media(file_file_name=f"{H}.heic", file_content_type=content_type))
    smalls = [ref.key.rsplit("/", 1)[-1] for ref in refs if ref.style == "small"]
    assert smalls == ([small] if small else [])


@pytest.mark.parametrize(
    ("record_id", "partition"),
    [
        (1, "000/000/001"),
        (4242, "000/004/242"),
        (123456789, "123/456/789"),
        (1234567890, "001/234/567/890"),
        (109348123456789012, "109/348/123/456/789/012"),
        (99999999999999999, "999/999/999/999/999"),
        (-99, "000/000"),
    ],
)
def test_id_partition(record_id: int, partition: str) -> None:
    assert id_partition(record_id) == partition


def test_legacy_partition_differs_only_for_10_and_11_digit_ids() -> None:
    assert legacy_id_partition(1234567890) == "123/456/789"
    assert legacy_id_partition(12345678901) == "123/456/789"
    for record_id in (1, 999_999_999, 123_456_789_012, SNOWFLAKE):
        assert legacy_id_partition(record_id) == id_partition(record_id)


# Ruby's File.basename(name, ".*") / File.extname, checked against ruby 3.1.
@pytest.mark.parametrize(
    ("file_name", "small_same_ext", "small_png"),
    [
        ("foo.png", "foo.png", "foo.png"),
        ("foo", "foo", "foo.png"),
        ("foo.", "foo", "foo.png"),
        ("foo..", "foo.", "foo..png"),
        (".profile", ".profile", ".profile.png"),
        (".a.b", ".a.b", ".a.png"),
        ("a..b", "a..b", "a..png"),
        ("x.tar.gz", "x.tar.gz", "x.tar.png"),
        ("dir/x.jpg", "x.jpg", "x.png"),
        ("foo.png/", "foo.png", "foo.png"),
        ("é.png", "é.png", "é.png"),
    ],
)
def test_style_file_names_follow_ruby(file_name: str, small_same_ext: str, small_png: str) -> None:
    assert style_file_name(file_name, Style("original")) == file_name
    assert style_file_name(file_name, Style("small")) == small_same_ext
    assert style_file_name(file_name, Style("small", "png")) == small_png


def test_alternates_try_the_other_cache_placement_first() -> None:
    [original, small] = objects_for_row(MA, media(remote_url="https://r/x"))
    assert original.alternates[0] == f"{FILES}/original/{H}.jpeg"
    assert small.alternates[0] == f"{FILES}/small/{H}.jpeg"
    [local_original, _] = objects_for_row(MA, media())
    assert local_original.alternates[0] == f"cache/{FILES}/original/{H}.jpeg"


def test_avif_small_falls_back_to_the_current_rule() -> None:
    refs = objects_for_row(MA, media(file_file_name=f"{H}.avif", file_content_type="image/avif"))
    small = next(ref for ref in refs if ref.style == "small")
    assert small.alternates[:3] == (
        f"cache/{FILES}/small/{H}.avif",
        f"{FILES}/small/{H}.jpeg",
        f"cache/{FILES}/small/{H}.jpeg",
    )


def test_key_prefix_alternates_include_unprefixed_keys() -> None:
    [ref] = objects_for_row(ACC, account(avatar_file_name=f"{H}.png"), key_prefix="mastodon")
    assert ref.alternates == (
        f"mastodon/cache/accounts/avatars/000/000/001/original/{H}.png",
        f"accounts/avatars/000/000/001/original/{H}.png",
        f"cache/accounts/avatars/000/000/001/original/{H}.png",
    )


def test_key_prefix_is_applied_verbatim_as_mastodon_does() -> None:
    row = account(avatar_file_name=f"{H}.png")
    assert objects_for_row(ACC, row, key_prefix="/m")[0].key.startswith("m/accounts/")
    assert objects_for_row(ACC, row, key_prefix="m/")[0].key.startswith("m//accounts/")
    assert objects_for_row(ACC, row, key_prefix="  ")[0].key.startswith("accounts/")


def test_ten_digit_ids_carry_the_paperclip_6_partition_as_alternate() -> None:
    [ref] = objects_for_row(CARD, card(id=1234567890, image_file_name=f"{H}.jpg"))
    assert ref.key == f"preview_cards/images/001/234/567/890/original/{H}.jpg"
    assert f"preview_cards/images/123/456/789/original/{H}.jpg" in ref.alternates


def test_alternates_never_repeat_the_key() -> None:
    for _, record_type, row, prefix, _ in WORKED_EXAMPLES:
        for ref in objects_for_row(record_type, row, key_prefix=prefix):
            assert ref.key not in ref.alternates
            assert len(set(ref.alternates)) == len(ref.alternates)


def test_expected_size_only_for_originals() -> None:
    refs = objects_for_row(MA, media(file_file_size=4321))
    assert [(ref.style, ref.expected_size) for ref in refs] == [("original", 4321), ("small", None)]


def test_snowflake_ids_stay_exact() -> None:
    [ref, _] = objects_for_row(MA, media(id=2**62 + 1))
    assert ref.record_id == 2**62 + 1
    assert id_partition(2**62 + 1) in ref.key


@pytest.mark.parametrize(
    ("record_type", "row", "local"),
    [
        (MA, media(remote_url=""), True),
        (MA, media(remote_url=" \t"), True),
        (MA, media(remote_url="https://r/x"), False),
        (ACC, account(domain=None), True),
        (ACC, account(domain=""), False),  # domain.nil? is false for ""
        (EMOJI, emoji(domain="r.example"), False),
        (CARD, card(), False),  # PreviewCard#local? is always false
    ],
)
def test_is_local(record_type: RecordType, row: dict[str, Any], local: bool) -> None:
    assert is_local(record_type, row) is local


def test_cache_needs_both_schema_version_and_remote() -> None:
    local_v1 = objects_for_row(
        ACC, account(avatar_file_name="a.png", avatar_storage_schema_version=1)
    )
    remote_v0 = objects_for_row(
        ACC, account(domain="r", avatar_file_name="a.png", avatar_storage_schema_version=0)
    )
    assert not local_v1[0].key.startswith("cache/")
    assert not remote_v0[0].key.startswith("cache/")


def test_since_keeps_only_changed_attachments() -> None:
    row = account(
        avatar_file_name="a.png",
        avatar_updated_at=datetime(2026, 1, 1),
        header_file_name="h.png",
        header_updated_at=datetime(2026, 6, 1),
    )
    refs = objects_for_row(ACC, row, since=datetime(2026, 3, 1))
    assert [ref.attachment for ref in refs] == ["header"]
    unknown = dict(row, avatar_updated_at=None)
    assert [r.attachment for r in objects_for_row(ACC, unknown, since=datetime(2026, 9, 1))] == [
        "avatar"
    ]
