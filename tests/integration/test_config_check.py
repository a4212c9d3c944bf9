"""``config check`` against a real PostgreSQL and two moto_server providers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mastodon_s3_sync.cli import main
from mastodon_s3_sync.demo.media import create_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.s3servers import MotoS3Server
from tests.support.mastodon_db import MastodonDb, MastodonDbFactory
from tests.support.migration import Migration, prepare
from tests.support.s3_servers import BucketNames

pytestmark = pytest.mark.integration

SOURCE_SECRET = "src-Secret-Key-7f3a9c1e5b"
DESTINATION_SECRET = "dst-Secret-Key-2d8e4b6a0c"
WRONG_PASSWORD = "not-the-Password-91ab"


def write_env(
    path: Path, postgres: LocalPostgres, db: MastodonDb, bucket: str, endpoint: str, password: str
) -> Path:
    path.write_text(
        "# written by the test, like Mastodon's setup wizard would\r\n"
        f"DB_HOST={postgres.host}\r\nDB_PORT={postgres.port}\r\nDB_NAME={db.name}\r\n"
        f'DB_USER={postgres.user}\r\nDB_PASS="{password}"\r\n'
        f"S3_ENABLED=true\r\nS3_BUCKET={bucket}\r\nS3_ENDPOINT={endpoint}\r\n"
        f"AWS_ACCESS_KEY_ID=AKIDSOURCE\r\nAWS_SECRET_ACCESS_KEY={SOURCE_SECRET}\r\n",
    )
    return path


def write_config(path: Path, env: Path, bucket: str, endpoint: str) -> Path:
    path.write_text(
        f'mastodon_env = "{env.name}"\n\n[destination]\nbucket = "{bucket}"\n'
        f'endpoint_url = "{endpoint}"\nregion = "us-east-1"\naddressing_style = "path"\n'
        f'access_key_id = "AKIDDEST"\nsecret_access_key = "{DESTINATION_SECRET}"\n'
    )
    return path


Run = Callable[..., tuple[int, str]]


@pytest.fixture
def check(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*args: str) -> tuple[int, str]:
        status = main(["config", "check", *args])
        captured = capsys.readouterr()
        return status, captured.out + captured.err

    return run


@pytest.fixture
def setup(
    tmp_path: Path,
    postgres: LocalPostgres,
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
) -> Callable[..., Path]:
    """Buckets on both providers, a Mastodon database, its .env and a config file."""
    old, new = moto_servers
    db = mastodon_db()
    source, destination = fresh_bucket_name(), fresh_bucket_name()
    old.client().create_bucket(Bucket=source)
    old.client().put_object(Bucket=source, Key="accounts/avatars/a.png", Body=b"x", ACL="private")
    new.client().create_bucket(Bucket=destination)

    def make(password: str | None = None, destination_bucket: str = destination) -> Path:
        env = write_env(
            tmp_path / ".env.production",
            postgres,
            db,
            source,
            old.endpoint_url,
            password or postgres.password,
        )
        return write_config(tmp_path / "sync.toml", env, destination_bucket, new.endpoint_url)

    return make


def assert_no_secret(output: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in output


def test_all_ok(setup: Callable[..., Path], check: Run, postgres: LocalPostgres) -> None:
    status, output = check("--config", str(setup()))
    assert status == 0, output
    lines = output.splitlines()
    assert any(line.startswith("OK   database: ") and "tables accounts" in line for line in lines)
    assert any(
        line.startswith("OK   source ACLs: ") and "object ACLs readable" in line for line in lines
    )
    assert any(line.startswith("OK   destination bucket: ") for line in lines)
    assert any(
        line.startswith("OK   destination write: ") and "keeps ACL public-read" in line
        for line in lines
    )
    assert any(line.startswith("OK   source objects: ") for line in lines)
    assert "all checks passed" in output
    # origins are shown, secrets only as a mask with their length
    assert ".env.production DB_PASS" in output
    assert f"**** ({len(SOURCE_SECRET)} chars)" in output
    assert_no_secret(output, postgres.password, SOURCE_SECRET, DESTINATION_SECRET)


def test_wrong_database_password(
    setup: Callable[..., Path], check: Run, postgres: LocalPostgres
) -> None:
    status, output = check("--config", str(setup(password=WRONG_PASSWORD)))
    assert status == 3
    assert any(
        line.startswith("FAIL database: ") and "password" in line for line in output.splitlines()
    )
    assert "OK   destination bucket" in output  # the other checks still run
    assert_no_secret(output, WRONG_PASSWORD, postgres.password, SOURCE_SECRET, DESTINATION_SECRET)


def test_missing_bucket(setup: Callable[..., Path], check: Run, postgres: LocalPostgres) -> None:
    status, output = check("--config", str(setup(destination_bucket="no-such-bucket-here")))
    assert status == 2
    assert any(
        line.startswith("FAIL destination bucket: ") and "does not exist" in line
        for line in output.splitlines()
    )
    assert_no_secret(output, postgres.password, SOURCE_SECRET, DESTINATION_SECRET)


def test_flags_win_and_require_tls_fails_on_a_plain_server(
    setup: Callable[..., Path], check: Run, postgres: LocalPostgres
) -> None:
    config = setup()
    url = f"{postgres.url('postgres')}?sslmode=require"
    status, output = check("--config", str(config), "--database-url", url, "--acl", "none")
    assert status == 3
    assert "sslmode                  require" in output
    assert "<- --database-url" in output
    assert any(
        line.startswith("FAIL database: ") and "does not offer TLS" in line
        for line in output.splitlines()
    )
    assert "object ACLs" not in output  # acl none: no ACL is read
    assert_no_secret(output, postgres.password, SOURCE_SECRET, DESTINATION_SECRET)


def line_of(output: str, start: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith(start)]
    return line


def test_source_objects_found_in_the_sandbox(
    migration: Migration,
    tmp_path: Path,
    check: Run,
) -> None:
    # given a seeded database and the source bucket holding its objects
    # when
    status, output = check("--config", str(migration.config(tmp_path)))
    # then the preflight's look at the source is its own check, and it passes
    assert status == 0, output
    assert "referenced objects at the source" in line_of(output, "OK   source objects: ")


def test_source_objects_fail_on_an_empty_source_bucket(
    mastodon_db: MastodonDbFactory,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
    check: Run,
) -> None:
    # given a source bucket that answers but holds nothing (a wrong bucket or key prefix)
    migration = prepare(mastodon_db, moto_servers, fresh_bucket_name)
    empty = fresh_bucket_name()
    create_bucket(migration.source.client(), empty)
    migration.source_bucket = empty
    # when
    status, output = check("--config", str(migration.config(tmp_path)))
    # then only that check fails, naming the bucket and its key prefix
    assert status == 2, output
    assert line_of(output, "OK   source bucket: ")
    line = line_of(output, "FAIL source objects: ")
    assert f"source bucket {empty!r}" in line, line
    assert "key prefix" in line, line
    assert "some checks failed" in output


def test_source_objects_skipped_without_a_database(
    setup: Callable[..., Path], check: Run, postgres: LocalPostgres
) -> None:
    status, output = check("--config", str(setup(password=WRONG_PASSWORD)))
    assert status == 3
    assert "needs the database" in line_of(output, "SKIP source objects: ")
