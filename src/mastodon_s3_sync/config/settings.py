"""The one typed settings model of the CLI, the Lambda functions and the CDK app.

Frozen pydantic dataclasses, one per section, inside a pydantic model, :class:`Settings`.
Each edge gathers raw values from its sources (flags, a TOML file, Mastodon's .env in
:mod:`mastodon_s3_sync.config.layers`; MSS_* variables and secrets in
:mod:`mastodon_s3_sync.config.lambda_env`; the ``[stack]`` table in
:mod:`mastodon_s3_sync.config.stack`) and validates them here once; pydantic's errors become
a :class:`SettingsError` that names the setting the way that edge's user wrote it.
"""

from __future__ import annotations

import re
import stat
import warnings
from collections.abc import Mapping
from dataclasses import field
from enum import StrEnum
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass

from mastodon_s3_sync.config.checks import (
    DEFAULT_PORT,
    DEFAULT_SSH_PORT,
    SECTION_CONFIG,
    AddressingStyle,
    SettingName,
    SslMode,
    bucket_name,
    endpoint,
    port,
    required_text,
    settings_error,
    sslmode,
    whole,
)
from mastodon_s3_sync.config.stack import StackSettings
from mastodon_s3_sync.errors import SettingsError


class AclMode(StrEnum):
    """Which ACL the destination object gets."""

    COPY = "copy"  # the source object's class: public-read or private
    PUBLIC_READ = "public-read"
    PRIVATE = "private"
    NONE = "none"  # no ACL header (Cloudflare R2, buckets with ACLs disabled)


class PrivateObjects(StrEnum):
    """What becomes of objects Mastodon made private when the destination keeps no ACL."""

    WITHHOLD = "withhold"  # not written: counted, listed, and one line says how to choose
    COPY = "copy"  # written anyway (for a destination that is not publicly readable)
    SKIP = "skip"  # not written, counted, without that line


MIB = 1024 * 1024
DEFAULT_PAGE_SIZE = 5000
MAX_PAGE_SIZE = 100_000
DEFAULT_WORKERS = 32
"""Copier threads. Between two providers each object waits out two round trips, and threads
hide them: at 80 ms per request 16, 32 and 64 threads copied 79, 113 and 138 objects/s, at
30 ms 139, 139 and 158 (benchmarks/RESULTS.md, "Defaults against defaults"). 32 is the
default because 64 doubles the connections and requests per second each provider sees, and
S3-compatible providers cap those per client; far providers are worth ``--workers 64``.
Memory stays bounded by the byte budget whatever the count."""
MAX_WORKERS = 256
DEFAULT_MULTIPART_THRESHOLD_BYTES = 64 * MIB
"""Larger objects go multipart. Mastodon's own uploads are single PUTs up to 15 MB and
videos rarely exceed 100 MB: one PUT each is fewer requests than parts."""
DEFAULT_PART_SIZE_BYTES = 16 * MIB
MIN_PART_BYTES, MAX_PART_BYTES = 5 * MIB, 5 * 1024 * MIB  # S3's limits but for the last part
URL_FORM = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


def _acl(value: object) -> AclMode:
    modes = [str(mode) for mode in AclMode]
    if value not in modes:
        raise ValueError(f"unknown ACL mode {value!r}; use one of {', '.join(modes)}")
    return AclMode(value)


