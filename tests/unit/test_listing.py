"""Which part of a key is its listing family and partition directory."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from mastodon_s3_sync.storage.listing import UNKNOWN, BucketListing, Listed, family_and_directory
from mastodon_s3_sync.storage.s3 import BotoObjects


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


def _stubbed() -> tuple[BucketListing, Stubber]:
    client = boto3.session.Session(
        aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    ).client("s3")
    return BucketListing(BotoObjects(client, "media")), Stubber(client)


KEY = "media_attachments/files/000/000/001/original/a.png"
LATER = "media_attachments/files/000/000/002/original/b.png"


def test_a_truncated_page_without_keys_is_not_taken_as_the_end() -> None:
    listing, stubber = _stubbed()
    stubber.add_response("list_objects_v2", {"IsTruncated": True, "Contents": []})
    with stubber:
        assert listing.sight(KEY) is UNKNOWN
        assert listing.sight(LATER) is UNKNOWN  # no further request: the family is distrusted
    stubber.assert_no_pending_responses()


def test_a_failed_listing_is_tried_again_but_a_refusal_is_final() -> None:
    listing, stubber = _stubbed()
    stubber.add_client_error("list_objects_v2", "SlowDown", http_status_code=503)
    stubber.add_response(
        "list_objects_v2",
        {"IsTruncated": False, "Contents": [{"Key": LATER, "Size": 7, "ETag": '"e"'}]},
    )
    with stubber:
        assert listing.sight(KEY) is UNKNOWN
        assert listing.refused is None
        assert listing.sight(LATER) == Listed(7, '"e"')
    refusing, stubber = _stubbed()
    stubber.add_client_error("list_objects_v2", "AccessDenied", http_status_code=403)
    with stubber:
        assert refusing.sight(KEY) is UNKNOWN
        assert refusing.sight(LATER) is UNKNOWN  # no second request
    assert refusing.refused is not None
    assert "AccessDenied" in refusing.refused
