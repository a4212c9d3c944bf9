"""``find_orphans`` against a real PostgreSQL and a real S3 server (moto): exact keys and
counts per folder, the ordering boundaries of the merge, and its request count."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

from mastodon_s3_sync.copying.orphans import ListingOrderError, OrphanReport, find_orphans
from mastodon_s3_sync.demo.media import create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import MotoS3Server
from mastodon_s3_sync.demo.seed import seed_database
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.catalog import Catalog
from mastodon_s3_sync.mastodon.layout import RecordType, folders
from mastodon_s3_sync.storage.s3 import BotoObjects, RequestCounter
from tests.support.mastodon_db import MastodonDb, all_refs
from tests.support.s3_servers import BucketNames

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

MakeDb = Callable[..., MastodonDb]
H = "0123456789abcdef"
NOW = datetime(2026, 1, 1)
COUNTS = {
    "accounts": 40,
    "media_attachments": 80,
    "custom_emojis": 12,
    "preview_cards": 30,
    "site_uploads": 4,
    "preview_card_providers": 8,
    "backups": 4,
}
# One orphan in every one of Mastodon's folders (imports/data/ too: a 4.6 database has no
# imports table, so what 4.3 left there is referenced by nothing).
ORPHAN_NAME = "000/000/999/original/orphan.png"
# Keys outside Mastodon's folders, and the top-level folder each is reported under.
FOREIGN = {
    "index.html": "",
    "accounts/README.txt": "accounts/",  # accounts/ holds only avatars/ and headers/
    "backups-2019/dump.tar": "backups-2019/",
    "cache/site_uploads/files/000/000/001/original/x.png": "cache/",  # never under cache/
    "static/logo.svg": "static/",
    "zzz/last.txt": "zzz/",
}


def put(client: S3Client, bucket: str, keys: dict[str, int]) -> None:
    for key, size in keys.items():
        client.put_object(Bucket=bucket, Key=key, Body=b"o" * size)


def all_folders(key_prefix: str = "") -> list[str]:
    return sorted(folder for t in RecordType for folder in folders(t, key_prefix))


def folder_of(key: str, candidates: list[str]) -> str:
    [folder] = [folder for folder in candidates if key.startswith(folder)]
    return folder


def orphans_of(report: OrphanReport) -> dict[str, tuple[str, int]]:
    return {key: (folder, size) for folder, key, size in report.entries()}


FindOrphans = Callable[..., OrphanReport]


@pytest.fixture
def orphans() -> Iterator[FindOrphans]:
    """``find_orphans``, whose reports are closed after the test (pass or fail)."""
    reports: list[OrphanReport] = []

    def find(*args: Any, **kwargs: Any) -> OrphanReport:
        reports.append(find_orphans(*args, **kwargs))
        return reports[-1]

    yield find
    for report in reports:
        report.close()


def counted_store(server: MotoS3Server, bucket: str) -> tuple[BotoObjects, RequestCounter]:
    client = server.client()
    counter = RequestCounter()
    counter.attach(client)
    return BotoObjects(client, bucket), counter


def test_a_seeded_bucket_reports_exactly_the_unreferenced_keys(
    mastodon_db: MakeDb,
    orphans: FindOrphans,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
) -> None:
    # given a Mastodon with every kind, its bucket as Mastodon wrote it (some objects at an
    # alternate key, some gone), an orphan in each folder and foreign keys outside them
    db = mastodon_db()
    seed_database(db.conn, counts=COUNTS, seed=3)
    server = moto_servers[0]
    client, bucket = server.client(), fresh_bucket_name()
    create_bucket(client, bucket)
    manifest = seed_bucket(client, bucket, all_refs(db), missing_every=11, legacy_every=7)
    mastodon_folders = all_folders()
    strays = {f"{folder}{ORPHAN_NAME}": 100 + n for n, folder in enumerate(mastodon_folders)}
    foreign = {key: 7 for key in FOREIGN}
    put(client, bucket, strays | foreign)
    objects, counter = counted_store(server, bucket)
    # when
    report = orphans(Catalog(db.conn, page_size=25), objects)
    # then exactly the orphans and the foreign keys are reported, each under its folder
    expected = {key: (folder_of(key, mastodon_folders), size) for key, size in strays.items()}
    expected |= {key: (FOREIGN[key], 7) for key in FOREIGN}
    assert orphans_of(report) == expected
    assert report.late_keys == 0
    # and per folder: what is listed, referenced (at an alternate key or not), orphaned
    referenced = Counter(folder_of(key, mastodon_folders) for key in manifest.objects)
    at_alternate = Counter(
        folder_of(key, mastodon_folders)
        for key, seeded in manifest.objects.items()
        if key != seeded.ref.key
    )
    assert sum(at_alternate.values()) == len(manifest.legacy) > 0
    tallies = {tally.folder: tally for tally in report.folders}
    assert list(tallies) == mastodon_folders
    for folder, tally in tallies.items():
        listed = referenced[folder] + 1
        assert (tally.objects, tally.referenced, tally.orphans) == (listed, listed - 1, 1), folder
        assert tally.at_alternate == at_alternate[folder], folder
        assert tally.orphan_bytes == strays[f"{folder}{ORPHAN_NAME}"]
        assert tally.referenced_bytes == sum(
            seeded.size for key, seeded in manifest.objects.items() if key.startswith(folder)
        )
    assert [(t.folder, t.objects, t.orphans, t.bytes) for t in report.outside] == [
        ("accounts/", 1, 1, 7),
        ("backups-2019/", 1, 1, 7),
        ("cache/", 1, 1, 7),
        ("", 1, 1, 7),  # index.html, between imports/ and media_attachments/
        ("static/", 1, 1, 7),
        ("zzz/", 1, 1, 7),
    ]
    # and the cost is the listing: one page per folder (each holds fewer than 1,000 keys),
    # then the rest of the bucket in one page per stretch between folders
    nonempty = sum(1 for tally in report.folders if tally.objects)
    assert counter.by_operation == {"ListObjectsV2": len(mastodon_folders) + 1 + nonempty}
    assert report.list_requests == counter.total
    # and nothing was deleted
    listed = client.list_objects_v2(Bucket=bucket, MaxKeys=1000)["KeyCount"]
    assert listed == len(manifest.objects) + len(strays) + len(foreign)


def insert_account(db: MastodonDb, account_id: int, **columns: Any) -> None:
    names = ", ".join(["id", "created_at", "updated_at", *columns])
    values = ", ".join([":id", ":now", ":now", *(f":{name}" for name in columns)])
    db.conn.run(
        f"INSERT INTO accounts ({names}) VALUES ({values})", id=account_id, now=NOW, **columns
    )


# Rows whose keys do not sort in id order (storage spec §1.3), and what the bucket holds for
# them: (id, remote, avatar file name, avatar keys in the bucket).
BOUNDARY_ROWS: list[tuple[int, bool, str, list[str]]] = [
    (-99, False, "actor.png", ["accounts/avatars/000/000/original/actor.png"]),
    (5, False, "five.png", ["accounts/avatars/000/000/005/original/five.png"]),
    (1_234_567, False, "a.gif", [
        "accounts/avatars/001/234/567/original/a.gif",
        "accounts/avatars/001/234/567/static/a.png",
    ]),
    (150_000_000, False, "seq.png", ["accounts/avatars/150/000/000/original/seq.png"]),
    (999_999_999, False, "nine.png", ["accounts/avatars/999/999/999/original/nine.png"]),
    # paperclip 6.0.0's partition (an alternate) for a 10-digit id
    (1_000_000_000, False, "ten.png", ["accounts/avatars/100/000/000/original/ten.png"]),
    (1_234_567_890, False, "b.gif", [
        "accounts/avatars/001/234/567/890/original/b.gif",
        "accounts/avatars/001/234/567/890/static/b.png",
    ]),
    # 13 digits: the last one is dropped, two ids share a partition
    (1_234_567_890_120, False, "c.png", ["accounts/avatars/123/456/789/012/original/c.png"]),
    (1_234_567_890_125, False, "d.png", ["accounts/avatars/123/456/789/012/original/d.png"]),
    (109_348_123_456_789_012, True, "e.png", [
        "cache/accounts/avatars/109/348/123/456/789/012/original/e.png",
    ]),
    # a remote avatar left outside cache/ by an interrupted upgrade: its alternate
    (110_000_000_000_000_000, True, "f.png", [
        "accounts/avatars/110/000/000/000/000/000/original/f.png",
    ]),
]  # fmt: skip
BOUNDARY_ORPHANS = [
    "accounts/avatars/000/000/original/stray.png",
    "accounts/avatars/000/000/005/small/five.png",
    "accounts/avatars/001/234/567/890/original/a.gif",
    "accounts/avatars/100/000/000/original/other.png",
    "accounts/avatars/123/456/789/012/original/e.png",
    "accounts/avatars/150/000/000/static/seq.png",
    "cache/accounts/avatars/110/000/000/000/000/000/original/old.png",
]


@pytest.mark.parametrize(("window", "page_keys"), [(4096, 1000), (3, 2), (1, 1000)])
def test_the_merge_is_exact_across_the_ordering_boundaries(
    mastodon_db: MakeDb,
    orphans: FindOrphans,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    window: int,
    page_keys: int,
) -> None:
    # given accounts whose keys interleave out of id order, their objects, and orphans
    # placed right next to them
    db = mastodon_db()
    for account_id, remote, name, _ in BOUNDARY_ROWS:
        content_type = "image/gif" if name.endswith(".gif") else "image/png"
        insert_account(
            db,
            account_id,
            domain="remote.example" if remote else None,
            avatar_file_name=name,
            avatar_content_type=content_type,
            avatar_storage_schema_version=1,
        )
    server = moto_servers[0]
    client, bucket = server.client(), fresh_bucket_name()
    create_bucket(client, bucket)
    stored = [key for *_, keys in BOUNDARY_ROWS for key in keys]
    put(client, bucket, dict.fromkeys(stored + BOUNDARY_ORPHANS, 3))
    objects, _ = counted_store(server, bucket)
    # when merged with windows too small for the disorder, and pages of 2 keys
    report = orphans(Catalog(db.conn, page_size=4), objects, window=window, page_keys=page_keys)
    # then the result is the same: exactly the orphans
    assert sorted(orphans_of(report)) == sorted(BOUNDARY_ORPHANS)
    tallies = {tally.folder: tally for tally in report.folders}
    avatars, cached = tallies["accounts/avatars/"], tallies["cache/accounts/avatars/"]
    assert (avatars.objects, avatars.referenced, avatars.at_alternate) == (18, 12, 2)
    assert (cached.objects, cached.referenced, cached.at_alternate) == (2, 1, 0)
    assert (report.late_keys > 0) == (window < len(stored))
    assert report.outside == []


def test_a_key_prefix_counts_unprefixed_keys_as_alternates(
    mastodon_db: MakeDb,
    orphans: FindOrphans,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
) -> None:
    # given S3_KEY_PREFIX=m, turned on after some uploads (their keys have no prefix)
    db = mastodon_db()
    insert_account(db, 1, avatar_file_name="new.png")
    insert_account(db, 2, avatar_file_name="old.png")
    server = moto_servers[0]
    client, bucket = server.client(), fresh_bucket_name()
    create_bucket(client, bucket)
    put(
        client,
        bucket,
        {
            "m/accounts/avatars/000/000/001/original/new.png": 1,
            "accounts/avatars/000/000/002/original/old.png": 2,
            "m/accounts/avatars/000/000/003/original/gone.png": 3,
            "m/other/file.txt": 4,
            "m/top.txt": 5,
        },
    )
    objects, _ = counted_store(server, bucket)
    # when
    report = orphans(Catalog(db.conn, page_size=10, key_prefix="m"), objects)
    # then
    assert orphans_of(report) == {
        "m/accounts/avatars/000/000/003/original/gone.png": ("m/accounts/avatars/", 3),
        "m/other/file.txt": ("m/other/", 4),
        "m/top.txt": ("m/", 5),
    }
    tallies = {tally.folder: tally for tally in report.folders}
    assert tallies["accounts/avatars/"].at_alternate == 1
    assert tallies["m/accounts/avatars/"].referenced == 1
    assert len(report.folders) == 2 * len(all_folders())


def test_a_key_prefix_that_nests_mastodon_folders_is_refused(
    mastodon_db: MakeDb, orphans: FindOrphans, moto_servers: tuple[MotoS3Server, MotoS3Server]
) -> None:
    db = mastodon_db()
    catalog = Catalog(db.conn, page_size=10, key_prefix="accounts/avatars")
    objects, counter = counted_store(moto_servers[0], "never-listed")
    with pytest.raises(SettingsError, match="inside accounts/avatars/"):
        orphans(catalog, objects)
    assert counter.total == 0


def test_list_requests_grow_with_pages_not_rows(
    mastodon_db: MakeDb,
    orphans: FindOrphans,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
) -> None:
    # given 30 orphans in one folder and 30 rows whose objects are gone, pages of 7 keys
    db = mastodon_db()
    for emoji_id in range(1, 31):
        db.conn.run(
            "INSERT INTO custom_emojis (id, shortcode, image_file_name, created_at, updated_at) "
            "VALUES (:id, :code, :name, :now, :now)",
            id=emoji_id,
            code=f"e{emoji_id}",
            name=f"{emoji_id}.png",
            now=NOW,
        )
    server = moto_servers[0]
    client, bucket = server.client(), fresh_bucket_name()
    create_bucket(client, bucket)
    put(
        client,
        bucket,
        {f"custom_emojis/images/000/001/{n:03d}/original/x.png": 1 for n in range(30)},
    )
    objects, counter = counted_store(server, bucket)
    # when
    report = orphans(Catalog(db.conn, page_size=10), objects, page_keys=7)
    # then the folder costs ceil(30 / 7) pages, every other folder one, and the rest of the
    # bucket one page before the folder and one after it
    assert sum(1 for _ in report.entries()) == 30
    assert counter.by_operation["ListObjectsV2"] == math.ceil(30 / 7) + len(all_folders()) - 1 + 2


class StartAfterIgnored:
    """An :class:`ObjectStore` whose listing ignores StartAfter, as a broken provider would."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = sorted(keys)

    def list_page(self, prefix: str, start_after: str, max_keys: int) -> dict[str, Any]:
        matching = [key for key in self._keys if key.startswith(prefix)]
        return {
            "Contents": [{"Key": key, "Size": 1} for key in matching[:max_keys]],
            "IsTruncated": len(matching) > max_keys,
        }

    def get_object(self, key: str) -> dict[str, Any]:
        raise AssertionError("orphans only lists")

    head_object = get_object

    def put_object(self, key: str, body: bytes, fields: Mapping[str, Any]) -> dict[str, Any]:
        raise AssertionError("orphans never writes")

    def is_public(self, key: str) -> bool:
        raise AssertionError("orphans only lists")


def test_a_listing_out_of_order_is_refused(mastodon_db: MakeDb, orphans: FindOrphans) -> None:
    db = mastodon_db()
    insert_account(db, 1, avatar_file_name="a.png")
    keys = [f"accounts/avatars/000/000/{n:03d}/original/a.png" for n in range(1, 6)]
    with pytest.raises(ListingOrderError, match=r"accounts/avatars/ is not in key order"):
        orphans(Catalog(db.conn, page_size=10), StartAfterIgnored(keys), page_keys=2)
