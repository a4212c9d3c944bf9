"""Malformed input on every surface: each is a clear error or a safe skip, never a crash.

Enumerator events, queue messages, configuration files and flags, Mastodon's
``.env.production`` and database rows with strange file names. For the rows, whatever is
written lands under the destination prefix, and a key that is no plain storage key is
refused and listed, not copied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import functions.copier.handler as copier_handler
import functions.enumerator.handler as enumerator_handler
from mastodon_s3_sync import cli
from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import AclMode, BucketSettings, CopySettings
from mastodon_s3_sync.copying.copier import Copier
from mastodon_s3_sync.copying.results import CopyOptions
from mastodon_s3_sync.demo.media import create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import MotoS3Server
from mastodon_s3_sync.mastodon.layout import (
    ObjectRef,
    RecordType,
    objects_for_row,
    unsafe_key_reason,
)
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.storage.s3 import Bucket, make_client
from mastodon_s3_sync.transport.lambda_edge import EventError, parse_enumerator_event
from mastodon_s3_sync.transport.messages import MessageError, decode
from tests.events.factory import FakeLambdaContext, sqs_event_for_bodies
from tests.support.mastodon_db import MastodonDb
from tests.support.processes import run_cli
from tests.support.s3_servers import BucketNames

MakeDb = Callable[..., MastodonDb]
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
DESTINATION_PREFIX = "migrated"

# -- enumerator events ---------------------------------------------------------------------

BAD_EVENTS: dict[str, Any] = {
    "not an object": ["accounts"],
    "a string": "accounts",
    "null": None,
    "no type": {},
    "unknown type": {"type": "statuses"},
    "type not a string": {"type": 7},
    "empty type list": {"type": []},
    "unknown field": {"type": "accounts", "drop_table": True},
    "since not a string": {"type": "all", "since": 36},
    "since gibberish": {"type": "all", "since": "yesterday-ish"},
    "after_id a float": {"type": "accounts", "after_id": 1.5},
    "after_id words": {"type": "accounts", "after_id": "one"},
    "after_id two minus signs": {"type": "accounts", "after_id": "--1"},
    "after_id a superscript digit": {"type": "accounts", "after_id": "\u00b2"},
    "limit zero": {"type": "accounts", "limit": 0},
    "limit a boolean": {"type": "accounts", "limit": True},
    "dry_run a string": {"type": "accounts", "dry_run": "yes"},
    "run_id too long": {"type": "accounts", "run_id": "r" * 129},
    "run_id a number": {"type": "accounts", "run_id": 12},
    "run_id without its start time": {"type": "accounts", "run_id": "my-run"},
}


@pytest.mark.parametrize("event", BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
def test_bad_enumerator_events_are_refused_with_a_reason(event: Any) -> None:
    with pytest.raises(EventError) as refused:
        parse_enumerator_event(event, NOW)
    assert str(refused.value)
    # the handler answers the same, without touching the database or the queue
    answer = enumerator_handler.handler(event, FakeLambdaContext().as_lambda_context())
    assert answer == {"ok": False, "error": str(refused.value)}


# -- queue messages ------------------------------------------------------------------------


def message(**changes: Any) -> str:
    """A valid message body with some fields changed (a value of ... removes the field)."""
    item: dict[str, Any] = {
        "key": "media_attachments/files/000/000/001/original/a.png",
        "alternates": [],
        "size": 10,
        "id": "1",
        "attachment": "file",
        "style": "original",
    }
    document: dict[str, Any] = {"version": 1, "run_id": "r1", "type": "media_attachments"}
    for name, value in changes.items():
        target = item if name in item else document
        if value is ...:
            target.pop(name, None)
        else:
            target[name] = value
    document.setdefault("objects", [item])
    return json.dumps(document)


BAD_MESSAGES: dict[str, str | bytes] = {
    "not JSON": "{version: 1",
    "non-UTF-8 bytes": b'{"version": 1, "run_id": "\xff\xfe"}',
    "JSON array": "[1, 2]",
    "empty": "",
    "version 2": message(version=2),
    "version as a string": message(version="1"),
    "no version": message(version=...),
    "empty run_id": message(run_id=""),
    "huge run_id": message(run_id="r" * 10_000),
    "unknown type": message(type="statuses"),
    "no objects": message(objects=[]),
    "too many objects": message(objects=[json.loads(message())["objects"][0]] * 101),
    "object not a mapping": message(objects=["a.png"]),
    "key with ..": message(key="media_attachments/../../etc/passwd"),
    "key is ..": message(key=".."),
    "absolute key": message(key="/etc/passwd"),
    "key with NUL": message(key="media/a\u0000.png"),
    "key with a lone surrogate": message(key="media/\ud800.png"),
    "key too long": message(key="k" * 1025),
    "key not a string": message(key=["a"]),
    "alternate with ..": message(alternates=["cache/../../x"]),
    "alternates not a list": message(alternates="cache/a.png"),
    "negative size": message(size=-1),
    "size a boolean": message(size=True),
    "id not digits": message(id="1; DROP TABLE"),
    "id a number": message(id=1),
    "id with two minus signs": message(id="--1"),
    "id a superscript digit": message(id="\u00b2"),
    "no style": message(style=...),
    "huge body": message(run_id="r1", objects=[{"key": "k" * 300_000}]),
}


@pytest.mark.parametrize("body", BAD_MESSAGES.values(), ids=BAD_MESSAGES.keys())
def test_bad_messages_fail_alone_with_a_reason(body: str | bytes) -> None:
    with pytest.raises(MessageError) as refused:
        decode(body)
    assert str(refused.value)
    if isinstance(body, bytes):
        return  # SQS bodies are text: Lambda cannot deliver these bytes
    # the copier handler reports just that message failed (SQS retries it, then the DLQ)
    good_id = "good"
    event = sqs_event_for_bodies([body])
    event["Records"][0]["messageId"] = good_id
    answer = copier_handler.handler(event, FakeLambdaContext().as_lambda_context())
    assert answer == {"batchItemFailures": [{"itemIdentifier": good_id}]}


# -- configuration files and flags -------------------------------------------------------

VALID_CONFIG = """\
[database]
url = "postgresql://mastodon@127.0.0.1:9/mastodon"

