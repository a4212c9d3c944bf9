"""The demo's Mastodon with the other attachments in the bucket (storage spec §2.7): rows
per release, objects of the sizes the rows record, private backups, a 4.3 sandbox."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mastodon_s3_sync.demo.media import create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import MotoS3Server
from mastodon_s3_sync.demo.sandbox import QUICK_COUNTS, sandbox
from mastodon_s3_sync.demo.schema import SchemaVersion
from mastodon_s3_sync.demo.seed import generate_rows
from mastodon_s3_sync.mastodon.layout import RecordType, objects_for_row
from tests.support.s3_servers import BucketNames

pytestmark = pytest.mark.integration

H = "0123456789abcdef"
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
V4_2, V4_3 = SchemaVersion.V4_2, SchemaVersion.V4_3
OTHER_KINDS = {
    RecordType.SITE_UPLOADS,
    RecordType.PREVIEW_CARD_PROVIDERS,
    RecordType.BACKUPS,
    RecordType.IMPORTS,
}


def int_of(value: object) -> int:
    assert isinstance(value, int)
    return value


def text_of(value: object) -> str:
    assert isinstance(value, str)
    return value


@pytest.mark.parametrize(
    ("version", "site_uploads"),
    [(V4_2, ["thumbnail", "mascot"]), (V4_3, ["thumbnail", "mascot", "favicon", "app_icon"])],
    ids=lambda value: getattr(value, "name", None),
)
def test_site_uploads_are_the_vars_of_the_release(
    version: SchemaVersion, site_uploads: list[str]
) -> None:
    rows = list(generate_rows("site_uploads", len(site_uploads), seed=1, version=version))

    assert [row["var"] for row in rows] == site_uploads
    with pytest.raises(ValueError, match="one row per var"):
        list(generate_rows("site_uploads", len(site_uploads) + 1, version=version))


def test_other_models_have_small_sizes_and_realistic_names() -> None:
    backups = list(generate_rows("backups", 50, seed=2))
    providers = list(generate_rows("preview_card_providers", 50, seed=2))
    imports = list(generate_rows("imports", 20, seed=2, version=V4_3))
    uploads = list(generate_rows("site_uploads", 4, seed=2))
    sized = [
        *(row["dump_file_size"] for row in backups),
        *(row["icon_file_size"] for row in providers),
        *(row["data_file_size"] for row in imports),
        *(row["file_file_size"] for row in uploads),
    ]
    # the seeded bucket writes originals of 1-40 KiB with exactly the database's size
    assert all(1024 <= int_of(size) <= 40 * 1024 for size in sized if size is not None)
    # archives being written have no dump yet; the others are named as BackupService does
    assert any(row["dump_file_name"] is None and not row["processed"] for row in backups)
    names = [text_of(row["dump_file_name"]) for row in backups if row["processed"]]
    assert names
    assert all(re.fullmatch(r"archive-\d{14}-[0-9a-f]{32}\.zip", name) for name in names)
    assert any(row["icon_file_name"] is None for row in providers)
    assert any(row["icon_file_name"] is not None for row in providers)
    assert all(text_of(row["data_file_name"]).endswith(".csv") for row in imports)


def test_seed_bucket_other_models_exact_sizes_and_private_backups(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames
) -> None:
    # given rows of the other attachments (storage spec §2.7) with small database sizes
    client = moto_servers[0].client()
    bucket = fresh_bucket_name()
    create_bucket(client, bucket)
    archive = f"archive-20260601120000-{H}{H}.zip"
    rows: list[tuple[RecordType, dict[str, Any]]] = [
        (RecordType.SITE_UPLOADS, {"id": 3, "var": "favicon", "file_file_name": f"{H}.ico"}),
        (RecordType.PREVIEW_CARD_PROVIDERS, {"id": 3, "icon_file_name": f"{H}.png"}),
        (RecordType.BACKUPS, {"id": 3, "dump_file_name": archive, "dump_file_size": 20_000}),
        (RecordType.IMPORTS, {"id": 3, "data_file_name": "a.csv", "data_file_size": 2_000}),
    ]
    refs = [ref for record_type, row in rows for ref in objects_for_row(record_type, row)]
    # when backups are private by type (ids repeat across tables: id 3 of the others is not)
    manifest = seed_bucket(client, bucket, refs, private_types={RecordType.BACKUPS})
    # then the originals have exactly the database's sizes, with the types Mastodon stores
    by_key = {key: (obj.size, obj.content_type, obj.acl) for key, obj in manifest.objects.items()}
    assert by_key[f"backups/dumps/000/000/003/original/{archive}"] == (
        20_000,
        "application/zip",
        "private",
    )
    assert by_key["imports/data/000/000/003/original/a.csv"] == (2_000, "text/csv", "public-read")
    favicon = by_key[f"site_uploads/files/000/000/003/original/{H}.ico"]
    assert favicon[1:] == ("image/vnd.microsoft.icon", "public-read")
    assert by_key[f"site_uploads/files/000/000/003/16/{H}.png"][1] == "image/png"
    assert by_key[f"preview_card_providers/icons/000/000/003/static/{H}.png"][2] == "public-read"
    grants = client.get_object_acl(
        Bucket=bucket, Key=f"backups/dumps/000/000/003/original/{archive}"
    )
    assert not any(grant["Grantee"].get("URI") == ALL_USERS for grant in grants["Grants"])
    assert (
        client.get_object(Bucket=bucket, Key=f"backups/dumps/000/000/003/original/{archive}")[
            "Body"
        ]
        .read()
        .startswith(b"PK\x03\x04")
    )


def test_sandbox_on_a_4_3_schema_holds_every_kind(tmp_path: Path) -> None:
    # given the demo's Mastodon on the last release with imports
    with sandbox(tmp_path, QUICK_COUNTS, SchemaVersion.V4_3) as box:
        objects = box.manifest.objects.values()
        # then every kind is seeded, and the bucket holds what the rows say
        assert box.rows["imports"] == QUICK_COUNTS["imports"]
        assert box.rows["site_uploads"] == 4
        tables = {seeded.key.removeprefix("cache/").split("/", 1)[0] for seeded in objects}
        assert tables == {str(record_type) for record_type in RecordType}
        styles = {(s.ref.record_type, s.ref.style) for s in objects}
        for style in ("original", "@1x", "@2x", "16", "32", "48", "57", "1024", "512"):
            assert (RecordType.SITE_UPLOADS, style) in styles, style
        # backups are private (4.2+), the suspended account's media too, nothing else
        for seeded in objects:
            if seeded.ref.record_type is RecordType.BACKUPS:
                assert seeded.acl == "private"
            elif seeded.ref.record_type not in (RecordType.ACCOUNTS, RecordType.MEDIA_ATTACHMENTS):
                assert seeded.acl == "public-read", seeded.key
        # and each original of the other kinds has the size its row records
        for seeded in objects:
            if seeded.ref.expected_size is not None and seeded.ref.record_type in OTHER_KINDS:
                assert seeded.size == seeded.ref.expected_size, seeded.key
