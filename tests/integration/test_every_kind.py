"""``run`` and ``verify`` end to end with every kind of object Mastodon keeps in the bucket
(real PostgreSQL, two moto_server providers): each copied byte for byte, users' archive
downloads never made public, ``--skip-backups``, and one line per kind left behind."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import functions.copier.handler as handler_module
from mastodon_s3_sync.cli import main
from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import CopySettings
from mastodon_s3_sync.demo.media import SeedManifest, create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import MotoS3Server
from mastodon_s3_sync.demo.schema import SchemaVersion
from mastodon_s3_sync.demo.seed import seed_database
from mastodon_s3_sync.mastodon.catalog import Catalog
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.mastodon.models import uploaded_private
from tests.events.factory import FakeLambdaContext, sqs_event_for_bodies
from tests.support.copier_lambda import Sides, media_rows, one_body, refs_of, seed
from tests.support.invariant import acl_class
from tests.support.mastodon_db import MastodonDbFactory, all_refs
from tests.support.s3_servers import BucketNames

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

V3_1, V3_5, V4_2, V4_3, V4_5, CURRENT = SchemaVersion
COUNTS = {
    "accounts": 12,
    "media_attachments": 24,
    "custom_emojis": 4,
    "preview_cards": 6,
    "site_uploads": 4,
    "preview_card_providers": 8,
    "backups": 5,
    "imports": 3,
}
NO_IMPORTS = "imports: no table (Mastodon 4.4+)"
NO_PROVIDERS = "preview_card_providers: no table (Mastodon before 3.5)"


@dataclass
class Bucketful:
    """A Mastodon database of one release, its source bucket as Mastodon wrote it, an
    empty destination bucket, and a config file naming them."""

    refs: list[ObjectRef]
    manifest: SeedManifest
    destination: S3Client
    destination_bucket: str
    config: Path

    def copied(self) -> dict[str, str]:
        """Key -> ETag of every object at the destination."""
        listing = self.destination.list_objects_v2(Bucket=self.destination_bucket)
        return {item["Key"]: item["ETag"].strip('"') for item in listing.get("Contents", [])}


Prepare = Callable[..., Bucketful]


@pytest.fixture
def prepare(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> Prepare:
    def make(version: SchemaVersion = V4_3, copy: CopySettings | None = None) -> Bucketful:
        db = mastodon_db(version)
        counts = dict(COUNTS, site_uploads=4 if version.has(V4_3) else 2)
        seed_database(db.conn, version, counts, seed=13)
        refs = all_refs(db)
        release = Catalog(db.conn, page_size=50).release()
        source, destination = moto_servers
        source_bucket, destination_bucket = fresh_bucket_name(), fresh_bucket_name()
        create_bucket(source.client(), source_bucket)
        create_bucket(destination.client(), destination_bucket)
        manifest = seed_bucket(
            source.client(),
            source_bucket,
            refs,
            private_record_ids={ref.record_id for ref in refs[3:40:9]},
            private_types={t for t in RecordType if uploaded_private(t, release)},
        )
        config = tmp_path / f"sync-{version.value}.toml"
        config.write_text(
            config_toml(
                db.url,
                source.bucket_settings(source_bucket),
                destination.bucket_settings(destination_bucket),
                copy,
            )
        )
        client = destination.client()
        return Bucketful(refs, manifest, client, destination_bucket, config)

    return make


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``mastodon-s3-sync ARGS`` in this process: its exit status and what it printed."""
    capsys.readouterr()
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def report(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


@pytest.mark.parametrize(
    ("version", "acl", "backups_at_the_destination"),
    [
        (V4_3, "copy", "private"),  # private at the source since 4.2: copied as it is
        (V4_3, "public-read", "private"),  # a fixed public-read never applies to them
        (V3_5, "copy", "public-read"),  # before 4.2 S3_PERMISSION: copied as it is
        (V3_5, "public-read", "private"),
    ],
)
def test_every_kind_is_copied_and_verified_and_no_backup_made_public(
    prepare: Prepare,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    version: SchemaVersion,
    acl: str,
    backups_at_the_destination: str,
) -> None:
    # given a 4.3 database (every kind: favicon and app icons, private backups, imports) or
    # a 3.5 one (public backups), and its bucket
    bucket = prepare(version)
    kinds = {str(ref.record_type) for ref in bucket.refs}
    assert kinds == {str(t) for t in RecordType}
    config = ["--config", str(bucket.config), "--acl", acl]
    # when
    ran, run_output = cli(capsys, "run", *config, "--report", str(tmp_path / "run.json"))
    verified, verify_output = cli(
        capsys, "verify", *config, "--full", "--report", str(tmp_path / "verify.json")
    )
    # then every object of every kind is at the destination, byte for byte (MD5 ETags)
    assert ran == 0, run_output
    copied = bucket.copied()
    assert copied == {key: seeded.md5 for key, seeded in bucket.manifest.objects.items()}
    run = report(tmp_path / "run.json")
    per_kind = Counter(str(ref.record_type) for ref in bucket.refs)
    assert {kind: tally["copied"] for kind, tally in run["by_type"].items()} == per_kind
    assert run["left_out"] == {}
    # and each keeps its ACL class, but a backup is never made public
    for key, seeded in bucket.manifest.objects.items():
        expected: str | None = seeded.acl if acl == "copy" else "public-read"
        if seeded.ref.record_type == RecordType.BACKUPS:
            expected = backups_at_the_destination
        assert acl_class(bucket.destination, bucket.destination_bucket, key) == expected, key
    # and verify proves it, kind by kind, with the same ACL rule
    assert verified == 0, verify_output
    assert "verify: OK" in verify_output
    assert report(tmp_path / "verify.json")["by_type"] == per_kind
    assert "no table" not in run_output + verify_output


def test_the_copier_function_never_makes_a_backup_public_either(
    sides: Sides, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a fixed public-read, and public objects: backups (as before 4.2) and media
    monkeypatch.setenv("MSS_ACL", "public-read")
    dumps = [{"id": n, "dump_file_name": f"archive-{n:032x}.zip"} for n in (7, 8)]
    backups = refs_of(RecordType.BACKUPS, dumps)
    media = refs_of(RecordType.MEDIA_ATTACHMENTS, media_rows(110_000_000_000_000_001, 2))
    seed(sides, [*backups, *media])
    event = sqs_event_for_bodies(
        [one_body(RecordType.BACKUPS, backups), one_body(RecordType.MEDIA_ATTACHMENTS, media)]
    )
    # when the function copies the messages the enumerator sends
    response = handler_module.handler(event, FakeLambdaContext().as_lambda_context())
    # then the backups are private at the destination, the media public, as with run
    assert response == {"batchItemFailures": []}
    written = {
        ref.key: acl_class(sides.destination, sides.destination_bucket, ref.key)
        for ref in [*backups, *media]
    }
    assert written == {ref.key: "private" for ref in backups} | {
        ref.key: "public-read" for ref in media
    }


def test_skip_backups_leaves_them_behind_and_says_so(
    prepare: Prepare, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # given a database with users' archive downloads
    bucket = prepare(CURRENT)
    backups = {ref.key for ref in bucket.refs if ref.record_type == RecordType.BACKUPS}
    assert backups
    config = ["--config", str(bucket.config)]
    # when copied and verified with --skip-backups
    ran, run_output = cli(capsys, "run", *config, "--skip-backups", "--report", str(tmp_path / "r"))
    verified, verify_output = cli(
        capsys, "verify", *config, "--skip-backups", "--report", str(tmp_path / "v")
    )
    planned, plan_output = cli(capsys, "plan", *config, "--summary", "--skip-backups")
    # then no backup was copied, everything else was
    assert (ran, verified, planned) == (0, 0, 0), run_output + verify_output + plan_output
    assert set(bucket.copied()) == set(bucket.manifest.objects) - backups
    # and each command ends by naming what it left behind, and why
    left = ["backups: skipped by --skip-backups", NO_IMPORTS]
    assert lines_naming_kinds(run_output) == left
    assert lines_naming_kinds(verify_output) == left
    assert lines_naming_kinds(plan_output) == left
    assert verify_output.rstrip().splitlines()[-3:-1] == [*left[1:], "verify: OK"]
    expected = {"backups": "skipped by --skip-backups", "imports": "no table (Mastodon 4.4+)"}
    assert report(tmp_path / "r")["left_out"] == report(tmp_path / "v")["left_out"] == expected
    assert "backups" not in report(tmp_path / "v")["by_type"]


def test_skip_backups_from_the_config_file(
    prepare: Prepare, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bucket = prepare(CURRENT, CopySettings(skip_backups=True))
    ran, output = cli(capsys, "run", "--config", str(bucket.config))
    assert ran == 0, output
    assert lines_naming_kinds(output) == ["backups: skipped by [copy] skip_backups", NO_IMPORTS]
    assert not any(key.startswith("backups/") for key in bucket.copied())


LEFT_OUT_LINE = re.compile(rf"({'|'.join(RecordType)}): (no table|skipped by|not selected) ")


def lines_naming_kinds(output: str) -> list[str]:
    """The lines that say a kind was left out (``kind: reason``)."""
    return [line for line in output.splitlines() if LEFT_OUT_LINE.match(line)]


@pytest.mark.parametrize(
    ("version", "flags", "expected"),
    [
        (CURRENT, [], [NO_IMPORTS]),
        (V4_3, [], []),
        (V3_1, [], [NO_PROVIDERS]),
        (
            CURRENT,
            ["--skip-remote-cache", "--skip-backups"],
            [
                "preview_cards: skipped by --skip-remote-cache (all remote cache: Mastodon "
                "fetches them again)",
                "backups: skipped by --skip-backups",
                NO_IMPORTS,
            ],
        ),
        (
            V3_1,
            ["--type", "accounts,imports"],
            [
                f"{t}: not selected (--type accounts,imports)"
                for t in RecordType
                if t not in (RecordType.ACCOUNTS, RecordType.IMPORTS)
            ],
        ),
    ],
)
def test_plan_names_each_kind_it_leaves_out(
    mastodon_db: MastodonDbFactory,
    capsys: pytest.CaptureFixture[str],
    version: SchemaVersion,
    flags: list[str],
    expected: list[str],
) -> None:
    db = mastodon_db(version)
    planned, output = cli(capsys, "plan", "--database-url", db.url, "--summary", *flags)
    assert planned == 0, output
    assert lines_naming_kinds(output) == expected
    lines = output.rstrip().splitlines()
    assert lines[len(lines) - len(expected) :] == expected  # the summary ends with them


@pytest.mark.parametrize(
    ("version", "absent", "release"),
    [
        (CURRENT, RecordType.IMPORTS, "4.4"),
        (V4_3, None, "4.3"),
        (V3_1, RecordType.PREVIEW_CARD_PROVIDERS, "3.1"),
    ],
)
def test_config_check_claims_no_table_the_database_lacks(
    mastodon_db: MastodonDbFactory,
    capsys: pytest.CaptureFixture[str],
    version: SchemaVersion,
    absent: RecordType | None,
    release: str,
) -> None:
    db = mastodon_db(version)
    status, output = cli(capsys, "config", "check", "--database-url", db.url)
    assert status == 0, output
    [line] = [line for line in output.splitlines() if line.startswith("OK   database: ")]
    present = line.split(": tables ", 1)[1].split(" present", 1)[0].split(", ")
    assert present == [str(t) for t in RecordType if t != absent]
    named = {RecordType.IMPORTS: NO_IMPORTS, RecordType.PREVIEW_CARD_PROVIDERS: NO_PROVIDERS}
    told = f"; {named[absent]}" if absent is not None else ""
    assert f" present{told}; Mastodon {release} or later" in line