[source]
bucket = "old-media"
endpoint_url = "http://127.0.0.1:9"

[destination]
bucket = "new-media"
endpoint_url = "http://127.0.0.1:9"
"""


@dataclass(frozen=True)
class BadConfig:
    """A config file (text or bytes, None: the valid one), extra flags, and what the error
    must name."""

    text: str | bytes | None
    flags: tuple[str, ...]
    names: str


BAD_CONFIGS: dict[str, BadConfig] = {
    "TOML syntax": BadConfig('[database\nurl = "x"', (), "sync.toml"),
    "not UTF-8": BadConfig(b"[database]\nurl = '\xff'\n", (), "sync.toml"),
    "unknown section": BadConfig(VALID_CONFIG + "[sorce]\nbucket = 'x'\n", (), "sorce"),
    "unknown key": BadConfig(VALID_CONFIG.replace("bucket =", "buckett =", 1), (), "buckett"),
    "workers a string": BadConfig(VALID_CONFIG + '[copy]\nworkers = "many"\n', (), "workers"),
    "workers zero": BadConfig(VALID_CONFIG + "[copy]\nworkers = 0\n", (), "workers"),
    "acl unknown": BadConfig(VALID_CONFIG + '[copy]\nacl = "public"\n', (), "acl"),
    "endpoint ftp": BadConfig(VALID_CONFIG.replace("http://127", "ftp://127", 1), (), "endpoint"),
    "database url scheme": BadConfig(
        VALID_CONFIG.replace("postgresql://", "mysql://", 1), (), "url"
    ),
    "database port words": BadConfig(VALID_CONFIG.replace(":9/", ":nine/", 1), (), "Port"),
    "config missing": BadConfig(None, ("--config", "/nonexistent/sync.toml"), "sync.toml"),
    "config a directory": BadConfig(None, ("--config", "/"), "/"),
    "--since gibberish": BadConfig(None, ("--since", "yesterday-ish"), "--since"),
    "--type unknown": BadConfig(None, ("--type", "statuses"), "--type"),
    "--source not s3://": BadConfig(None, ("--source", "http://bucket"), "--source"),
    "--page-size too large": BadConfig(None, ("--page-size", "10000000"), "--page-size"),
    "--workers too many": BadConfig(None, ("--workers", "100000"), "--workers"),
    "--database-url malformed": BadConfig(None, ("--database-url", "postgres://:@:x/"), "url"),
    "--destination-endpoint-url no scheme": BadConfig(
        None, ("--destination-endpoint-url", "s3.example.com"), "--destination-endpoint-url"
    ),
}
BAD_FLAGS_FOR_ARGPARSE: dict[str, tuple[str, ...]] = {
    "--workers zero": ("--workers", "0"),
    "--limit zero": ("--limit", "0"),
    "--after-id words": ("--after-id", "one"),
    "--acl unknown": ("--acl", "public"),
}


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status and stderr of the CLI, in this process."""
    try:
        status = cli.main(argv)
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    return status, capsys.readouterr().err


