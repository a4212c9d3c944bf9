"""Settings: the config file, URLs and times, and errors that name the setting."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mastodon_s3_sync.config.layers import config_toml, load_config
from mastodon_s3_sync.config.settings import (
    MIB,
    AclMode,
    BucketSettings,
    CopySettings,
    DatabaseSettings,
)
from mastodon_s3_sync.config.values import parse_database_url, parse_s3_url, parse_since
from mastodon_s3_sync.errors import SettingsError


def test_database_url_parts() -> None:
    settings = parse_database_url(
        "postgresql://ma%40st:p%2Fw@db.example:6432/mastodon?sslmode=require"
    )
    assert settings == DatabaseSettings(
        name="mastodon",
        user="ma@st",
        host="db.example",
        port=6432,
        password="p/w",
        sslmode="require",
    )
    assert settings.unix_socket is None
    assert "p/w" not in repr(settings)


def test_unix_socket_host() -> None:
    settings = parse_database_url(
        "postgres://mastodon@/mastodon_production?host=/var/run/postgresql"
    )
    assert settings.unix_socket == "/var/run/postgresql/.s.PGSQL.5432"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:p@h/db", "unsupported scheme mysql://"),
        ("postgresql://u:p@h:99999/db", "not a valid URL"),
        ("postgresql://u:p@h/", "no database name"),
        ("postgresql://h/db", "no user"),
        ("postgresql://u@h/db?sslmode=prefer", "unknown sslmode 'prefer'"),
        ("postgresql://u@h/db?connect_timeout=3", "unsupported parameter(s) connect_timeout"),
        ("localhost:5432", "unsupported scheme"),
    ],
)
def test_bad_database_urls(url: str, message: str) -> None:
    with pytest.raises(SettingsError, match="--database-url") as raised:
        parse_database_url(url)
    assert message in str(raised.value)
    assert ":p@" not in str(raised.value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sync.toml"
    path.write_text(text)
    return path


def test_full_config_file(tmp_path: Path) -> None:
    settings = load_config(
        write(
            tmp_path,
            """
[database]
host = "/var/run/postgresql"
name = "mastodon_production"
user = "mastodon"
page_size = 1000

[source]
bucket = "old"
key_prefix = "mastodon"
endpoint_url = "https://s3.wasabisys.com"

[destination]
bucket = "new"
addressing_style = "path"

[copy]
acl = "none"
workers = 32
""",
        )
    )
    assert settings.database is not None
    assert settings.database.unix_socket == "/var/run/postgresql/.s.PGSQL.5432"
    assert settings.database.page_size == 1000
    assert settings.source is not None
    assert settings.source.key_prefix == "mastodon"
    assert settings.destination is not None
    assert settings.destination.addressing_style == "path"
    assert (settings.copy.acl, settings.copy.workers) == ("none", 32)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[databse]\nurl = 'x'", "unknown section [databse]"),
        (
            "[database]\nurl = 'postgresql://u@h/d'\npasword = 'x'",
            "unknown key(s) in [database]: pasword",
        ),
        ("[database]\nuser = 'u'", "[database] name is missing"),
        (
            "[database]\nurl = 'postgresql://u@h/d'\nname = 'd'",
            "[database] url and [database] name",
        ),
        ("[database]\nurl = 'postgresql://u@h/d'\nport = 'abc'", "[database] port"),
        ("[database]\nurl = 'postgresql://u@h/d'\npage_size = 0", "[database] page_size"),
        ("[source]\nkey_prefix = 'm'", "[source] bucket is missing"),
        ("[source]\nbucket = 'b'\nendpoint_url = 's3.example.com'", "[source] endpoint_url"),
        ("[source]\nbucket = 'b'\naddressing_style = 'dns'", "[source] addressing_style"),
        ("[source]\nbucket = 'b'\naccess_key_id = 'k'", "must be set together"),
        ("[destination]\nbucket = 1", "[destination] bucket: expected a string"),
        ("[copy]\nacl = 'public'", "[copy] acl"),
        ("[copy]\nworkers = 0", "[copy] workers"),
        ("[copy]\npart_size_mib = 4", "[copy] part_size_mib"),
        ("database = 1", "must be a [database] table"),
        ("[database\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_setting(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_config(write(tmp_path, text))
    assert message in str(raised.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_s3_urls() -> None:
    assert parse_s3_url("s3://media", "--source") == ("media", "")
    assert parse_s3_url("s3://media/mastodon", "--source") == ("media", "mastodon")
    with pytest.raises(SettingsError, match="--destination"):
        parse_s3_url("https://media", "--destination")
    with pytest.raises(SettingsError, match="not a bucket name"):
        parse_s3_url("s3:///x", "--source")


NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1)),
        ("2026-11-01T12:00:00Z", datetime(2026, 11, 1, 12)),
        ("2026-11-01T12:00:00+01:00", datetime(2026, 11, 1, 11)),
        ("36h", datetime(2026, 11, 26, 0)),
        ("7d", datetime(2026, 11, 20, 12)),
        ("90m", datetime(2026, 11, 27, 10, 30)),
        ("2w", datetime(2026, 11, 13, 12)),
    ],
)
def test_since(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


def test_since_refuses_nonsense() -> None:
    with pytest.raises(SettingsError, match="--since"):
        parse_since("yesterday", NOW)


def test_config_toml_reads_back_as_the_same_settings(tmp_path: Path) -> None:
    source = BucketSettings(
        bucket="old",
        key_prefix='odd "prefix"/é',
        endpoint_url="http://127.0.0.1:9000",
        region="us-east-1",
        access_key_id="AK",
        secret_access_key="S\\K",
        addressing_style="path",
    )
    destination = BucketSettings(bucket="new")
    copy = CopySettings(
        acl=AclMode.NONE, workers=4, multipart_threshold_bytes=8 * MIB, part_size_bytes=8 * MIB
    )
    url = "postgresql://mastodon:pw@127.0.0.1:5432/mastodon"
    settings = load_config(write(tmp_path, config_toml(url, source, destination, copy)))
    assert (settings.source, settings.destination, settings.copy) == (source, destination, copy)
    assert settings.database == parse_database_url(url)
