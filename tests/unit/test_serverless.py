"""The Lambda functions' settings: environment variables and Secrets Manager values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from mastodon_s3_sync.config.lambda_env import (
    bastion_settings,
    bucket_settings,
    copy_settings,
    database_settings,
    time_guard_seconds,
)
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.transport.lambda_edge import parse_enumerator_event

SECRETS: dict[str, Mapping[str, Any]] = {
    "arn:db": {
        "username": "mastodon",
        "password": "s3cret",
        "host": "db.internal",
        "port": 6432,
        "dbname": "mastodon_production",
        "engine": "postgres",
    },
    "arn:bastion": {
        "host": "bastion.example",
        "user": "tunnel",
        "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----",
        "host_key": "ssh-ed25519 AAAA",
    },
    "arn:r2": {"access_key_id": "AK", "secret_access_key": "SK"},
    "arn:partial": {"username": "mastodon"},
}


def read_secret(arn: str) -> Mapping[str, Any]:
    return SECRETS[arn]


def test_database_from_an_rds_style_secret() -> None:
    environ = {"MSS_DATABASE_SECRET_ARN": "arn:db", "MSS_DATABASE_SSLMODE": "require"}
    settings = database_settings(environ, read_secret)
    assert (settings.host, settings.port, settings.name, settings.user) == (
        "db.internal",
        6432,
        "mastodon_production",
        "mastodon",
    )
    assert settings.sslmode == "require"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "MSS_DATABASE_SECRET_ARN is not set"),
        ({"MSS_DATABASE_SECRET_ARN": "arn:partial"}, "secret lacks password, host, dbname"),
        ({"MSS_DATABASE_URL": "mysql://x"}, "MSS_DATABASE_URL"),
        ({"MSS_DATABASE_URL": "postgresql://u@h/d", "MSS_PAGE_SIZE": "lots"}, "MSS_PAGE_SIZE"),
        ({"MSS_DATABASE_SECRET_ARN": "arn:db", "MSS_DATABASE_SSLMODE": "prefer"}, "sslmode"),
    ],
)
def test_database_errors_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        database_settings(environ, read_secret)


def test_bastion_and_bucket_secrets() -> None:
    bastion = bastion_settings({"MSS_BASTION_SECRET_ARN": "arn:bastion"}, read_secret)
    assert bastion is not None
    assert (bastion.host, bastion.port, bastion.user) == ("bastion.example", 22, "tunnel")
    assert bastion_settings({}, read_secret) is None
    environ = {
        "MSS_DESTINATION_BUCKET": "new",
        "MSS_DESTINATION_ENDPOINT_URL": "https://account.r2.cloudflarestorage.com",
        "MSS_DESTINATION_CREDENTIALS_SECRET_ARN": "arn:r2",
        "MSS_DESTINATION_ADDRESSING_STYLE": "path",
    }
    bucket = bucket_settings(environ, "destination", read_secret)
    assert (bucket.bucket, bucket.access_key_id, bucket.addressing_style) == ("new", "AK", "path")
    with pytest.raises(SettingsError, match="MSS_SOURCE_BUCKET"):
        bucket_settings({}, "source", read_secret)
    with pytest.raises(SettingsError, match="MSS_SOURCE_ENDPOINT_URL"):
        bucket_settings(
            {"MSS_SOURCE_BUCKET": "b", "MSS_SOURCE_ENDPOINT_URL": "r2"}, "source", read_secret
        )


def test_numbers_from_the_environment() -> None:
    assert copy_settings({}).workers == 16
    assert copy_settings({"MSS_COPIER_THREADS": "64"}).workers == 64
    assert copy_settings({"MSS_ACL": "none"}).acl == "none"
    assert time_guard_seconds({"MSS_TIME_GUARD_SECONDS": "120"}) == 120.0
    with pytest.raises(SettingsError, match="MSS_COPIER_THREADS"):
        copy_settings({"MSS_COPIER_THREADS": "0"})
    with pytest.raises(SettingsError, match="MSS_ACL"):
        copy_settings({"MSS_ACL": "public"})
    with pytest.raises(SettingsError, match="MSS_TIME_GUARD_SECONDS"):
        time_guard_seconds({"MSS_TIME_GUARD_SECONDS": "soon"})


def test_event_ids_as_strings_and_relative_since_fixed_once() -> None:
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    request = parse_enumerator_event(
        {"type": "accounts", "after_id": "109348123456789012", "since": "2h"}, now
    )
    assert request.cursor.after_id == 109348123456789012
    assert request.filter.since == datetime(2026, 11, 27, 10)
    assert request.run_id.startswith("20261127T120000Z-")
