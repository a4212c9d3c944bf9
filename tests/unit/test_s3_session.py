"""What the edge hands the lean client: the session's credentials and certificate checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.storage.s3 import make_session


def test_the_keys_of_the_settings_are_the_credentials() -> None:
    session = make_session(
        BucketSettings("b", region="eu-west-1", access_key_id="AK", secret_access_key="SK")
    )
    credentials = session.credentials()
    assert credentials is not None
    frozen = credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == ("AK", "SK", None)


def test_tls_checks_follow_aws_ca_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = BucketSettings("b", access_key_id="AK", secret_access_key="SK")
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    assert make_session(settings).tls_verify() is True
    bundle = tmp_path / "ca.pem"
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
    assert make_session(settings).tls_verify() == str(bundle)


def test_a_profile_that_does_not_exist_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with pytest.raises(SettingsError, match="profile 'nope'"):
        make_session(BucketSettings("b", profile="nope"))
