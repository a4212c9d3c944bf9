"""Listing-based sightings against real S3 servers: right answers, few requests."""

from __future__ import annotations

import math

import pytest

from mastodon_s3_sync.demo.s3servers import LocalS3Server, MotoS3Server, RcloneS3Server
from mastodon_s3_sync.mastodon.layout import id_partition
from mastodon_s3_sync.storage.listing import ABSENT, UNKNOWN, BucketListing, Listed
from mastodon_s3_sync.storage.s3 import BotoObjects
from tests.support.s3_servers import BucketNames

pytestmark = pytest.mark.integration

PAGE = 50


def _key(family: str, record_id: int, style: str) -> str:
    return f"{family}{id_partition(record_id)}/{style}/file.png"


def _fill(server: LocalS3Server, bucket: str, keys: list[str]) -> dict[str, int]:
    client = server.client()
    client.create_bucket(Bucket=bucket)
    sizes = {}
    for number, key in enumerate(keys):
        body = b"x" * (number % 7)
        client.put_object(Bucket=bucket, Key=key, Body=body)
        sizes[key] = len(body)
    return sizes


@pytest.fixture(params=["moto", "rclone"])
def server(
    request: pytest.FixtureRequest,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server],
) -> LocalS3Server:
    return moto_servers[0] if request.param == "moto" else rclone_servers[0]


def test_in_order_lookups_are_answered_from_few_pages(
    server: LocalS3Server, fresh_bucket_name: BucketNames
) -> None:
    bucket = fresh_bucket_name()
    families = ("accounts/avatars/", "cache/accounts/avatars/", "media_attachments/files/")
    # Every third id has no object: those must come back ABSENT, not UNKNOWN.
    stored = [
        _key(family, record_id, style)
        for record_id in range(1, 121)
        if record_id % 3
        for family in families
        for style in ("original", "small")
    ]
    sizes = _fill(server, bucket, stored)
    listing = BucketListing(BotoObjects(server.client(), bucket), page_keys=PAGE)
    for record_id in range(1, 121):
        for family in families:
            for style in ("small", "original"):  # styles out of key order within a row
                key = _key(family, record_id, style)
                expected = sizes.get(key)
                sighting = listing.sight(key)
                if expected is None:
                    assert sighting is ABSENT, key
                else:
                    assert isinstance(sighting, Listed), key
                    assert sighting.size == expected
    per_family = len(stored) // len(families)
    assert listing.list_requests <= len(families) * (math.ceil(per_family / PAGE) + 1)
    assert listing.refused is None


def test_out_of_order_lookups_are_unknown_not_absent(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames
) -> None:
    server = moto_servers[0]
    bucket = fresh_bucket_name()
    family = "media_attachments/files/"
    _fill(server, bucket, [_key(family, n, "original") for n in range(1, 11)])
    listing = BucketListing(BotoObjects(server.client(), bucket), page_keys=PAGE)
    assert isinstance(listing.sight(_key(family, 9, "original")), Listed)
    assert listing.sight(_key(family, 2, "original")) is UNKNOWN
    assert listing.sight("not/a/layout-key.png") is UNKNOWN
    assert isinstance(listing.sight(_key(family, 10, "original")), Listed)


def test_sparse_lookups_jump_instead_of_paging_through(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames
) -> None:
    server = moto_servers[0]
    bucket = fresh_bucket_name()
    family = "preview_cards/images/"
    _fill(server, bucket, [_key(family, n, "original") for n in range(1, 401)])
    listing = BucketListing(BotoObjects(server.client(), bucket), page_keys=10)
    wanted = (5, 150, 151, 390)
    assert all(isinstance(listing.sight(_key(family, n, "original")), Listed) for n in wanted)
    # Paging through would take 39 requests; each far jump costs one.
    assert listing.list_requests == 3


def test_a_bucket_that_cannot_be_listed_gives_unknown(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames
) -> None:
    listing = BucketListing(
        BotoObjects(moto_servers[0].client(), fresh_bucket_name())
    )  # never created
    assert listing.sight(_key("accounts/headers/", 1, "original")) is UNKNOWN
    assert listing.refused is not None
    assert "NoSuchBucket" in listing.refused
