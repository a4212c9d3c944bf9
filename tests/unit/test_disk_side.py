"""A directory as a side: how it is written in flags and files, the sniffed Content-Type,
and the stack that refuses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import load_stack_config
from mastodon_s3_sync.config.layers import SettingsLayer, resolve
from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.config.values import parse_side
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.storage.content_type import FALLBACK, detect

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(100)


def test_a_side_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_side("s3://media/prefix", "--source") == {
        "bucket": "media",
        "key_prefix": "prefix",
    }
    assert parse_side("file:///srv/mastodon%20media", "--source") == {
        "path": "/srv/mastodon media",
        "key_prefix": "",
    }
    assert parse_side("public/system", "--source") == {
        "path": str(tmp_path / "public/system"),
        "key_prefix": "",
    }
    for wrong in ("https://media.example/x", "file://otherhost/x"):
        with pytest.raises(SettingsError, match="--source"):
            parse_side(wrong, "--source")


def test_a_side_is_a_bucket_or_an_absolute_directory() -> None:
    assert BucketSettings(path="/srv/system").name == "/srv/system"
    with pytest.raises(ValueError, match="not an absolute directory path"):
        BucketSettings(path="system")
    with pytest.raises(ValueError, match="both set"):
        BucketSettings(bucket="media", path="/srv/system")
    with pytest.raises(SettingsError, match=r"\[destination\] bucket"):
        BucketSettings(path="/srv/system").require_bucket("destination")


def test_file_mode_is_octal_owner_readable_and_not_world_writable() -> None:
    given = resolve([SettingsLayer("file", {"destination": {"path": "/srv", "file_mode": "0640"}})])
    assert given.settings.destination is not None
    assert given.settings.destination.file_mode == 0o640
    assert BucketSettings(path="/srv/system", file_mode=0o640).file_mode == 0o640
    assert BucketSettings(path="/srv/system").file_mode is None  # 0644
    for wrong in ("0666", "0044", "rw-r--r--", 644, 0o646):
        with pytest.raises(SettingsError, match=r"\[destination\] file_mode"):
            resolve([SettingsLayer("file", {"destination": {"path": "/srv", "file_mode": wrong}})])


@pytest.mark.parametrize(
    ("head", "key", "expected"),
    [
        (JPEG, "preview_cards/images/000/000/001/original/a.gif", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "media_attachments/files/1/small/a.png", "image/png"),
        (
            b"\x00\x00\x01\x00" + bytes(40),
            "site_uploads/files/1/original/favicon.ico",
            "image/vnd.microsoft.icon",
        ),
        (b"acct,show_reblogs\n", "imports/data/1/original/follows.csv", "text/csv"),
        (b"", "accounts/avatars/1/original/empty", FALLBACK),
    ],
)
def test_content_type_from_bytes_then_name(head: bytes, key: str, expected: str) -> None:
    assert detect(head, key) == expected


def test_the_stack_refuses_a_directory(tmp_path: Path) -> None:
    config = tmp_path / "sync.toml"
    config.write_text(
        '[source]\npath = "/home/mastodon/live/public/system"\n[destination]\nbucket = "new"\n'
        "[stack]\ndatabase_secret_arn = "
        '"arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"\n'
    )
    with pytest.raises(SettingsError, match="a Lambda function cannot read or write"):
        load_stack_config(config)