@pytest.mark.parametrize("case", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_configuration_is_a_settings_error_naming_it(
    case: BadConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sync.toml"
    text = VALID_CONFIG if case.text is None else case.text
    if isinstance(text, bytes):
        config.write_bytes(text)
    else:
        config.write_text(text)
    argv = ["run", "--config", str(config), *case.flags]
    status, stderr = run_main(argv, capsys)
    assert status == 2, stderr
    assert stderr.startswith("mastodon-s3-sync: error: "), stderr
    assert case.names in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("flags", BAD_FLAGS_FOR_ARGPARSE.values(), ids=BAD_FLAGS_FOR_ARGPARSE)
def test_bad_flags_are_usage_errors(
    flags: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    status, stderr = run_main(["run", "--database-url", "postgresql://u@h/db", *flags], capsys)
    assert status == 2
    assert flags[0] in stderr
    assert "Traceback" not in stderr


# -- .env.production oddities ------------------------------------------------------------

BAD_DOTENV: dict[str, str] = {
    "unclosed quote": 'DB_HOST="db.example\nDB_NAME=mastodon\n',
    "port words": "DB_HOST=db.example\nDB_PORT=fivefourthreetwo\n",
    "S3 enabled without bucket": "S3_ENABLED=true\nS3_REGION=eu-west-1\n",
    "line without =": "DB_HOST db.example\n",
}


@pytest.mark.parametrize("text", BAD_DOTENV.values(), ids=BAD_DOTENV.keys())
def test_bad_mastodon_env_is_a_settings_error(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / ".env.production"
    env.write_text(text)
    status, stderr = run_main(["plan", "--mastodon-env", str(env)], capsys)
    assert status == 2, stderr
    assert stderr.startswith("mastodon-s3-sync: error: "), stderr
    assert "Traceback" not in stderr


# -- database rows with strange file names -----------------------------------------------

STRANGE_FILE_NAMES: dict[str, str] = {
    "parent segments": "../../../etc/passwd.png",
    "just ..": "..",
    "a slash": "sub/dir.png",
    "leading slash": "/abs.png",
    "NUL": "a\u0000b.png",
    "dot segment": "./a.png",
    "cyrillic": "фото.png",
    "emoji": "🐘.png",
    "backslashes": "..\\..\\win.png",
    "percent-encoded dots": "%2e%2e%2fx.png",
    "newline": "line\nbreak.png",
    "very long": "x" * 2000 + ".png",
    "only an extension": ".png",
    "spaces": "  spaced out .png",
}


def strange_refs() -> Iterator[tuple[str, ObjectRef]]:
    for label, name in STRANGE_FILE_NAMES.items():
        row = {
            "id": 7,
            "file_file_name": name,
            "file_content_type": "image/png",
            "file_file_size": 100,
            "remote_url": None,
        }
        for ref in objects_for_row(RecordType.MEDIA_ATTACHMENTS, row):
            yield label, ref


def test_strange_file_names_never_address_outside_the_destination_prefix() -> None:
    # a copier whose provider is unreachable: a refused key must not even be tried
    unreachable = BucketSettings(
        bucket="nowhere",
        endpoint_url="http://127.0.0.1:9",
        region="us-east-1",
        access_key_id="k",
        secret_access_key="s",
        addressing_style="path",
    )
    client = make_client(unreachable, 1, attempts=1)
    copier = Copier(
        Bucket(client, "nowhere", "", "source"),
        Bucket(client, "nowhere", DESTINATION_PREFIX, "destination"),
        CopyOptions(CopySettings(acl=AclMode.NONE)),
    )
    refused = 0
    for label, ref in strange_refs():
        reason = unsafe_key_reason(ref.key)
        if reason is not None:
            result = copier.copy_or_fail(ref)
            assert result.outcome is Outcome.FAILED, label
            assert result.reason.startswith("refused key"), (label, result.reason)
            refused += 1
            continue
        destination = copier.destination_key(ref.key)
        assert destination.startswith(DESTINATION_PREFIX + "/"), label
        assert ".." not in destination.split("/"), label
        assert unsafe_key_reason(destination) is None, label
    assert refused >= 5


@pytest.mark.integration
def test_run_copies_strange_but_safe_names_and_lists_the_refused_ones(
    mastodon_db: MakeDb,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given rows with every strange file name, their objects at the source
    db = mastodon_db()
    for media_id, name in enumerate(STRANGE_FILE_NAMES.values(), start=1):
        db.conn.run(
            "INSERT INTO media_attachments (id, type, file_file_name, file_content_type, "
            "file_file_size, created_at, updated_at) VALUES (:id, 0, :name, 'image/png', "
            "100, :now, :now)",
            id=media_id,
            name=name.replace("\u0000", ""),  # PostgreSQL text cannot hold NUL
            now=datetime(2026, 1, 1),
        )
    rows = db.conn.run("SELECT id, file_file_name FROM media_attachments ORDER BY id")
    refs = [
        ref
        for media_id, name in rows or []
        for ref in objects_for_row(
            RecordType.MEDIA_ATTACHMENTS,
            {"id": media_id, "file_file_name": name, "file_content_type": "image/png"},
        )
    ]
    safe = [ref for ref in refs if unsafe_key_reason(ref.key) is None]
    unsafe = [ref for ref in refs if unsafe_key_reason(ref.key) is not None]
    source, destination = moto_servers
    source_bucket, destination_bucket = fresh_bucket_name(), fresh_bucket_name()
    create_bucket(source.client(), source_bucket)
    create_bucket(destination.client(), destination_bucket)
    seed_bucket(source.client(), source_bucket, safe)
    config = tmp_path / "sync.toml"
    config.write_text(
        config_toml(
            db.url,
            source.bucket_settings(source_bucket),
            destination.bucket_settings(destination_bucket, DESTINATION_PREFIX),
        )
    )
    report_path = tmp_path / "report.json"
    report = ("--report", str(report_path))
    # when
    result = run_cli("run", "--config", str(config), *report)
    # then the safe ones are copied under the prefix, the others listed as refused
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    outcome = json.loads(report_path.read_text())
    assert outcome["copied"] == len(safe)
    failed = {entry["key"]: entry["reason"] for entry in outcome["failed_keys"]}
    assert set(failed) == {ref.key for ref in unsafe}
    assert all(reason.startswith("refused key") for reason in failed.values())
    listing = destination.client().list_objects_v2(Bucket=destination_bucket)
    keys = [item["Key"] for item in listing.get("Contents", [])]
    assert len(keys) == len(safe)
    for key in keys:
        assert key.startswith(DESTINATION_PREFIX + "/")
        assert unsafe_key_reason(key) is None
