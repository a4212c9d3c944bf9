"""Which part of a key is its listing family and partition directory."""

from __future__ import annotations

import pytest

from mastodon_s3_sync.listing import family_and_directory


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            "media_attachments/files/000/000/001/original/a.png",
            ("media_attachments/files/", "media_attachments/files/000/000/001/"),
        ),
        (
            "prefix/cache/accounts/avatars/109/348/123/456/789/012/static/b.png",
            (
                "prefix/cache/accounts/avatars/",
                "prefix/cache/accounts/avatars/109/348/123/456/789/012/",
            ),
        ),
        ("123/456/789/original/a.png", ("", "123/456/789/")),
        (
            "media/123/accounts/avatars/000/000/001/original/a",
            ("media/123/accounts/avatars/", "media/123/accounts/avatars/000/000/001/"),
        ),
        ("a.png", None),
        ("accounts/avatars/original/a.png", None),
        ("accounts/avatars/1234/original/a.png", None),
    ],
)
def test_family_and_directory(key: str, expected: tuple[str, str] | None) -> None:
    assert family_and_directory(key) == expected