@dataclass(frozen=True, config=SECTION_CONFIG)
class DatabaseSettings:
    """Where Mastodon's PostgreSQL database is and how to page through it."""

    name: str
    user: str
    host: str = "localhost"
    port: int = DEFAULT_PORT
    password: str | None = field(default=None, repr=False)
    sslmode: SslMode = "disable"
    page_size: int = DEFAULT_PAGE_SIZE
    sslrootcert: str | None = None
    """PEM file of the CA(s) that sign the server's certificate (else the system's)."""

    @field_validator("name", "user", mode="before")
    @classmethod
    def _check_required(cls, value: object) -> object:
        return required_text(value)

    @field_validator("port", mode="before")
    @classmethod
    def _check_port(cls, value: object) -> int:
        return port(value)

    @field_validator("sslmode", mode="before")
    @classmethod
    def _check_sslmode(cls, value: object) -> SslMode:
        return sslmode(value)

    @field_validator("page_size", mode="before")
    @classmethod
    def _check_page_size(cls, value: object) -> int:
        return whole(value, 1, MAX_PAGE_SIZE)

    @property
    def unix_socket(self) -> str | None:
        """Socket file when ``host`` is a directory (as in libpq and Mastodon's DB_HOST)."""
        return f"{self.host}/.s.PGSQL.{self.port}" if self.host.startswith("/") else None

    def describe(self) -> str:
        """``user@host:port/name``, safe to print (no password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.name}"


@dataclass(frozen=True, config=SECTION_CONFIG)
class BucketSettings:
    """One side of the copy: a bucket on an S3-compatible endpoint, or a directory (``path``,
    Mastodon's local file storage: its ``public/system``)."""

    bucket: str | None = None
    path: str | None = None
    file_mode: int | None = None
    """Mode of the files written to a ``path`` but private ones (always ``0600``); None:
    ``0644``, Mastodon's ``0666`` minus the usual umask."""
    key_prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    addressing_style: AddressingStyle = "auto"
    ca_bundle: str | None = None
    """PEM file of the CA(s) that sign the endpoint's certificate (else botocore's own,
    or ``AWS_CA_BUNDLE``)."""

    @field_validator("bucket", mode="before")
    @classmethod
    def _check_bucket(cls, value: object) -> object:
        return None if value is None else bucket_name(value)

    @field_validator("path", mode="before")
    @classmethod
    def _check_path(cls, value: object) -> object:
        if value is not None and not (isinstance(value, str) and value.startswith("/")):
            raise ValueError(f"{value!r} is not an absolute directory path")
        return value

    @field_validator("file_mode", mode="before")
    @classmethod
    def _check_file_mode(cls, value: object) -> int | None:
        # Written as an octal string ("0640"): a TOML integer 0640 is not octal.
        if value is None:
            return None
        if isinstance(value, str) and re.fullmatch(r"0?[0-7]{3}", value):
            mode = int(value, 8)
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o777:
            mode = value  # already a mode (code, not a file)
        else:
            raise ValueError(f'{value!r} is not a file mode; write it in octal, as "0644"')
        if not mode & stat.S_IRUSR or mode & stat.S_IWOTH:
            raise ValueError(f"{value!r}: the owner must read, and others may not write")
        return mode

    @field_validator("endpoint_url", mode="before")
    @classmethod
    def _check_endpoint(cls, value: object) -> object:
        return endpoint(value)

    @field_validator("ca_bundle", mode="before")
    @classmethod
    def _check_ca_bundle(cls, value: object) -> object:
        if isinstance(value, str) and value and not Path(value).is_file():
            raise ValueError(f"{value} is not a file (a PEM file of CA certificates)")
        return value or None

    @field_validator("addressing_style", mode="before")
    @classmethod
    def _check_style(cls, value: object) -> object:
        styles = get_args(AddressingStyle)
        if value not in styles:
            raise ValueError(f"{value!r} is not one of {', '.join(styles)}")
        return value

    @model_validator(mode="after")
    def _key_pair(self) -> BucketSettings:
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise ValueError("access_key_id and secret_access_key must be set together")
        if self.bucket is None and self.path is None:
            raise ValueError(
                'bucket is missing: set bucket = "BUCKET-NAME" '
                '(or path = "/home/mastodon/live/public/system", a directory)'
            )
        if self.bucket is not None and self.path is not None:
            raise ValueError("bucket and path are both set: keep one")
        return self

    @property
    def name(self) -> str:
        """The bucket's name, or the directory's path."""
        return self.bucket if self.bucket is not None else str(self.path)

    def require_bucket(self, side: str) -> str:
        """The bucket name, or a SettingsError for a directory where S3 is needed."""
        if self.bucket is None:
            raise SettingsError(
                f"{side} is the directory {self.path}: this needs an S3 bucket "
                f'([{side}] bucket = "BUCKET-NAME")'
            )
        return self.bucket


@dataclass(frozen=True, config=SECTION_CONFIG)
class SshSettings:
    """How to log in to the SSH bastion in front of the database."""

    host: str
    user: str
    private_key: str = field(repr=False)
    port: int = DEFAULT_SSH_PORT
    host_key: str | None = None
    """The bastion's public host key, ``ssh-ed25519 AAAA…`` (a known_hosts line works too)."""
    insecure_skip_host_key: bool = False
    """Accept any host key: anyone between here and the bastion could read the database."""

    @field_validator("host", "user", "private_key", mode="before")
    @classmethod
    def _check_required(cls, value: object) -> object:
        return required_text(value)

    @field_validator("port", mode="before")
    @classmethod
    def _check_port(cls, value: object) -> int:
        return port(value)

    def describe(self) -> str:
        """``user@host:port``, safe to print."""
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True, config=SECTION_CONFIG)
class CopySettings:
    """How objects are written: ACL, copier threads, and when to go multipart (in bytes);
    whether users' archive downloads (backups, which expire in days) are left out, and what
    becomes of private objects when the destination keeps no ACL."""

    acl: AclMode = AclMode.COPY
    workers: int = DEFAULT_WORKERS
    multipart_threshold_bytes: int = DEFAULT_MULTIPART_THRESHOLD_BYTES
    part_size_bytes: int = DEFAULT_PART_SIZE_BYTES
    skip_backups: bool = False
    private_objects: PrivateObjects = PrivateObjects.WITHHOLD

    @field_validator("private_objects", mode="before")
    @classmethod
    def _check_private_objects(cls, value: object) -> PrivateObjects:
        choices = [str(choice) for choice in PrivateObjects]
        if value not in choices:
            raise ValueError(f"unknown value {value!r}; use one of {', '.join(choices)}")
        return PrivateObjects(value)

    @field_validator("skip_backups", mode="before")
    @classmethod
    def _check_skip_backups(cls, value: object) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {value!r}")
        return value

    @field_validator("acl", mode="before")
    @classmethod
    def _check_acl(cls, value: object) -> AclMode:
        return _acl(value)

    @field_validator("workers", mode="before")
    @classmethod
    def _check_workers(cls, value: object) -> int:
        return whole(value, 1, MAX_WORKERS)

    @field_validator("multipart_threshold_bytes", "part_size_bytes", mode="before")
    @classmethod
    def _check_bytes(cls, value: object) -> int:
        # S3's part limits are checked where users write sizes, in MiB (config.layers);
        # the copier itself takes any size (tests use parts of a few KiB).
        return whole(value, 1, MAX_PART_BYTES)


