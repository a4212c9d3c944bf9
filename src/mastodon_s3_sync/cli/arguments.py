"""From parsed flags to the core's values: settings, the selection of rows, the SQS client.

Flags are the top settings layer, over the config file over Mastodon's ``.env``; a bad flag
fails here with a message that names it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mastodon_s3_sync.config.checks import endpoint_setting
from mastodon_s3_sync.config.layers import ResolvedSettings, SettingsLayer
from mastodon_s3_sync.config.mastodon_env import env_file, load_settings, parse_dotenv, public_url
from mastodon_s3_sync.config.settings import MAX_PAGE_SIZE, MAX_WORKERS, Settings
from mastodon_s3_sync.config.values import parse_database_url, parse_side, parse_since
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.catalog import CatalogFilter
from mastodon_s3_sync.mastodon.database import check_bigint
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.mastodon.selection import Selection, select
from mastodon_s3_sync.transport.sqs import make_sqs_client

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

ALL_TYPES = "all"


def selected_types(values: Sequence[str] | None) -> list[RecordType]:
    """``--type`` values (repeated or comma-separated; default all) as record types."""
    names = [name.strip() for value in values or [ALL_TYPES] for name in value.split(",")]
    known = [str(record_type) for record_type in RecordType]
    for name in names:
        if name != ALL_TYPES and name not in known:
            raise SettingsError(f"--type: unknown type {name!r}; use {', '.join(known)} or all")
    if ALL_TYPES in names:
        return list(RecordType)
    return [RecordType(name) for name in dict.fromkeys(names)]


def selection(args: argparse.Namespace, settings: Settings) -> Selection:
    """The kinds ``--type`` names, less those ``--skip-backups`` (or ``[copy]
    skip_backups``) and ``--skip-remote-cache`` leave out; each other kind is reported."""
    requested = selected_types(args.types)
    skip_backups = None
    if settings.copy.skip_backups:
        skip_backups = "--skip-backups" if args.skip_backups else "[copy] skip_backups"
    return select(
        requested,
        skip_backups=skip_backups,
        skip_remote_cache="--skip-remote-cache" if args.skip_remote_cache else None,
        unrequested=f"not selected (--type {','.join(requested)})",
    )


def catalog_filter(args: argparse.Namespace) -> CatalogFilter:
    """The rows selected by ``--after-id``, ``--limit``, ``--since``, ``--skip-remote-cache``."""
    since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    return CatalogFilter(
        after_id=None if args.after_id is None else check_bigint(args.after_id, "--after-id"),
        limit=None if args.limit is None else check_bigint(args.limit, "--limit"),
        since=since,
        skip_remote_cache=args.skip_remote_cache,
    )


def _flag_layer(args: argparse.Namespace) -> SettingsLayer:
    """The settings given as flags, as the top layer over the config file and .env."""
    tables: dict[str, dict[str, Any]] = {}
    labels: dict[tuple[str, str], str] = {}

    def put(section: str, key: str, value: object, flag: str) -> None:
        tables.setdefault(section, {})[key] = value
        labels[section, key] = flag

    if getattr(args, "database_url", None):
        parse_database_url(args.database_url)  # errors that name the flag
        put("database", "url", args.database_url, "--database-url")
    if getattr(args, "page_size", None):
        if args.page_size > MAX_PAGE_SIZE:
            raise SettingsError(f"--page-size: at most {MAX_PAGE_SIZE}")
        put("database", "page_size", args.page_size, "--page-size")
    for side in ("source", "destination"):
        if getattr(args, side, None):
            for key, given in parse_side(getattr(args, side), f"--{side}").items():
                put(side, key, given, f"--{side}")
        for name in ("endpoint_url", "region", "profile", "ca_bundle"):
            flag = f"--{side}-{name.replace('_', '-')}"
            value = getattr(args, f"{side}_{name}", None)
            if value:
                if name == "endpoint_url":
                    endpoint_setting(value, flag)
                put(side, name, value, flag)
    if getattr(args, "acl", None):
        put("copy", "acl", args.acl, "--acl")
    if getattr(args, "private_objects", None):
        put("copy", "private_objects", args.private_objects, "--private-objects")
    if getattr(args, "skip_backups", False):
        put("copy", "skip_backups", True, "--skip-backups")
    if getattr(args, "workers", None):
        if args.workers > MAX_WORKERS:
            raise SettingsError(f"--workers: at most {MAX_WORKERS}")
        put("copy", "workers", args.workers, "--workers")
    return SettingsLayer("flags", tables, labels)


def resolved_from_args(args: argparse.Namespace) -> ResolvedSettings:
    """Flags over the config file over Mastodon's .env, with the origin of each value."""
    return load_settings(args.config, getattr(args, "mastodon_env", None), _flag_layer(args))


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings of a command that reads the database (which must be configured)."""
    settings = resolved_from_args(args).settings
    settings.require_database()
    return settings


def sqs_client(args: argparse.Namespace) -> SQSClient:
    """The SQS client of ``enumerate`` and ``worker``, from the queue flags."""
    endpoint = args.sqs_endpoint_url
    if endpoint:
        endpoint_setting(endpoint, "--sqs-endpoint-url")
    return make_sqs_client(endpoint, args.region, args.profile)


def instance_public_url(args: argparse.Namespace) -> str | None:
    """The URL Mastodon links media to, from its ``.env`` (``--mastodon-env`` or the config
    file's ``mastodon_env``): ``verify --public-url``'s default."""
    path = env_file(getattr(args, "config", None), getattr(args, "mastodon_env", None))
    return public_url(parse_dotenv(path)) if path is not None else None
