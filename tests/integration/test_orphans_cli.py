"""``mastodon-s3-sync orphans`` end to end: a real PostgreSQL, a moto_server bucket behind a
counting proxy, the printed table and the JSON report; exact keys, counts and requests."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from mastodon_s3_sync.cli import main
from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.demo.media import create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import MotoS3Server
from mastodon_s3_sync.demo.seed import seed_database
from mastodon_s3_sync.mastodon.layout import RecordType, folders
from tests.support.faultproxy import FaultProxy, Operation
from tests.support.mastodon_db import MastodonDbFactory, all_refs
from tests.support.s3_servers import BucketNames

pytestmark = pytest.mark.integration

COUNTS = {
    "accounts": 30,
    "media_attachments": 60,
    "custom_emojis": 8,
    "preview_cards": 20,
    "site_uploads": 4,
    "preview_card_providers": 8,
    "backups": 4,
}
MASTODON_FOLDERS = sorted(folder for t in RecordType for folder in folders(t))
# One stray object in each of Mastodon's folders (imports/data/ too: a current database has
# no imports table, so nothing references what 4.3 left there).
STRAYS = {
    f"{folder}000/000/999/original/stray.png": 100 + n for n, folder in enumerate(MASTODON_FOLDERS)
}
# Objects outside Mastodon's folders, and the top-level folder each is reported under.
FOREIGN = {"by-hand/dump.sql.gz": "by-hand/", "index.html": "", "static/logo.svg": "static/"}


def folder_of(key: str) -> str:
    [folder] = [folder for folder in MASTODON_FOLDERS if key.startswith(folder)]
    return folder


def test_orphans_reports_exactly_what_no_row_references_and_deletes_nothing(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given a current Mastodon with every kind, its bucket as Mastodon wrote it (some
    # objects at a legacy placement, some gone), strays in its folders, foreign keys
    db = mastodon_db()
    seed_database(db.conn, counts=COUNTS, seed=8)
    server = moto_servers[0]
    client, bucket = server.client(), fresh_bucket_name()
    create_bucket(client, bucket)
    manifest = seed_bucket(client, bucket, all_refs(db), missing_every=11, legacy_every=7)
    for key, size in (STRAYS | dict.fromkeys(FOREIGN, 7)).items():
        client.put_object(Bucket=bucket, Key=key, Body=b"s" * size)
    report = tmp_path / "orphans.json"
    # when listed through a proxy that counts every request
    with FaultProxy(server.endpoint_url) as proxy:
        source = replace(server.bucket_settings(bucket), endpoint_url=proxy.url)
        config = tmp_path / "sync.toml"
        config.write_text(config_toml(db.url, source, server.bucket_settings("unused")))
        capsys.readouterr()
        status = main(["orphans", "--config", str(config), "--report", str(report)])
        printed = capsys.readouterr().err
        forwarded = proxy.stats.forwarded
    # then the report lists exactly the strays and the foreign keys, each in its folder
    assert status == 0, printed
    document = json.loads(report.read_text())
    found = {entry["key"]: (entry["folder"], entry["size"]) for entry in document["orphan_keys"]}
    expected = {key: (folder_of(key), size) for key, size in STRAYS.items()}
    expected |= {key: (folder, 7) for key, folder in FOREIGN.items()}
    assert found == expected
    # and per folder: everything listed is referenced but the one stray
    referenced = Counter(folder_of(key) for key in manifest.objects)
    tallies = {tally["folder"]: tally for tally in document["folders"]}
    assert list(tallies) == MASTODON_FOLDERS
    for folder, tally in tallies.items():
        listed = referenced[folder] + 1
        counts = (tally["objects"], tally["referenced"], tally["orphans"])
        assert counts == (listed, listed - 1, 1), folder
        assert tally["orphan_bytes"] == STRAYS[f"{folder}000/000/999/original/stray.png"]
    assert sum(tally["at_alternate"] for tally in tallies.values()) == len(manifest.legacy) > 0
    assert [(t["folder"], t["objects"]) for t in document["outside"]] == [
        ("by-hand/", 1),
        ("", 1),  # index.html, between imports/ and media_attachments/
        ("static/", 1),
    ]
    orphan_bytes = sum(STRAYS.values()) + 7 * len(FOREIGN)
    assert (document["orphans"], document["orphan_bytes"]) == (len(expected), orphan_bytes)
    assert document["left_out"] == {"imports": "no table (Mastodon 4.4+)"}
    # and the cost is one HeadBucket and the listing: a page per folder (fewer than 1,000
    # keys each), then the rest of the bucket, one page per stretch between folders
    nonempty = sum(1 for tally in tallies.values() if tally["objects"])
    pages = len(MASTODON_FOLDERS) + 1 + nonempty
    assert forwarded == {Operation.BUCKET: 1, Operation.LIST: pages}
    assert document["list_requests"] == pages
    # and it says so, and what it found
    total = len(manifest.objects) + len(STRAYS) + len(FOREIGN)
    assert f"unreferenced: {len(expected)} objects, " in printed
    assert f"requests: {pages} ListObjectsV2 for {total} objects" in printed
    assert "imports: no table (Mastodon 4.4+): nothing references its folder's objects" in printed
    # and nothing was deleted
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == total


def test_orphans_needs_a_source_bucket(
    mastodon_db: MastodonDbFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    db = mastodon_db()
    assert main(["orphans", "--database-url", db.url]) == 2
    assert "no source bucket: pass --source s3://BUCKET" in capsys.readouterr().err
