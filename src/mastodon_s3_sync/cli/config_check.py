"""``config check``: the resolved settings with their origins, then a test of each connection.

Before an hours-long migration, an admin wants to see what the tool will use (which value
came from the flags, the config file or Mastodon's ``.env``) and whether every endpoint
answers. Secrets are shown only as ``****`` and their length.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import TextIO

import botocore.exceptions
import pg8000.exceptions

from mastodon_s3_sync.cli.arguments import instance_public_url, resolved_from_args
from mastodon_s3_sync.cli.preflight import Preflight, open_catalog
from mastodon_s3_sync.config.layers import FILE_KEYS, ResolvedSettings
from mastodon_s3_sync.config.settings import MIB, AclMode, BucketSettings, Settings
from mastodon_s3_sync.copying.preflight import check_acl_reads, probe_destination
from mastodon_s3_sync.errors import DatabaseError, SettingsError, SyncError
from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter
from mastodon_s3_sync.mastodon.database import SqlConnection, open_database
from mastodon_s3_sync.mastodon.selection import Selection, select
from mastodon_s3_sync.storage.s3 import check_bucket, probe_client

SECRET_FIELDS = frozenset({"password", "secret_access_key", "private_key"})
"""Fields shown masked: passwords, secret keys, private keys."""
SECTIONS = ("database", "source", "destination", "copy", "bastion")


@dataclass(frozen=True)
class CheckResult:
    """One connection test: ``ok`` None means skipped (not configured, not needed)."""

    name: str
    ok: bool | None
    detail: str
    exit_code: int = 0

    def line(self) -> str:
        """``OK   database: …`` — one line per check."""
        status = {True: "OK", False: "FAIL", None: "SKIP"}[self.ok]
        return f"{status:<4} {self.name}: {self.detail}"


def mask(value: str) -> str:
    """A secret as the user may see it: that it is set, and how long it is."""
    return f"**** ({len(value)} chars)"


def settings_lines(resolved: ResolvedSettings) -> list[str]:
    """Every setting, grouped by section, with where it came from; secrets masked."""
    lines: list[str] = []
    for section in SECTIONS:
        value = getattr(resolved.settings, section)
        lines.append(f"[{section}]")
        if value is None:
            lines.append("  (not configured)")
            continue
        for item in fields(value):
            setting, shown_name = getattr(value, item.name), item.name
            if item.name.endswith("_bytes"):  # as the config file says it: in MiB
                setting, shown_name = setting // MIB, FILE_KEYS[item.name]
            if setting is None or setting == "":
                shown = "(none)"
            elif item.name in SECRET_FIELDS:
                shown = mask(str(setting))
            else:
                shown = str(setting)
            origin = resolved.origins.get(f"{section}.{item.name}", "default")
            lines.append(f"  {shown_name:<24} {shown:<40} <- {origin}")
    return lines


def _run_check(name: str, check: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(name, True, check())
    except SyncError as error:
        return CheckResult(name, False, str(error), error.exit_code)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        return CheckResult(name, False, str(error), SettingsError.exit_code)


def _selection(settings: Settings) -> Selection:
    """What ``run`` copies without selection flags."""
    return select(skip_backups="skip_backups" if settings.copy.skip_backups else None)


def _check_database(settings: Settings) -> str:
    database = settings.require_database()
    chosen = _selection(settings)
    with open_database(database, settings.bastion) as conn:
        catalog = Catalog(conn, page_size=database.page_size)
        present, left_out = chosen.walked(catalog), chosen.left_out(catalog)
        release = catalog.release()
        version = _schema_version(conn)
    tls = "no (Unix socket)" if database.unix_socket else database.sslmode
    return (
        f"{database.describe()} (TLS: {tls}): tables {', '.join(present)} present"
        + "".join(f"; {line}" for line in left_out)
        + f"; Mastodon {release} or later"
        + (f", schema version {version}" if version else ", no schema_migrations table")
    )


def _schema_version(conn: SqlConnection) -> str | None:
    """Mastodon's latest migration (``schema_migrations``), when the table is there."""
    try:
        exists = conn.run("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not exists or not exists[0][0]:
            return None
        rows = conn.run("SELECT max(version) FROM schema_migrations")
    except (pg8000.exceptions.Error, OSError) as error:
        raise DatabaseError(f"reading schema_migrations failed: {error}") from None
    return str(rows[0][0]) if rows and rows[0][0] else None


def _check_bastion(settings: Settings) -> str:
    from mastodon_s3_sync.mastodon.tunnel import (
        open_tunnel,  # paramiko: only where a bastion is used
    )

    bastion, database = settings.bastion, settings.require_database()
    assert bastion is not None
    with open_tunnel(bastion, database.host, database.port):
        pass
    return f"logged in to {bastion.describe()}, forwarding to {database.host}:{database.port}"


def _check_bucket(bucket: BucketSettings, side: str) -> str:
    if bucket.path is not None:
        from mastodon_s3_sync.storage.disk import check_directory  # the cli extra's

        root = check_directory(bucket, side)
        access = "writable" if side == "destination" else "readable"
        return f"directory {str(root)!r} is there and {access}"
    check_bucket(bucket, side)
    return f"bucket {bucket.bucket!r} at {bucket.endpoint_url or 'AWS S3'} answers"


def _check_source_objects(settings: Settings, source: BucketSettings) -> str:
    """The preflight's look for the first references at the source (a wrong bucket or
    ``S3_KEY_PREFIX`` fails here), over what ``run`` copies without selection flags."""
    with open_catalog(settings, ()) as catalog:
        walked = _selection(settings).walked(catalog)
        return Preflight().source_objects(catalog, source, walked, CatalogFilter())


def run_checks(settings: Settings) -> Iterator[CheckResult]:
    """Test each configured connection; sections that are not configured are skipped."""
    if settings.bastion is not None:
        yield _run_check("bastion", lambda: _check_bastion(settings))
    database = _run_check("database", lambda: _check_database(settings))
    yield database
    answered: dict[str, bool | None] = {}
    for side, bucket in (("source", settings.source), ("destination", settings.destination)):
        name = f"{side} bucket"
        if bucket is None:
            yield CheckResult(name, None, f"not configured (--{side} or [{side}] bucket)")
            continue
        answers = _run_check(name, lambda: _check_bucket(bucket, side))  # noqa: B023
        answered[side] = answers.ok
        yield answers
        if not answers.ok or bucket.path is not None:
            continue
        client, acl = probe_client(bucket), settings.copy.acl
        if side == "source" and acl == AclMode.COPY:
            yield _run_check(
                "source ACLs",
                lambda: check_acl_reads(client, bucket, "source", "--acl copy"),  # noqa: B023
            )
        if side == "destination":
            yield _run_check(
                "destination write",
                lambda: probe_destination(client, bucket, acl),  # noqa: B023
            )
    name, source = "source objects", settings.source
    if settings.database is None or source is None:
        yield CheckResult(name, None, "needs the database and the source (not configured)")
    elif not (database.ok and answered["source"]):
        yield CheckResult(name, None, "needs the database and the source bucket to answer")
    else:
        yield _run_check(name, lambda: _check_source_objects(settings, source))


def config_check(resolved: ResolvedSettings, out: TextIO) -> int:
    """Print the settings and the checks; the exit status of the first failure, else 0."""
    for line in settings_lines(resolved):
        print(line, file=out)
    for note in resolved.notes:
        print(f"note: {note}", file=out)
    print(file=out)
    status = 0
    for result in run_checks(resolved.settings):
        print(result.line(), file=out, flush=True)
        if result.ok is False and not status:
            status = result.exit_code
    print("all checks passed" if status == 0 else "some checks failed", file=out)
    return status


def run_config_check(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``config check``: the settings the flags resolve to, the public URL Mastodon links
    media to, then the connection tests."""
    resolved = resolved_from_args(args)
    base = instance_public_url(args)
    print(f"public URL (verify --public-url): {base or '(none: give --public-url)'}", file=stdout)
    return config_check(resolved, stdout)
