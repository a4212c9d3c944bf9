"""Which kinds a command walks, what it says of the others, and the ACL rule for users'
archive downloads: settings from each edge (flags, TOML, the functions' environment, the
stack), the enumerator's event and cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra.config import load_stack_config
from mastodon_s3_sync.config.lambda_env import skip_backups
from mastodon_s3_sync.config.layers import load_config
from mastodon_s3_sync.config.settings import AclMode
from mastodon_s3_sync.copying.results import fixed_acl
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.mastodon.selection import ALL_TYPES, select
from mastodon_s3_sync.transport.enumeration import Cursor
from mastodon_s3_sync.transport.lambda_edge import EventError, parse_enumerator_event

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ACCOUNTS, MEDIA, EMOJIS, CARDS, SITE, PROVIDERS, BACKUPS, IMPORTS = RecordType


def test_every_kind_by_default_and_nothing_set_aside() -> None:
    chosen = select()
    assert chosen.record_types == ALL_TYPES == tuple(RecordType)
    assert chosen.set_aside == {}


def test_flags_set_kinds_aside_and_say_which_flag() -> None:
    chosen = select(skip_backups="--skip-backups", skip_remote_cache="--skip-remote-cache")
    assert BACKUPS not in chosen.record_types
    assert CARDS not in chosen.record_types
    assert chosen.set_aside == {
        CARDS: "skipped by --skip-remote-cache (all remote cache: Mastodon fetches them again)",
        BACKUPS: "skipped by --skip-backups",
    }


def test_kinds_not_requested_are_named_only_when_asked() -> None:
    quiet = select([MEDIA, ACCOUNTS, MEDIA])
    assert quiet.record_types == (MEDIA, ACCOUNTS)
    assert quiet.set_aside == {}
    told = select([MEDIA], skip_backups="--skip-backups", unrequested="not selected")
    assert told.record_types == (MEDIA,)
    assert set(told.set_aside) == set(RecordType) - {MEDIA}
    assert told.set_aside[BACKUPS] == "not selected"  # not asked for: nothing to skip


@pytest.mark.parametrize(
    ("mode", "record_type", "written"),
    [
        (AclMode.PUBLIC_READ, BACKUPS, "private"),
        (AclMode.PUBLIC_READ, MEDIA, "public-read"),
        (AclMode.PUBLIC_READ, SITE, "public-read"),
        (AclMode.PRIVATE, BACKUPS, "private"),
        (AclMode.PRIVATE, ACCOUNTS, "private"),
    ],
)
def test_a_fixed_public_read_never_applies_to_backups(
    mode: AclMode, record_type: RecordType, written: str
) -> None:
    assert fixed_acl(mode, ObjectRef(record_type, 1, "file", "original", "k")) == written


@pytest.mark.parametrize("mode", [AclMode.PUBLIC_READ, AclMode.PRIVATE])
def test_a_fixed_acl_writes_what_mastodon_made_private_private(mode: AclMode) -> None:
    ref = ObjectRef(MEDIA, 1, "file", "original", "k", private=True)
    assert fixed_acl(mode, ref) == "private"


def test_a_cursor_narrowed_keeps_its_position_only_in_a_kind_it_keeps() -> None:
    cursor = Cursor((BACKUPS, MEDIA, IMPORTS), after_id=42, rows_left=7, limit=10)
    assert cursor.narrowed({MEDIA, IMPORTS}) == Cursor((MEDIA, IMPORTS), None, 10, 10)
    assert cursor.narrowed({BACKUPS, MEDIA}) == Cursor((BACKUPS, MEDIA), 42, 7, 10)
    assert cursor.narrowed(set()) == Cursor((), None, 10, 10)


def test_the_enumerator_event_takes_skip_backups_as_a_flag() -> None:
    request = parse_enumerator_event({"type": "all", "skip_backups": True}, NOW)
    assert request.skip_backups is True
    assert request.cursor.types == tuple(RecordType)  # the function sets them aside
    assert parse_enumerator_event({"type": "all"}, NOW).skip_backups is False
    with pytest.raises(EventError, match="skip_backups must be true or false"):
        parse_enumerator_event({"type": "all", "skip_backups": "yes"}, NOW)


@pytest.mark.parametrize(
    ("value", "expected"), [("", False), ("false", False), ("true", True), ("TRUE", True)]
)
def test_skip_backups_from_the_functions_environment(value: str, expected: bool) -> None:
    assert skip_backups({"MSS_SKIP_BACKUPS": value}) is expected
    assert skip_backups({}) is False


def test_a_bad_skip_backups_names_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"MSS_SKIP_BACKUPS.*true or false"):
        skip_backups({"MSS_SKIP_BACKUPS": "yes"})
    config = tmp_path / "sync.toml"
    config.write_text('[copy]\nskip_backups = "yes"\n')
    with pytest.raises(SettingsError, match=r"\[copy\] skip_backups.*true or false"):
        load_config(config)


def test_the_stack_passes_skip_backups_to_the_enumerator_alone(tmp_path: Path) -> None:
    config = tmp_path / "sync.toml"
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"
    stack = f'[stack]\ndatabase_secret_arn = "{arn}"\n'
    buckets = '[source]\nbucket = "old"\n[destination]\nbucket = "new"\n'
    config.write_text(f"{buckets}[copy]\nskip_backups = true\n{stack}")
    deployment = load_stack_config(config)
    assert deployment.enumerator_environment()["MSS_SKIP_BACKUPS"] == "true"
    assert "MSS_SKIP_BACKUPS" not in deployment.copier_environment()
    config.write_text(f"{buckets}{stack}")
    assert "MSS_SKIP_BACKUPS" not in load_stack_config(config).enumerator_environment()


def test_the_stack_passes_private_objects_to_the_copier(tmp_path: Path) -> None:
    config = tmp_path / "sync.toml"
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"
    stack = f'[stack]\ndatabase_secret_arn = "{arn}"\n'
    buckets = '[source]\nbucket = "old"\n[destination]\nbucket = "new"\n'
    config.write_text(f'{buckets}[copy]\nacl = "none"\nprivate_objects = "copy"\n{stack}')
    assert load_stack_config(config).copier_environment()["MSS_PRIVATE_OBJECTS"] == "copy"
    config.write_text(f"{buckets}{stack}")
    assert load_stack_config(config).copier_environment()["MSS_PRIVATE_OBJECTS"] == "withhold"
    config.write_text(f'{buckets}[copy]\nprivate_objects = "public"\n{stack}')
    with pytest.raises(SettingsError, match=r"\[copy\] private_objects.*withhold, copy, skip"):
        load_stack_config(config)
