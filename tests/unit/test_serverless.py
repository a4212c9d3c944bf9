"""The Lambda functions' settings: environment variables and Secrets Manager values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger

from mastodon_s3_sync.config.lambda_env import (
    EnumeratorSettings,
    bastion_settings,
    bucket_settings,
    copy_settings,
    database_settings,
    enumerator_settings,
    time_guard_seconds,
)
from mastodon_s3_sync.contract import BYTES_COPIED_METRIC, OUTCOME_METRICS, TYPE_DIMENSION
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.outcomes import Outcome, Tally
from mastodon_s3_sync.transport import lambda_metrics
from mastodon_s3_sync.transport.lambda_edge import parse_enumerator_event
from mastodon_s3_sync.transport.lambda_enumerator import EnumeratorClients, run_enumerator
from tests.events.factory import FakeLambdaContext

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
    assert copy_settings({}).workers == 32
    assert copy_settings({"MSS_COPIER_THREADS": "64"}).workers == 64
    assert copy_settings({"MSS_ACL": "none"}).acl == "none"
    assert copy_settings({}).private_objects == "withhold"
    assert copy_settings({"MSS_PRIVATE_OBJECTS": "copy"}).private_objects == "copy"
    assert time_guard_seconds({"MSS_TIME_GUARD_SECONDS": "120"}) == 120.0
    with pytest.raises(SettingsError, match="MSS_COPIER_THREADS"):
        copy_settings({"MSS_COPIER_THREADS": "0"})
    with pytest.raises(SettingsError, match="MSS_ACL"):
        copy_settings({"MSS_ACL": "public"})
    with pytest.raises(SettingsError, match="MSS_PRIVATE_OBJECTS"):
        copy_settings({"MSS_PRIVATE_OBJECTS": "public"})
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


def test_the_enumerator_needs_a_queue_only_to_send() -> None:
    environ = {"MSS_DATABASE_URL": "postgresql://mastodon@db.internal/mastodon_production"}
    settings = enumerator_settings(environ, read_secret)
    assert (settings.queue_url, settings.time_guard_seconds) == (None, 60.0)
    with pytest.raises(SettingsError, match="MSS_QUEUE_URL is not set"):
        settings.sending_queue_url()
    queue = "https://sqs.us-east-1.amazonaws.com/1/copy"
    assert enumerator_settings(environ | {"MSS_QUEUE_URL": queue}, read_secret).queue_url == queue


def untouchable() -> Any:
    """A client or settings factory that a rejected event must not reach."""
    raise AssertionError("called for a rejected event")


def offline_clients() -> EnumeratorClients:
    """Clients that are made (no request is sent by making them) but never called."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return EnumeratorClients(sqs=session.client("sqs"), functions=session.client("lambda"))


def test_the_enumerator_answers_a_bad_event_or_bad_settings_without_raising() -> None:
    context, logger = FakeLambdaContext().as_lambda_context(), Logger(service="unit")
    # a rejected event reaches neither the clients nor the settings
    rejected = run_enumerator({"type": "statuses"}, context, untouchable, untouchable, logger)
    assert rejected == {"ok": False, "error": rejected["error"]}
    assert "unknown type 'statuses'" in rejected["error"]

    # a settings error is an answer that names the variable, with the run id, to a caller
    # who waits; raised when nobody does (Lambda retries it, then keeps the event)
    def no_database() -> EnumeratorSettings:
        return enumerator_settings({}, read_secret)

    event: dict[str, Any] = {"type": "accounts", "run_id": "20261127T061500Z-c0ffee"}
    answer = run_enumerator(event | {"async": False}, context, offline_clients, no_database, logger)
    assert answer["ok"] is False
    assert answer["run_id"] == event["run_id"]
    assert "MSS_DATABASE_SECRET_ARN is not set" in answer["error"]
    with pytest.raises(SettingsError, match="MSS_DATABASE_SECRET_ARN is not set"):
        run_enumerator(event, context, offline_clients, no_database, logger)


@pytest.mark.parametrize(
    ("event", "asynchronous"),
    [
        ({}, True),
        ({"dry_run": True}, False),
        ({"async": False}, False),
        ({"dry_run": True, "async": True}, True),
    ],
)
def test_an_event_is_asynchronous_unless_it_says_otherwise_or_is_a_dry_run(
    event: dict[str, Any], asynchronous: bool
) -> None:
    request = parse_enumerator_event({"type": "accounts", **event}, datetime.now(UTC))
    assert request.asynchronous is asynchronous
    assert request.continued is False


def test_copier_metrics_are_the_contract_names_and_skip_zeros(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "MastodonS3SyncTest")
    lambda_metrics.emit_outcomes(RecordType.ACCOUNTS, Tally(copied=2, missing=1, bytes_copied=10))
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    emitted = {
        metric["Name"]: (document[metric["Name"]], metric["Unit"], document[TYPE_DIMENSION])
        for document in documents
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }
    assert emitted == {
        OUTCOME_METRICS[Outcome.COPIED]: ([2.0], "Count", "accounts"),
        OUTCOME_METRICS[Outcome.MISSING]: ([1.0], "Count", "accounts"),
        BYTES_COPIED_METRIC: ([10.0], "Bytes", "accounts"),
    }
