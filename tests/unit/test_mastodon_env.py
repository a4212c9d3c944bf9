"""Mastodon's .env.production: dotenv syntax, Mastodon's defaults, and layering under flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from mastodon_s3_sync.config.layers import SettingsLayer, resolve
from mastodon_s3_sync.config.mastodon_env import (
    load_settings,
    mastodon_layer,
    parse_dotenv,
    public_url,
)
from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.errors import SettingsError

NO_FLAGS = SettingsLayer("flags", {})


def env_file(tmp_path: Path, text: str | bytes, name: str = ".env.production") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_dotenv_syntax(tmp_path: Path) -> None:
    path = env_file(
        tmp_path,
        "# Mastodon\n"
        "\n"
        "PLAIN=value\n"
        "export EXPORTED=yes\n"
        "  SPACED = around  \n"
        "INLINE=abc # a comment\n"
        "HASH=abc#def\n"
        'DOUBLE="a \\"quoted\\" #not-a-comment\\nline $PLAIN ${PLAIN} \\$PLAIN" # comment\n'
        "EMPTY=\n"
        "EMPTY_QUOTED=''\n"
        "UNQUOTED_VAR=$PLAIN-x\n"
        'MULTI="first\nsecond"\n'
        "COLON: value\n"
        "DUP=first\n"
        "DUP=last\n",
    )
    # given a file with each syntax, when read, then values are what the dotenv gem gives
    assert parse_dotenv(path) == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SPACED": "around",
        "INLINE": "abc",
        "HASH": "abc",
        "DOUBLE": 'a "quoted" #not-a-comment\nline value value $PLAIN',
        "EMPTY": "",
        "EMPTY_QUOTED": "",
        "UNQUOTED_VAR": "value-x",
        "MULTI": "first\nsecond",
        "COLON": "value",
        "DUP": "last",
    }


def test_single_quotes_are_literal(tmp_path: Path) -> None:
    path = env_file(tmp_path, "A=x\nB='$A \\n \"q\"' # c\n")
    assert parse_dotenv(path)["B"] == '$A \\n "q"'


def test_crlf_and_bom(tmp_path: Path) -> None:
    path = env_file(tmp_path, b'\xef\xbb\xbfDB_HOST=db\r\nDB_PASS="p w"\r\nS3_BUCKET=b\r\n')
    assert parse_dotenv(path) == {"DB_HOST": "db", "DB_PASS": "p w", "S3_BUCKET": "b"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GOOD=1\nthis is not an assignment topsecret\n", r":2: not a KEY=VALUE line"),
        ('DB_PASS="topsecret\n', r":1: DB_PASS: the \" quote is never closed"),
        ("DB_PASS='topsecret' trailing\n", r":1: DB_PASS: unexpected text after"),
        ("1KEY=topsecret\n", r":1: not a KEY=VALUE"),
        ("export\n", r":1: not a KEY=VALUE"),
    ],
)
def test_bad_lines_name_file_and_line_without_the_value(
    tmp_path: Path, text: str, message: str
) -> None:
    path = env_file(tmp_path, text)
    with pytest.raises(SettingsError, match=message) as raised:
        parse_dotenv(path)
    assert str(path) in str(raised.value)
    assert "topsecret" not in str(raised.value)


def test_missing_file() -> None:
    with pytest.raises(SettingsError, match=r"--mastodon-env: file .* does not exist"):
        parse_dotenv(Path("/nonexistent/.env.production"))


def test_split_database_variables(tmp_path: Path) -> None:
    layer = mastodon_layer(
        env_file(tmp_path, "DB_HOST=db.internal\nDB_PORT=6432\nDB_USER=masto\nDB_PASS=pw\n")
    )
    resolved = resolve([layer])
    database = resolved.settings.require_database()
    assert (database.host, database.port, database.name, database.user, database.password) == (
        "db.internal",
        6432,
        "mastodon_production",  # Mastodon's default for DB_NAME
        "masto",
        "pw",
    )
    # Mastodon's default sslmode is prefer; a remote server must then offer TLS
    assert database.sslmode == "require"
    assert resolved.origins["database.host"] == ".env.production DB_HOST"
    assert "unset" in resolved.origins["database.name"]


def test_mastodon_defaults_and_local_server(tmp_path: Path) -> None:
    database = resolve([mastodon_layer(env_file(tmp_path, "LOCAL_DOMAIN=x\n"))]).settings.database
    assert database is not None
    assert (database.host, database.port, database.name, database.user) == (
        "localhost",
        5432,
        "mastodon_production",
        "mastodon",
    )
    assert database.password is None  # Mastodon sends '' then: peer or trust auth
    assert database.sslmode == "disable"  # prefer on a local server: no TLS needed


def test_unix_socket_host(tmp_path: Path) -> None:
    path = env_file(tmp_path, "DB_HOST=/var/run/postgresql\nDB_SSLMODE=prefer\n")
    database = resolve([mastodon_layer(path)]).settings.require_database()
    assert database.unix_socket == "/var/run/postgresql/.s.PGSQL.5432"
    assert database.sslmode == "disable"


def test_database_url_wins_over_split_variables(tmp_path: Path) -> None:
    path = env_file(
        tmp_path,
        "DB_HOST=ignored\nDB_USER=ignored\nDB_PASS=ignored\nDB_SSLMODE=verify-full\n"
        "DATABASE_URL=postgresql://u:p%40ss@db.example:6543/live\n",
    )
    resolved = resolve([mastodon_layer(path)])
    database = resolved.settings.require_database()
    assert (database.host, database.port, database.name, database.user, database.password) == (
        "db.example",
        6543,
        "live",
        "u",
        "p@ss",
    )
    assert database.sslmode == "verify-full"  # DB_SSLMODE still applies, as in Rails
    assert resolved.origins["database.host"] == ".env.production DATABASE_URL"


def test_database_url_sslmode_prefer(tmp_path: Path) -> None:
    path = env_file(tmp_path, "DATABASE_URL=postgres://u@127.0.0.1/live?sslmode=prefer\n")
    assert resolve([mastodon_layer(path)]).settings.require_database().sslmode == "disable"


def test_database_url_options_of_rails_alone_are_ignored(tmp_path: Path) -> None:
    # given a DATABASE_URL with ActiveRecord's pool and statement options (Rails accepts them)
    path = env_file(
        tmp_path,
        "DATABASE_URL=postgresql://u:pw@db.example:6543/live?pool=5&prepared_statements=false"
        "&connect_timeout=3&sslmode=verify-full&application_name=mastodon\n",
    )
    # when read, then the connection is the URL's and the options are named as ignored
    resolved = resolve([mastodon_layer(path)])
    database = resolved.settings.require_database()
    assert (database.host, database.port, database.name, database.sslmode) == (
        "db.example",
        6543,
        "live",
        "verify-full",
    )
    assert resolved.origins["database.host"] == (
        ".env.production DATABASE_URL (application_name, connect_timeout, pool, "
        "prepared_statements: Rails' own, ignored)"
    )
    # a parameter that would change the connection is still refused, by name
    path = env_file(tmp_path, "DATABASE_URL=postgresql://u@db.example/live?sslcert=c.pem\n")
    with pytest.raises(SettingsError, match=r"DATABASE_URL: unsupported parameter\(s\) sslcert"):
        resolve([mastodon_layer(path)])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("DB_PORT=fifty\n", "DB_PORT: not a port number"),
        (
            "DATABASE_URL=postgresql://u:topsecret[@db.example/live\n",
            r"^\.env\.production DATABASE_URL: not a valid URL \(a \[ or \] outside",
        ),
        (
            "DATABASE_URL=postgresql://u:topsecret@[db.example/live\n",
            r"^\.env\.production DATABASE_URL: not a valid URL ",
        ),
        ("DB_SSLMODE=sometimes\n", "unknown sslmode 'sometimes'"),
        ("DATABASE_URL=mysql://u:topsecret@h/db\n", "DATABASE_URL: unsupported scheme"),
        ("S3_ENABLED=true\n", "S3_ENABLED is true but S3_BUCKET is not set"),
        (
            "S3_ENABLED=true\nS3_BUCKET=b\nAWS_SECRET_ACCESS_KEY=topsecret\n",
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together",
        ),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as raised:
        resolve([mastodon_layer(env_file(tmp_path, text))])
    assert "topsecret" not in str(raised.value)


S3_ENV = (
    "S3_ENABLED=true\nS3_BUCKET=files-old\nS3_REGION=eu-central-1\nS3_KEY_PREFIX=masto\n"
    "AWS_ACCESS_KEY_ID=AKIAOLD\nAWS_SECRET_ACCESS_KEY=oldsecret\n"
    "S3_HOSTNAME=files.example\nS3_PROTOCOL=https\nS3_ALIAS_HOST=media.example\n"
)


def test_source_from_s3_variables_on_aws(tmp_path: Path) -> None:
    settings = resolve([mastodon_layer(env_file(tmp_path, S3_ENV))]).settings
    # S3_HOSTNAME / S3_PROTOCOL / S3_ALIAS_HOST only shape Mastodon's public URLs
    assert settings.source == BucketSettings(
        bucket="files-old",
        key_prefix="masto",
        region="eu-central-1",
        access_key_id="AKIAOLD",
        secret_access_key="oldsecret",
    )
    assert settings.copy.acl == "copy"  # S3_PERMISSION unset: Mastodon's public-read + exceptions


def test_source_endpoint_forces_path_style_unless_overridden(tmp_path: Path) -> None:
    path = env_file(
        tmp_path, "S3_ENABLED=true\nS3_BUCKET=b\nS3_ENDPOINT=https://s3.wasabisys.com\n"
    )
    source = resolve([mastodon_layer(path)]).settings.source
    assert source is not None
    assert (source.endpoint_url, source.addressing_style, source.region) == (
        "https://s3.wasabisys.com",
        "path",
        "us-east-1",  # Mastodon's default region
    )
    path.write_text(path.read_text() + "S3_OVERRIDE_PATH_STYLE=true\n")
    source = resolve([mastodon_layer(path)]).settings.source
    assert source is not None
    assert source.addressing_style == "virtual"


@pytest.mark.parametrize(
    ("line", "acl"),
    [("S3_PERMISSION=\n", "none"), ("S3_PERMISSION=public-read\n", "copy"), ("", "copy")],
)
def test_s3_permission(tmp_path: Path, line: str, acl: str) -> None:
    settings = resolve([mastodon_layer(env_file(tmp_path, S3_ENV + line))]).settings
    assert settings.copy.acl == acl


@pytest.mark.parametrize("line", ["S3_ENABLED=false\nS3_BUCKET=b\n", ""])
def test_local_storage_gives_public_system_next_to_the_env_file(tmp_path: Path, line: str) -> None:
    resolved = resolve([mastodon_layer(env_file(tmp_path, line))])
    source = resolved.settings.source
    assert source is not None
    assert (source.path, source.bucket) == (str(tmp_path / "public" / "system"), None)
    assert resolved.origins["source.path"] == (
        ".env.production PAPERCLIP_ROOT_PATH unset: public/system"
    )
    assert any("the source is the directory" in note for note in resolved.notes)


@pytest.mark.parametrize(
    ("value", "relative"),
    [("/srv/mastodon-media", "/srv/mastodon-media"), (":rails_root/media", "media"), ("m", "m")],
)
def test_local_storage_at_paperclip_root_path(tmp_path: Path, value: str, relative: str) -> None:
    resolved = resolve([mastodon_layer(env_file(tmp_path, f"PAPERCLIP_ROOT_PATH={value}\n"))])
    source = resolved.settings.source
    assert source is not None
    assert source.path == str(tmp_path / relative)
    assert resolved.origins["source.path"] == ".env.production PAPERCLIP_ROOT_PATH"


def test_swift_storage_gives_no_source(tmp_path: Path) -> None:
    resolved = resolve([mastodon_layer(env_file(tmp_path, "SWIFT_ENABLED=true\n"))])
    assert resolved.settings.source is None
    assert any("Swift or Azure" in note for note in resolved.notes)


def test_a_bucket_flag_replaces_the_env_files_directory(tmp_path: Path) -> None:
    flags = SettingsLayer("flags", {"source": {"bucket": "b"}}, {("source", "bucket"): "--source"})
    source = resolve([mastodon_layer(env_file(tmp_path, "")), flags]).settings.source
    assert source is not None
    assert (source.bucket, source.path) == ("b", None)


def test_precedence_flags_over_config_over_env(tmp_path: Path) -> None:
    env_file(tmp_path, S3_ENV + "DB_HOST=envhost\nDB_PASS=envpass\nS3_PERMISSION=\n")
    config = tmp_path / "sync.toml"
    config.write_text(
        'mastodon_env = ".env.production"\n'
        '[database]\nhost = "confighost"\n'
        '[source]\nregion = "config-region"\n'
        '[destination]\nbucket = "new"\n'
    )
    flags = SettingsLayer("flags", {"copy": {"acl": "private"}}, {("copy", "acl"): "--acl"})
    # given the .env named in the config file, when resolved
    resolved = load_settings(config, None, flags)
    settings = resolved.settings
    # then each key comes from the highest layer that has it
    assert settings.database is not None
    assert settings.source is not None
    assert (settings.database.host, settings.database.password) == ("confighost", "envpass")
    assert (settings.source.region, settings.source.bucket) == ("config-region", "files-old")
    assert settings.copy.acl == "private"
    assert resolved.origins["copy.acl"] == "--acl"
    assert resolved.origins["database.host"] == f"config {config}"
    assert resolved.origins["database.password"] == ".env.production DB_PASS"
    assert resolved.origins["copy.workers"] == "default"
    # and --mastodon-env wins over the config file's mastodon_env
    other = env_file(tmp_path, "DB_HOST=otherhost\n", name="other.env")
    assert load_settings(None, other, NO_FLAGS).settings.require_database().host == "otherhost"


def test_url_in_a_later_layer_replaces_the_whole_connection(tmp_path: Path) -> None:
    env = env_file(tmp_path, "DB_HOST=envhost\nDB_PASS=envpass\nDB_SSLMODE=verify-full\n")
    flags = SettingsLayer(
        "flags",
        {"database": {"url": "postgresql://u@flaghost/db"}},
        {("database", "url"): "--database-url"},
    )
    resolved = load_settings(None, env, flags)
    database = resolved.settings.require_database()
    assert (database.host, database.password, database.sslmode) == ("flaghost", None, "disable")
    assert resolved.origins["database.password"] == "--database-url"


def test_config_mastodon_env_must_be_a_path(tmp_path: Path) -> None:
    config = tmp_path / "sync.toml"
    config.write_text("mastodon_env = 3\n")
    with pytest.raises(SettingsError, match="mastodon_env must be a path"):
        load_settings(config, None, NO_FLAGS)


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({"S3_ALIAS_HOST": "files.example"}, "https://files.example"),
        ({"S3_CLOUDFRONT_HOST": "d1.example", "S3_PROTOCOL": "http"}, "http://d1.example"),
        (
            {"S3_ALIAS_HOST": "files.example", "S3_ENDPOINT": "https://s3.example"},
            "https://files.example",
        ),
        # :s3_path_url names S3_HOSTNAME, not the endpoint
        (
            {"S3_ENDPOINT": "https://s3.example", "S3_HOSTNAME": "s3.example"},
            "https://s3.example/media",
        ),
        (
            {"S3_ENDPOINT": "https://s3.example", "S3_REGION": "eu-west-1"},
            "https://s3-eu-west-1.amazonaws.com/media",
        ),
        ({}, None),
        ({"S3_ENABLED": "false", "S3_ALIAS_HOST": "files.example"}, None),
    ],
)
def test_public_url_is_where_mastodon_links_media(env: dict[str, str], url: str | None) -> None:
    assert public_url({"S3_ENABLED": "true", "S3_BUCKET": "media", **env}) == url
