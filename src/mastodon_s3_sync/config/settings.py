"""Typed settings, built once at the edge: flags over a TOML file over Mastodon's .env.

The core never reads the environment: it receives a :class:`Settings`. Each place settings
come from is a :class:`SettingsLayer` of raw tables; :func:`resolve` merges the layers and
checks the result once, remembering where each value came from. Every error names the
setting (``[section] key`` in the file, the flag, or the variable) and says how to fix it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import parse_qs, unquote, urlsplit

import tomli_w

from mastodon_s3_sync.errors import SettingsError

SslMode = Literal["disable", "require", "verify-ca", "verify-full"]
AddressingStyle = Literal["auto", "path", "virtual"]


class AclMode(StrEnum):
    """Which ACL the destination object gets."""

    COPY = "copy"  # the source object's class: public-read or private
    PUBLIC_READ = "public-read"
    PRIVATE = "private"
    NONE = "none"  # no ACL header (Cloudflare R2, buckets with ACLs disabled)


DEFAULT_PORT = 5432
DEFAULT_PAGE_SIZE = 5000
MAX_PAGE_SIZE = 100_000
DEFAULT_WORKERS = 16
MAX_WORKERS = 256
URL_FORM = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


@dataclass(frozen=True)
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

    @property
    def unix_socket(self) -> str | None:
        """Socket file when ``host`` is a directory (as in libpq and Mastodon's DB_HOST)."""
        return f"{self.host}/.s.PGSQL.{self.port}" if self.host.startswith("/") else None

    def describe(self) -> str:
        """``user@host:port/name``, safe to print (no password)."""
        return f"{self.user}@{self.host}:{self.port}/{self.name}"


@dataclass(frozen=True)
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


MIN_PART_MIB, MAX_PART_MIB = 5, 5 * 1024  # S3's limits for all parts but the last


@dataclass(frozen=True)
class SshSettings:
    """How to log in to the SSH bastion in front of the database."""

    host: str
    user: str
    private_key: str = field(repr=False)
    port: int = 22
    host_key: str | None = None
    """The bastion's public host key, ``ssh-ed25519 AAAA…`` (a known_hosts line works too)."""
    insecure_skip_host_key: bool = False
    """Accept any host key: anyone between here and the bastion could read the database."""

    def describe(self) -> str:
        """``user@host:port``, safe to print."""
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class CopySettings:
    """How objects are written: ACL, copier threads, and when to go multipart."""

    acl: AclMode = AclMode.COPY
    workers: int = DEFAULT_WORKERS
    multipart_threshold_mib: int = 64
    part_size_mib: int = 16


@dataclass(frozen=True)
class Settings:
    """Everything a command may need; sections a command does not use may be None."""

    database: DatabaseSettings | None = None
    source: BucketSettings | None = None
    destination: BucketSettings | None = None
    copy: CopySettings = field(default_factory=CopySettings)
    bastion: SshSettings | None = None

    def require_database(self) -> DatabaseSettings:
        """The database settings, or a SettingsError saying how to give them."""
        if self.database is None:
            raise SettingsError(
                f"no database configured: pass --database-url {URL_FORM}, "
                "set [database] url in the config file (--config), "
                "or point --mastodon-env at Mastodon's .env.production"
            )
        return self.database


CONNECTION_KEYS = frozenset(
    {"url", "host", "port", "name", "user", "password", "sslmode", "sslrootcert"}
)
"""The [database] keys a URL stands for: a URL from a later layer replaces them all."""
_DATABASE_KEYS = CONNECTION_KEYS | {"page_size"}
_BUCKET_KEYS = frozenset(
    {
        "bucket",
        "key_prefix",
        "endpoint_url",
        "region",
        "profile",
        "access_key_id",
        "secret_access_key",
        "addressing_style",
    }
)
_BASTION_KEYS = frozenset({"host", "port", "user", "private_key_file", "host_key"})
_COPY_KEYS = frozenset({"acl", "workers", "multipart_threshold_mib", "part_size_mib"})
STACK_SECTION = "stack"
"""The serverless deployment's settings, read by the CDK app in infra/, ignored here."""
MASTODON_ENV_KEY = "mastodon_env"
"""Top-level config key: the path of Mastodon's .env.production (relative to the file)."""
CONFIG_KEYS: Mapping[str, frozenset[str]] = {
    "database": _DATABASE_KEYS,
    "source": _BUCKET_KEYS,
    "destination": _BUCKET_KEYS,
    "copy": _COPY_KEYS,
    "bastion": _BASTION_KEYS,
}
"""Every section of the config file the CLI reads, and its keys (README: Configuration)."""


def _mask(url: str) -> str:
    # Up to the last "@": a password may hold an unescaped / ? # or @.
    return re.sub(r"(://[^:/@]*:).*@", r"\1***@", url)


def sslmode_setting(value: object, setting: str) -> SslMode:
    """Validate a TLS mode for the database."""
    modes = get_args(SslMode)
    if value not in modes:
        raise SettingsError(f"{setting}: unknown sslmode {value!r}; use one of {', '.join(modes)}")
    return value  # type: ignore[return-value]


def _port(value: object, setting: str) -> int:
    try:
        port = int(str(value))
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise SettingsError(f"{setting}: port {value!r} is not a number between 1 and 65535")
    return port


def _page_size(value: object, setting: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_PAGE_SIZE:
        raise SettingsError(f"{setting}: must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return value


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
    host = query.get("host") or unquote(parts.hostname or "") or "localhost"
    if "port" in query:
        port = _port(query["port"], setting)
    return DatabaseSettings(
        name=name,
        user=user,
        host=host,
        port=port or DEFAULT_PORT,
        password=unquote(parts.password) if parts.password is not None else None,
        sslmode=sslmode_setting(query.get("sslmode", "disable"), f"{setting} sslmode"),
        sslrootcert=query.get("sslrootcert") or None,
    )


def _string(section: str, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"[{section}] {key}: expected a string, got {type(value).__name__}")
    return value


def _database_from_table(table: Mapping[str, Any]) -> DatabaseSettings:
    strings = {
        key: _string("database", key, value)
        for key, value in table.items()
        if key not in ("port", "page_size")
    }
    if "url" in strings:
        clashing = sorted(set(strings) & {"host", "name", "user", "password"})
        if clashing:
            raise SettingsError(
                f"[database] url and [database] {', '.join(clashing)} are both set; keep one"
            )
        settings = parse_database_url(strings["url"], "[database] url")
    else:
        for required in ("name", "user"):
            if not strings.get(required):
                raise SettingsError(
                    f"[database] {required} is missing: set it, or set [database] url = "
                    f'"{URL_FORM}"'
                )
        settings = DatabaseSettings(
            name=strings["name"],
            user=strings["user"],
            host=strings.get("host") or "localhost",
            password=strings.get("password"),
        )
    if "port" in table:
        settings = replace(settings, port=_port(table["port"], "[database] port"))
    if "sslmode" in strings:
        settings = replace(
            settings, sslmode=sslmode_setting(strings["sslmode"], "[database] sslmode")
        )
    if strings.get("sslrootcert"):
        settings = replace(settings, sslrootcert=strings["sslrootcert"])
    if "page_size" in table:
        settings = replace(
            settings, page_size=_page_size(table["page_size"], "[database] page_size")
        )
    return settings


def acl_setting(value: object, setting: str) -> AclMode:
    """Validate an ACL mode."""
    modes = [str(mode) for mode in AclMode]
    if value not in modes:
        raise SettingsError(f"{setting}: unknown ACL mode {value!r}; use one of {', '.join(modes)}")
    return AclMode(value)


def workers_setting(value: object, setting: str) -> int:
    """Validate a worker count."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WORKERS:
        raise SettingsError(f"{setting}: must be a whole number from 1 to {MAX_WORKERS}")
    return value


def endpoint_setting(value: str, setting: str) -> str:
    """Validate an endpoint URL (scheme and host)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"{setting}: {value!r} is not an http(s) URL; write it as https://HOST[:PORT]"
        )
    return value


def bucket_name_setting(value: str, setting: str) -> str:
    """Validate a bucket name loosely (providers differ; S3 itself is stricter)."""
    if not value or "/" in value or any(char.isspace() for char in value) or len(value) > 255:
        raise SettingsError(f"{setting}: {value!r} is not a bucket name")
    return value


def parse_s3_url(url: str, setting: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` -> (bucket, key prefix as Mastodon's S3_KEY_PREFIX)."""
    if not url.startswith("s3://"):
        raise SettingsError(
            f"{setting}: {url!r} should look like s3://BUCKET or s3://BUCKET/PREFIX"
        )
    bucket, _, prefix = url[len("s3://") :].partition("/")
    return bucket_name_setting(bucket, setting), prefix


def _copy_from_table(table: Mapping[str, Any]) -> CopySettings:
    settings = CopySettings()
    if "acl" in table:
        settings = replace(settings, acl=acl_setting(table["acl"], "[copy] acl"))
    if "workers" in table:
        settings = replace(settings, workers=workers_setting(table["workers"], "[copy] workers"))
    if "multipart_threshold_mib" in table:
        threshold = _mib(table["multipart_threshold_mib"], "[copy] multipart_threshold_mib")
        settings = replace(settings, multipart_threshold_mib=threshold)
    if "part_size_mib" in table:
        settings = replace(
            settings, part_size_mib=_mib(table["part_size_mib"], "[copy] part_size_mib")
        )
    return settings


def _mib(value: object, setting: str) -> int:
    if not isinstance(value, int) or not MIN_PART_MIB <= value <= MAX_PART_MIB:
        raise SettingsError(
            f"{setting}: must be a whole number of MiB from {MIN_PART_MIB} to {MAX_PART_MIB}"
        )
    return value


def _bastion_from_table(table: Mapping[str, Any]) -> SshSettings:
    values = {key: _string("bastion", key, value) for key, value in table.items() if key != "port"}
    for required in ("host", "user", "private_key_file", "host_key"):
        if not values.get(required):
            raise SettingsError(
                f"[bastion] {required} is missing (host_key is the bastion's public host key "
                "line, e.g. from ssh-keyscan, so the tunnel cannot be intercepted)"
            )
    key_path = Path(values["private_key_file"]).expanduser()
    try:
        private_key = key_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(
            f"[bastion] private_key_file: cannot read {str(key_path)!r}: {error}"
        ) from None
    return SshSettings(
        host=values["host"],
        user=values["user"],
        private_key=private_key,
        port=_port(table["port"], "[bastion] port") if "port" in table else 22,
        host_key=values["host_key"],
    )


def _bucket_from_table(section: str, table: Mapping[str, Any]) -> BucketSettings:
    values = {key: _string(section, key, value) for key, value in table.items()}
    if not values.get("bucket"):
        raise SettingsError(f'[{section}] bucket is missing: set bucket = "BUCKET-NAME"')
    bucket_name_setting(values["bucket"], f"[{section}] bucket")
    if "endpoint_url" in values:
        endpoint_setting(values["endpoint_url"], f"[{section}] endpoint_url")
    style = values.get("addressing_style", "auto")
    if style not in get_args(AddressingStyle):
        raise SettingsError(
            f"[{section}] addressing_style: {style!r} is not one of "
            f"{', '.join(get_args(AddressingStyle))}"
        )
    if bool(values.get("access_key_id")) != bool(values.get("secret_access_key")):
        raise SettingsError(f"[{section}] access_key_id and secret_access_key must be set together")
    return BucketSettings(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SettingsLayer:
    """Raw settings from one place (flags, a config file, Mastodon's .env), not yet checked."""

    origin: str
    """Where the values come from, as shown to the user (``config sync.toml``)."""
    tables: Mapping[str, Mapping[str, Any]]
    """``{section: {key: value}}`` with the config file's sections and keys."""
    labels: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """Finer origins per (section, key), e.g. ``--database-url`` or ``.env DB_HOST``."""
    base: Path = Path()
    """The folder relative file paths of this layer are read from."""
    mastodon_env: Path | None = None
    """A config file's top-level ``mastodon_env``, resolved against its folder."""
    notes: tuple[str, ...] = ()
    """What the user should know about this layer (e.g. why it gave no source)."""

    def label(self, section: str, key: str) -> str:
        """Where one value of this layer came from."""
        return self.labels.get((section, key), self.origin)


DEFAULT_ORIGIN = "default"


@dataclass(frozen=True)
class ResolvedSettings:
    """Settings, and where each value came from (``"database.host"`` -> origin)."""

    settings: Settings
    origins: Mapping[str, str]
    notes: tuple[str, ...] = ()


_PATH_KEYS = {("database", "sslrootcert"), ("bastion", "private_key_file")}
_FIELD_KEYS = {"private_key": "private_key_file"}  # dataclass field -> config key


def resolve(layers: Sequence[SettingsLayer]) -> ResolvedSettings:
    """Merge layers, later ones winning key by key, and check the result.

    A database ``url`` stands for a whole connection: it replaces the connection keys of
    earlier layers (host, port, name, user, password, sslmode, sslrootcert).
    """
    merged: dict[str, dict[str, Any]] = {}
    labels: dict[tuple[str, str], str] = {}
    for layer in layers:
        for section, table in layer.tables.items():
            target = merged.setdefault(section, {})
            if section == "database" and "url" in table:
                for key in CONNECTION_KEYS & set(target):
                    del target[key]
                    labels.pop((section, key), None)
            for key, value in table.items():
                if (section, key) in _PATH_KEYS and isinstance(value, str) and value:
                    value = str(layer.base / Path(value).expanduser())
                target[key] = value
                labels[section, key] = layer.label(section, key)
    settings = _settings_from_tables(merged)
    origins: dict[str, str] = {}
    for section in CONFIG_KEYS:
        value = getattr(settings, section)
        if value is None:
            continue
        table = merged.get(section, {})
        for item in fields(value):
            key = _FIELD_KEYS.get(item.name, item.name)
            if (section, key) in labels:
                origin = labels[section, key]
            elif section == "database" and "url" in table and key in CONNECTION_KEYS:
                origin = labels[section, "url"]
            else:
                origin = DEFAULT_ORIGIN
            origins[f"{section}.{item.name}"] = origin
    notes = tuple(note for layer in layers for note in layer.notes)
    return ResolvedSettings(settings, origins, notes)


def _settings_from_tables(document: Mapping[str, Mapping[str, Any]]) -> Settings:
    return Settings(
        database=_database_from_table(document["database"]) if "database" in document else None,
        source=_bucket_from_table("source", document["source"]) if "source" in document else None,
        destination=(
            _bucket_from_table("destination", document["destination"])
            if "destination" in document
            else None
        ),
        copy=_copy_from_table(document["copy"]) if "copy" in document else CopySettings(),
        bastion=_bastion_from_table(document["bastion"]) if "bastion" in document else None,
    )


def read_config_file(path: Path) -> dict[str, Any]:
    """The TOML document of ``--config``; errors name the flag and the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"--config: file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"--config: cannot read {str(path)!r}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"--config: {str(path)!r} is not valid TOML: {error}") from None


def config_layer(path: Path) -> SettingsLayer:
    """Read a TOML config file (see README, "Configuration") as a layer, checking its shape."""
    document = read_config_file(path)
    tables: dict[str, Mapping[str, Any]] = {}
    mastodon_env = None
    for section, value in document.items():
        if section == MASTODON_ENV_KEY:
            if not isinstance(value, str) or not value.strip():
                raise SettingsError(
                    f"{path}: {MASTODON_ENV_KEY} must be a path, e.g. {MASTODON_ENV_KEY} = "
                    '"/home/mastodon/live/.env.production" (before any [section])'
                )
            mastodon_env = path.parent / Path(value).expanduser()
            continue
        if section not in (*CONFIG_KEYS, STACK_SECTION):
            raise SettingsError(
                f"{path}: unknown section [{section}]; expected "
                f"{', '.join((*CONFIG_KEYS, STACK_SECTION))} (or the top-level key "
                f"{MASTODON_ENV_KEY})"
            )
        if not isinstance(value, dict):
            raise SettingsError(f"{path}: {section} must be a [{section}] table")
        if section == STACK_SECTION:
            continue  # read and checked by the CDK app (infra/)
        unknown = sorted(set(value) - CONFIG_KEYS[section])
        if unknown:
            raise SettingsError(
                f"{path}: unknown key(s) in [{section}]: {', '.join(unknown)}; "
                f"known keys: {', '.join(sorted(CONFIG_KEYS[section]))}"
            )
        tables[section] = value
    return SettingsLayer(f"config {path}", tables, base=path.parent, mastodon_env=mastodon_env)


def load_config(path: Path) -> Settings:
    """Read a TOML config file (see README, "Configuration") into Settings."""
    return resolve([config_layer(path)]).settings


def config_toml(
    database_url: str,
    source: BucketSettings,
    destination: BucketSettings,
    copy: CopySettings | None = None,
) -> str:
    """A config file that :func:`load_config` reads back as these settings (demo, tests)."""
    document: dict[str, Any] = {"database": {"url": database_url}}
    for side, bucket in (("source", source), ("destination", destination)):
        document[side] = {
            name: value for name, value in asdict(bucket).items() if value not in (None, "")
        }
    if copy is not None:
        document["copy"] = asdict(copy)
    return tomli_w.dumps(document)


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
