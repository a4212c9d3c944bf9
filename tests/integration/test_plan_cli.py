"""``mastodon-s3-sync plan`` end to end: a real cluster, a generated Mastodon, the real CLI."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from mastodon_s3_sync.demo.loader import insert_rows
from mastodon_s3_sync.demo.schema import SchemaVersion
from mastodon_s3_sync.demo.seed import generate_rows
from tests.support.mastodon_db import MastodonDb
from tests.support.processes import run_cli

pytestmark = pytest.mark.integration

MakeDb = Callable[..., MastodonDb]
TABLES = ("accounts", "media_attachments", "custom_emojis", "preview_cards")
COUNTS = {"accounts": 800, "media_attachments": 3000, "custom_emojis": 300, "preview_cards": 900}


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# An independent statement of Mastodon's layout, written from the spec's prose and
# deliberately not sharing code with mastodon_s3_sync.mastodon.layout.
def partition(record_id: int) -> str:
    width = 9 if record_id < 10**9 else 12
    digits = str(abs(record_id)).zfill(width - (record_id < 0))  # a sign takes one place
    return "/".join(digits[i : i + 3] for i in range(0, len(digits) // 3 * 3, 3))


def present(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def small_name(file_name: str, extension: str | None) -> str:
    stem, ext = os.path.splitext(file_name)
    ext = extension or ext.lstrip(".")
    return f"{stem}.{ext}" if ext else stem


def expected_keys(table: str, row: dict[str, Any]) -> Iterable[str]:
    if table == "accounts":
        attachments = [("avatar", "avatars"), ("header", "headers")]
        remote = row.get("domain") is not None
    elif table == "media_attachments":
        attachments = [("file", "files"), ("thumbnail", "thumbnails")]
        remote = present(row.get("remote_url"))
    else:
        attachments = [("image", "images")]
        remote = table == "preview_cards" or row.get("domain") is not None
    for name, plural in attachments:
        file_name = row.get(f"{name}_file_name")
        if not present(file_name):
            continue
        assert isinstance(file_name, str)
        content_type = row.get(f"{name}_content_type")
        cache = "cache/" if remote and (row.get(f"{name}_storage_schema_version") or 0) >= 1 else ""
        base = f"{cache}{table}/{plural}/{partition(int(row['id']))}"
        yield f"{base}/original/{file_name}"
        if table == "custom_emojis" or (table == "accounts" and content_type == "image/gif"):
            yield f"{base}/static/{small_name(file_name, 'png')}"
        if name == "file":
            if content_type in (
                "image/gif",
                "video/mp4",
                "video/quicktime",
                "video/webm",
                "video/ogg",
            ):
                yield f"{base}/small/{small_name(file_name, 'png')}"
            elif content_type in ("image/heic", "image/heif"):
                yield f"{base}/small/{small_name(file_name, 'jpeg')}"
            elif content_type in ("image/jpeg", "image/png", "image/webp", "image/avif"):
                yield f"{base}/small/{small_name(file_name, None)}"


@pytest.fixture(scope="module")
def generated() -> dict[str, list[dict[str, Any]]]:
    return {
        table: list(generate_rows(table, COUNTS[table], seed=7, version=SchemaVersion.CURRENT))
        for table in TABLES
    }


def seed(db: MastodonDb, rows: dict[str, list[dict[str, Any]]], version: SchemaVersion) -> None:
    for table in TABLES:
        insert_rows(db.conn, table, iter(rows[table]), version)


def test_plan_prints_exactly_the_keys_mastodon_wrote(
    mastodon_db: MakeDb, generated: dict[str, list[dict[str, Any]]]
) -> None:
    # given a generated Mastodon database the planner has never seen
    db = mastodon_db()
    seed(db, generated, SchemaVersion.CURRENT)
    expected = [
        key
        for table in TABLES
        for row in sorted(generated[table], key=lambda r: int(r["id"]))
        for key in expected_keys(table, row)
    ]
    # when
    result = run_cli("plan", "--database-url", db.url, "--page-size", "700")
    # then
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    assert len(expected) > 5000
    assert printed == expected
    assert "media_attachments" in result.stderr


def test_plan_summary_counts(
    mastodon_db: MakeDb, generated: dict[str, list[dict[str, Any]]]
) -> None:
    db = mastodon_db()
    seed(db, generated, SchemaVersion.CURRENT)
    result = run_cli("plan", "--database-url", db.url, "--type", "media_attachments", "--summary")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    rows = [
        r for r in generated["media_attachments"] if list(expected_keys("media_attachments", r))
    ]
    objects = sum(len(list(expected_keys("media_attachments", r))) for r in rows)
    line = next(x for x in result.stderr.splitlines() if x.startswith("media_attachments"))
    fields = line.split()
    assert int(fields[1].replace(",", "")) == len(rows)
    assert int(fields[2].replace(",", "")) == objects
    assert fields[6] == str(max(int(r["id"]) for r in rows))


def test_plan_reads_the_database_from_the_config_file(mastodon_db: MakeDb, tmp_path: Path) -> None:
    db = mastodon_db()
    insert_rows(
        db.conn, "custom_emojis", generate_rows("custom_emojis", 10, seed=1), SchemaVersion.CURRENT
    )
    config = tmp_path / "sync.toml"
    config.write_text(
        f'[database]\nurl = "{db.url}"\npage_size = 3\n\n[source]\nbucket = "b"\nkey_prefix = "m"\n'
    )
    result = run_cli("plan", "--config", str(config), "--type", "custom_emojis")
    assert result.returncode == 0, result.stderr
    assert result.stdout
    assert all(key.startswith("m/") for key in result.stdout.splitlines())


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_bad_url_is_a_one_line_error() -> None:
    result = run_cli("plan", "--database-url", "mysql://u:secret@h/db")
    assert result.returncode == 2
    line = one_line_error(result)
    assert "postgresql://USER:PASSWORD@HOST:PORT/DATABASE" in line
    assert "secret" not in line


def test_unreachable_database_is_a_one_line_error(unused_port: int) -> None:
    result = run_cli(
        "plan", "--database-url", f"postgresql://u:pw@127.0.0.1:{unused_port}/mastodon"
    )
    assert result.returncode == 3
    assert re.search(
        r"cannot connect to PostgreSQL at u@127\.0\.0\.1:\d+/mastodon", one_line_error(result)
    )


def test_wrong_password_names_the_setting_and_hides_the_password(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    wrong = re.sub(r":[^:@/]+@", ":not-the-password@", db.url)
    result = run_cli("plan", "--database-url", wrong)
    assert result.returncode == 3
    line = one_line_error(result)
    assert "password" in line
    assert "not-the-password" not in line


def test_database_without_mastodon_tables(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    db.conn.run("DROP TABLE accounts")
    result = run_cli("plan", "--database-url", db.url)
    assert result.returncode == 3
    assert "no table accounts" in one_line_error(result)
    assert result.stdout == ""


def test_unknown_type_is_refused() -> None:
    result = run_cli("plan", "--database-url", "postgresql://u@h/db", "--type", "statuses")
    assert result.returncode == 2
    assert "unknown type 'statuses'" in one_line_error(result)
