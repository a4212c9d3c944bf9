"""Privacy from the database in ``run``: what Mastodon made private is withheld from a
destination that keeps no ACL, and written private where the source leaks it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mastodon_s3_sync.mastodon.layout import ObjectRef
from tests.integration.test_run import acl_class
from tests.support.mastodon_db import all_refs
from tests.support.migration import Migration, run
from tests.support.processes import run_cli

pytestmark = pytest.mark.integration

SUSPENDED_MEDIA = 5


def suspend_an_account(migration: Migration) -> list[ObjectRef]:
    """Suspend a local account, give it media the source serves publicly, and return every
    object the catalog now finds private."""
    run_sql = migration.db.conn.run
    [[account_id]] = run_sql("SELECT id FROM accounts WHERE domain IS NULL ORDER BY id LIMIT 1")
    run_sql("UPDATE accounts SET suspended_at = now() WHERE id = :id", id=account_id)
    public = sorted(
        {
            ref.record_id
            for ref in migration.refs
            if ref.record_type == "media_attachments"
            and migration.manifest.objects.get(ref.key) is not None
            and migration.manifest.objects[ref.key].acl == "public-read"
        }
    )[:SUSPENDED_MEDIA]
    run_sql(
        "UPDATE media_attachments SET account_id = :a WHERE id = ANY(:ids)",
        a=account_id,
        ids=public,
    )
    private = [ref for ref in all_refs(migration.db) if ref.private]
    assert {ref.record_id for ref in private} == set(public)
    return private


def stored_keys(migration: Migration, refs: list[ObjectRef]) -> set[str]:
    """Where the source holds ``refs`` (a canonical key or a legacy alternate)."""
    wanted = {(ref.record_type, ref.record_id, ref.attachment, ref.style) for ref in refs}
    return {
        key
        for key, seeded in migration.manifest.objects.items()
        if (seeded.ref.record_type, seeded.ref.record_id, seeded.ref.attachment, seeded.ref.style)
        in wanted
    }


def report_keys(report: Path, name: str) -> set[str]:
    return {entry["key"] for entry in json.loads(report.read_text())[name]}


def test_acl_none_withholds_exactly_the_private_objects_until_told_to_copy(
    migration: Migration,
    tmp_path: Path,
) -> None:
    # given a suspended account's media in the database
    private = suspend_an_account(migration)
    config, report = migration.config(tmp_path), tmp_path / "report.json"
    destination = migration.destination.client()
    # when copying to a destination that keeps no ACL
    first = run("--config", str(config), "--acl", "none", "--report", str(report))
    # then exactly those objects are withheld, said so, and the run succeeds
    assert first.returncode == 0, first.stderr
    outcome = json.loads(report.read_text())
    assert outcome["withheld"] == len(private)
    assert report_keys(report, "withheld_keys") == {ref.key for ref in private}
    assert f"withheld {len(private):,} objects Mastodon made private" in first.stderr
    assert "--private-objects copy" in first.stderr
    held = stored_keys(migration, private)
    assert held
    for key in held:
        assert "Contents" not in destination.list_objects_v2(
            Bucket=migration.destination_bucket, Prefix=key
        )
    assert outcome["copied"] == len(migration.manifest.objects) - len(held)
    # and --private-objects skip says nothing more than the count
    quiet = run("--config", str(config), "--acl", "none", "--private-objects", "skip")
    assert quiet.returncode == 0, quiet.stderr
    assert "--private-objects copy" not in quiet.stderr
    # when the admin says the destination is not publicly readable
    second = run(
        "--config", str(config), "--acl", "none", "--private-objects", "copy",
        "--report", str(report),
    )  # fmt: skip
    # then they are copied, and nothing else is
    assert second.returncode == 0, second.stderr
    again = json.loads(report.read_text())
    assert (again["copied"], again["withheld"]) == (len(held), 0)
    for key in held:
        destination.head_object(Bucket=migration.destination_bucket, Key=key)


def test_acl_copy_writes_private_what_the_source_leaks_and_reports_it(
    migration: Migration,
    tmp_path: Path,
) -> None:
    # given a suspended account's media that the source serves publicly
    private = suspend_an_account(migration)
    leaked = stored_keys(migration, private)
    assert leaked
    report = tmp_path / "report.json"
    # when copying with each object's ACL
    result = run("--config", str(migration.config(tmp_path)), "--report", str(report))
    # then they are written private and reported; the others keep their ACL
    assert result.returncode == 0, result.stderr
    assert len(report_keys(report, "made_private_keys")) == len(leaked)
    assert f"written private: {len(leaked):,} objects Mastodon made private" in result.stderr
    client = migration.destination.client()
    for key, seeded in migration.manifest.objects.items():
        expected = "private" if key in leaked else seeded.acl
        assert acl_class(client, migration.destination_bucket, key) == expected, key


# -- verify --public-url: what a stranger reads. moto_server enforces object ACLs on anonymous
# requests (a private object answers 403, a public-read one 200), not bucket policies: a
# bucket "without anonymous read" is one whose objects were written with no ACL.


def public_url(migration: Migration) -> str:
    return f"{migration.destination.endpoint_url}/{migration.destination_bucket}"


def test_public_url_passes_where_the_world_reads_public_and_not_private(
    small_migration: Migration,
    tmp_path: Path,
) -> None:
    # given a copy with each object's ACL, a suspended account's media written private
    private = stored_keys(small_migration, suspend_an_account(small_migration))
    config, report = small_migration.config(tmp_path), tmp_path / "verify.json"
    assert run("--config", str(config)).returncode == 0
    # when verified anonymously through the bucket's URL
    args = ("--config", str(config), "--full", "--public-url", public_url(small_migration))
    result = run_cli("verify", *args, "--report", str(report))
    # then it passes, having read every object once (--full): public ones got, private not
    assert result.returncode == 0, result.stderr
    outcome = json.loads(report.read_text())
    objects = len(small_migration.manifest.objects)
    assert outcome["public_checked"] == outcome["public_requests"] == objects
    assert "read anonymously at" in result.stderr
    # when one private object becomes readable by anyone
    leaked = sorted(private)[0]
    destination = small_migration.destination.client()
    destination.put_object_acl(
        Bucket=small_migration.destination_bucket, Key=leaked, ACL="public-read"
    )
    result = run_cli("verify", *args, "--report", str(report))
    # then verify fails on exactly that one: its ACL, and what a stranger reads
    assert result.returncode == 1, result.stderr
    findings = json.loads(report.read_text())["findings"]
    assert {(f["problem"], f["key"]) for f in findings} == {
        ("acl", leaked),
        ("private but readable", leaked),
    }


def test_public_url_fails_on_a_bucket_nobody_may_read(
    migration: Migration,
    tmp_path: Path,
) -> None:
    # given a copy written with no ACL: nothing in the bucket is readable anonymously
    config, report = migration.config(tmp_path), tmp_path / "verify.json"
    assert run("--config", str(config), "--acl", "none").returncode == 0
    # when verified anonymously, on a sample of 20
    result = run_cli("verify",
        "--config", str(config), "--acl", "none", "--sample", "20",
        "--public-url", public_url(migration) + "/", "--report", str(report),
    )  # fmt: skip
    # then every sampled object is "not publicly readable", with the URL tried
    assert result.returncode == 1, result.stderr
    outcome = json.loads(report.read_text())
    assert outcome["problems"]["not publicly readable"] == 20
    assert outcome["public_requests"] == 20
    assert all("HTTP 403 at http://127.0.0.1:" in f["detail"] for f in outcome["findings"])


def test_public_url_must_be_an_http_url(tmp_path: Path) -> None:
    result = run_cli(
        "verify", "--database-url", "postgresql://u@127.0.0.1/db", "--public-url", "cdn.example"
    )
    assert result.returncode == 2
    assert "--public-url" in result.stderr
    assert "Traceback" not in result.stderr