# The [copy] section's name shadows BaseModel.copy, pydantic v1's deprecated copy(): the
# section is what users write, and nothing here calls that method.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", 'Field name "copy"', UserWarning)

    class Settings(BaseModel):
        """Everything a command may need; sections a command does not use may be None.

        Only what an edge passes in: no process environment is read."""

        model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

        database: DatabaseSettings | None = None
        source: BucketSettings | None = None
        destination: BucketSettings | None = None
        copy: CopySettings = CopySettings()  # type: ignore[assignment]
        bastion: SshSettings | None = None
        stack: StackSettings | None = None
        """Read by the CDK app alone (the CLI leaves the [stack] table out of its layers)."""

        def require_database(self) -> DatabaseSettings:
            """The database settings, or a SettingsError saying how to give them."""
            if self.database is None:
                raise SettingsError(
                    f"no database configured: pass --database-url {URL_FORM}, "
                    "set [database] url in the config file (--config), "
                    "or point --mastodon-env at Mastodon's .env.production"
                )
            return self.database


def validated(document: Mapping[str, Any], name: SettingName, missing: SettingName) -> Settings:
    """The :class:`Settings` of ``{section: {field: value}}``, or a SettingsError naming it."""
    try:
        return Settings(**document)
    except ValidationError as error:
        raise settings_error(error, name, missing) from None
