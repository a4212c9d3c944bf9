"""The one typed settings model of the CLI, the Lambda functions and the CDK app.

Frozen pydantic dataclasses, one per section, inside a pydantic-settings :class:`Settings`.
Each edge gathers raw values from its sources (flags, a TOML file, Mastodon's .env in
:mod:`mastodon_s3_sync.config.layers`; MSS_* variables and secrets in
:mod:`mastodon_s3_sync.config.lambda_env`) and validates them here once; pydantic's errors
become a :class:`SettingsError` that names the setting the way that edge's user wrote it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, get_args
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import ConfigDict, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mastodon_s3_sync.errors import SettingsError

SslMode = Literal["disable", "require", "verify-ca", "verify-full"]
AddressingStyle = Literal["auto", "path", "virtual"]


class AclMode(StrEnum):
    """Which ACL the destination object gets."""

    COPY = "copy"  # the source object's class: public-read or private
    PUBLIC_READ = "public-read"
    PRIVATE = "private"
    NONE = "none"  # no ACL header (Cloudflare R2, buckets with ACLs disabled)


MIB = 1024 * 1024
DEFAULT_PORT = 5432
DEFAULT_SSH_PORT = 22
DEFAULT_PAGE_SIZE = 5000
MAX_PAGE_SIZE = 100_000
DEFAULT_WORKERS = 16
MAX_WORKERS = 256
DEFAULT_MULTIPART_THRESHOLD_BYTES = 64 * MIB
"""Larger objects go multipart. Mastodon's own uploads are single PUTs up to 15 MB and
videos rarely exceed 100 MB: one PUT each is fewer requests than parts."""
DEFAULT_PART_SIZE_BYTES = 16 * MIB
MIN_PART_BYTES, MAX_PART_BYTES = 5 * MIB, 5 * 1024 * MIB  # S3's limits but for the last part
URL_FORM = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"

_SECTION = ConfigDict(extra="forbid")
_MISSING = "missing"  # pydantic's error type for a required value, also used for ""


def _text(value: object) -> object:
    """A required string: "" counts as missing, as an unset value would."""
    if value == "":
        raise PydanticCustomError(_MISSING, "Field required")
    return value


def _whole(value: object, low: int, high: int, what: str = "") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"must be a whole number{what} from {low} to {high}")
    return value


def _port(value: object) -> int:
    try:
        port = int(str(value))
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ValueError(f"port {value!r} is not a number between 1 and 65535")
    return port


def _sslmode(value: object) -> SslMode:
    modes = get_args(SslMode)
    if value not in modes:
        raise ValueError(f"unknown sslmode {value!r}; use one of {', '.join(modes)}")
    return value  # type: ignore[return-value]


def _acl(value: object) -> AclMode:
    modes = [str(mode) for mode in AclMode]
    if value not in modes:
        raise ValueError(f"unknown ACL mode {value!r}; use one of {', '.join(modes)}")
    return AclMode(value)


def _endpoint(value: object) -> object:
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL; write it as https://HOST[:PORT]")
    return value


def _bucket_name(value: object) -> object:
    # Loosely: providers differ, and S3 itself is stricter.
    if isinstance(value, str) and (
        "/" in value or any(char.isspace() for char in value) or len(value) > 255
    ):
        raise ValueError(f"{value!r} is not a bucket name")
    return _text(value)


def _named(check: Callable[[Any], Any], value: object, setting: str) -> Any:
    try:
        return check(value)
    except ValueError as error:
        raise SettingsError(f"{setting}: {error}") from None


def sslmode_setting(value: object, setting: str) -> SslMode:
    """Validate a TLS mode for the database."""
    return _named(_sslmode, value, setting)  # type: ignore[no-any-return]


def acl_setting(value: object, setting: str) -> AclMode:
    """Validate an ACL mode."""
    return _named(_acl, value, setting)  # type: ignore[no-any-return]


def endpoint_setting(value: str, setting: str) -> str:
    """Validate an endpoint URL (scheme and host)."""
    return _named(_endpoint, value, setting)  # type: ignore[no-any-return]


@dataclass(frozen=True, config=_SECTION)
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
        return _text(value)

    @field_validator("port", mode="before")
    @classmethod
    def _check_port(cls, value: object) -> int:
        return _port(value)

    @field_validator("sslmode", mode="before")
    @classmethod
    def _check_sslmode(cls, value: object) -> SslMode:
        return _sslmode(value)

    @field_validator("page_size", mode="before")
    @classmethod
    def _check_page_size(cls, value: object) -> int:
        return _whole(value, 1, MAX_PAGE_SIZE)

    @property
    def unix_socket(self) -> str | None:
        """Socket file when ``host`` is a directory (as in libpq and Mastodon's DB_HOST)."""
        return f"{self.host}/.s.PGSQL.{self.port}" if self.host.startswith("/") else None

    def describe(self) -> str:
        """``user@host:port/name``, safe to print (no password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.name}"


@dataclass(frozen=True, config=_SECTION)
class BucketSettings:
    """One side of the copy: a bucket on an S3-compatible endpoint."""

    bucket: str
    key_prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    addressing_style: AddressingStyle = "auto"

    @field_validator("bucket", mode="before")
    @classmethod
    def _check_bucket(cls, value: object) -> object:
        return _bucket_name(value)

    @field_validator("endpoint_url", mode="before")
    @classmethod
    def _check_endpoint(cls, value: object) -> object:
        return _endpoint(value)

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
        return self


@dataclass(frozen=True, config=_SECTION)
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
        return _text(value)

    @field_validator("port", mode="before")
    @classmethod
    def _check_port(cls, value: object) -> int:
        return _port(value)

    def describe(self) -> str:
        """``user@host:port``, safe to print."""
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True, config=_SECTION)
class CopySettings:
    """How objects are written: ACL, copier threads, and when to go multipart (in bytes)."""

    acl: AclMode = AclMode.COPY
    workers: int = DEFAULT_WORKERS
    multipart_threshold_bytes: int = DEFAULT_MULTIPART_THRESHOLD_BYTES
    part_size_bytes: int = DEFAULT_PART_SIZE_BYTES

    @field_validator("acl", mode="before")
    @classmethod
    def _check_acl(cls, value: object) -> AclMode:
        return _acl(value)

    @field_validator("workers", mode="before")
    @classmethod
    def _check_workers(cls, value: object) -> int:
        return _whole(value, 1, MAX_WORKERS)

    @field_validator("multipart_threshold_bytes", "part_size_bytes", mode="before")
    @classmethod
    def _check_bytes(cls, value: object) -> int:
        # S3's part limits are checked where users write sizes, in MiB (config.layers);
        # the copier itself takes any size (tests use parts of a few KiB).
        return _whole(value, 1, MAX_PART_BYTES)


# The [copy] section's name shadows BaseModel.copy, pydantic v1's deprecated copy(): the
# section is what users write, and nothing here calls that method.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", 'Field name "copy"', UserWarning)

    class Settings(BaseSettings):
        """Everything a command may need; sections a command does not use may be None."""

        model_config = SettingsConfigDict(frozen=True, extra="forbid")

        database: DatabaseSettings | None = None
        source: BucketSettings | None = None
        destination: BucketSettings | None = None
        copy: CopySettings = CopySettings()  # type: ignore[assignment]
        bastion: SshSettings | None = None

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            """Only what an edge passes in: the process environment is read by no default."""
            return (init_settings,)

        def require_database(self) -> DatabaseSettings:
            """The database settings, or a SettingsError saying how to give them."""
            if self.database is None:
                raise SettingsError(
                    f"no database configured: pass --database-url {URL_FORM}, "
                    "set [database] url in the config file (--config), "
                    "or point --mastodon-env at Mastodon's .env.production"
                )
            return self.database


SettingName = Callable[[str, str | None], str]
"""How an edge names ``(section, field)`` to its user: ``[source] bucket``, ``MSS_ACL``; a
field None names the section."""


def settings_error(
    error: ValidationError, name: SettingName, missing: SettingName
) -> SettingsError:
    """pydantic's first error as a one-line SettingsError naming the setting.

    ``missing`` says how to give a required value (appended to its name: `` is missing: …``).
    """
    detail: ErrorDetails = error.errors(include_url=False)[0]
    loc = [str(part) for part in detail["loc"]]
    section, key = loc[0], (loc[1] if len(loc) > 1 else None)
    setting = name(section, key)
    if detail["type"] == _MISSING and key is not None:
        return SettingsError(f"{setting}{missing(section, key)}")
    if detail["type"] == "string_type":
        return SettingsError(f"{setting}: expected a string, got {type(detail['input']).__name__}")
    cause = detail.get("ctx", {}).get("error")
    message = str(cause) if isinstance(cause, ValueError) else detail["msg"]
    return SettingsError(f"{setting}{':' if key else ''} {message}")


def validated(document: Mapping[str, Any], name: SettingName, missing: SettingName) -> Settings:
    """The :class:`Settings` of ``{section: {field: value}}``, or a SettingsError naming it."""
    try:
        return Settings(**document)
    except ValidationError as error:
        raise settings_error(error, name, missing) from None


def _mask(url: str) -> str:
    # Up to the last "@": a password may hold an unescaped / ? # or @.
    return re.sub(r"(://[^:/@]*:).*@", r"\1***@", url)


def parse_database_url(url: str, setting: str = "--database-url") -> DatabaseSettings:
    """Parse ``postgresql://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=…&sslrootcert=…&host=…]``.

    ``host`` in the query is a Unix socket directory, as in libpq.
    """
    fix = f"write it as {URL_FORM}"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        # urllib's reason can quote part of the password (an unescaped / ends the host).
        userinfo = url.partition("://")[2].rpartition("@")[0]
        reason = "percent-encode / ? # @ : in the password" if ":" in userinfo else str(error)
        raise SettingsError(
            f"{setting}: {_mask(url)!r} is not a valid URL ({reason}); {fix}"
        ) from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise SettingsError(
            f"{setting}: unsupported scheme {parts.scheme + '://' if parts.scheme else 'none'} "
            f"in {_mask(url)!r}; {fix}"
        )
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"sslmode", "sslrootcert", "host", "port"}
    if unknown:
        raise SettingsError(f"{setting}: unsupported parameter(s) {', '.join(sorted(unknown))}")
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise SettingsError(f"{setting}: no database name in {_mask(url)!r}; {fix}")
    user = unquote(parts.username or "")
    if not user:
        raise SettingsError(f"{setting}: no user in {_mask(url)!r}; {fix}")
    if "port" in query:
        port = _named(_port, query["port"], setting)
    return DatabaseSettings(
        name=name,
        user=user,
        host=query.get("host") or unquote(parts.hostname or "") or "localhost",
        port=port or DEFAULT_PORT,
        password=unquote(parts.password) if parts.password is not None else None,
        sslmode=sslmode_setting(query.get("sslmode", "disable"), f"{setting} sslmode"),
        sslrootcert=query.get("sslrootcert") or None,
    )


def parse_s3_url(url: str, setting: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` -> (bucket, key prefix as Mastodon's S3_KEY_PREFIX)."""
    if not url.startswith("s3://"):
        raise SettingsError(
            f"{setting}: {url!r} should look like s3://BUCKET or s3://BUCKET/PREFIX"
        )
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise SettingsError(f"{setting}: {bucket!r} is not a bucket name")
    return _named(_bucket_name, bucket, setting), prefix


_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime, setting: str = "--since") -> datetime:
    """A point in time as naive UTC (Mastodon's ``timestamp without time zone``).

    Accepts ISO 8601 (``2026-11-01``, ``2026-11-01T12:00:00+01:00``; no offset means
    UTC) or a duration before ``now`` (``90m``, ``36h``, ``7d``, ``2w``).
    """
    value = text.strip()
    duration = _DURATION.match(value)
    if duration:
        amount, unit = duration.groups()
        moment = now - timedelta(**{_DURATION_UNITS[unit]: int(amount)})
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise SettingsError(
                f"{setting}: {text!r} is neither an ISO 8601 time (2026-11-01T12:00:00Z) "
                "nor a duration (90m, 36h, 7d, 2w)"
            ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment
