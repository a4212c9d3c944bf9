"""The CLI's settings sources, in layers: flags over a TOML file over Mastodon's .env.

Each place settings come from is a :class:`SettingsLayer` of raw tables; :func:`resolve`
merges the layers key by key, turns the file's forms into the model's fields (a database
``url``, sizes in MiB, a private key file) and validates the result once through
:class:`~mastodon_s3_sync.config.settings.Settings`, remembering where each value came from
for ``config check``. Errors name ``[section] key`` in the file, or the flag.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from mastodon_s3_sync.config.settings import (
    MAX_PART_BYTES,
    MIB,
    MIN_PART_BYTES,
    URL_FORM,
    BucketSettings,
    CopySettings,
    Settings,
    validated,
)
from mastodon_s3_sync.config.stack import MISSING_SECRET_ARN, STACK_KEYS
from mastodon_s3_sync.config.values import parse_database_url
from mastodon_s3_sync.errors import SettingsError

CONNECTION_KEYS = frozenset(
    {"url", "host", "port", "name", "user", "password", "sslmode", "sslrootcert"}
)
"""The [database] keys a URL stands for: a URL from a later layer replaces them all."""
_BUCKET_KEYS = frozenset(
    {
        "bucket",
        "path",
        "key_prefix",
        "endpoint_url",
        "region",
        "profile",
        "access_key_id",
        "secret_access_key",
        "addressing_style",
        "ca_bundle",
    }
)
STACK_SECTION = "stack"
"""The serverless deployment's settings, read by the CDK app in infra/, ignored here."""
MASTODON_ENV_KEY = "mastodon_env"
"""Top-level config key: the path of Mastodon's .env.production (relative to the file)."""
CONFIG_KEYS: Mapping[str, frozenset[str]] = {
    "database": CONNECTION_KEYS | {"page_size"},
    "source": _BUCKET_KEYS,
    "destination": _BUCKET_KEYS | {"file_mode"},
    "copy": frozenset(
        {
            "acl",
            "workers",
            "multipart_threshold_mib",
            "part_size_mib",
            "skip_backups",
            "private_objects",
        }
    ),
    "bastion": frozenset({"host", "port", "user", "private_key_file", "host_key"}),
}
"""Every section of the config file the CLI reads, and its keys (README: Configuration)."""
FILE_KEYS = {
    "private_key": "private_key_file",
    "multipart_threshold_bytes": "multipart_threshold_mib",
    "part_size_bytes": "part_size_mib",
}
"""Model field -> the config file's key, where they differ (a file, a unit)."""
_PATH_KEYS = {
    ("database", "sslrootcert"),
    ("bastion", "private_key_file"),
    ("source", "ca_bundle"),
    ("destination", "ca_bundle"),
    ("source", "path"),
    ("destination", "path"),
}
_SIDE_KINDS = ("bucket", "path")
"""A side is a bucket or a directory: a later layer's choice replaces an earlier one's."""
DEFAULT_ORIGIN = "default"


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


@dataclass(frozen=True)
class ResolvedSettings:
    """Settings, and where each value came from (``"database.host"`` -> origin)."""

    settings: Settings
    origins: Mapping[str, str]
    notes: tuple[str, ...] = ()


def _missing(section: str, key: str | None) -> str:
    if section == STACK_SECTION:
        return MISSING_SECRET_ARN
    if section in ("source", "destination"):
        return ' is missing: set bucket = "BUCKET-NAME" (or path = "/…/public/system")'
    if section == "database":
        return f' is missing: set it, or set [database] url = "{URL_FORM}"'
    return " is missing"


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
            if section in ("source", "destination") and set(_SIDE_KINDS) & set(table):
                for key in set(_SIDE_KINDS) & set(target):
                    del target[key]
                    labels.pop((section, key), None)
            for key, value in table.items():
                if (section, key) in _PATH_KEYS and isinstance(value, str) and value:
                    value = str(layer.base / Path(value).expanduser())
                    if key == "path":  # a side's directory: checked as absolute
                        value = str(Path(value).absolute())
                target[key] = value
                labels[section, key] = layer.label(section, key)

    def name(section: str, key: str | None) -> str:
        if key is None:
            return f"[{section}]"
        key = FILE_KEYS.get(key, key)
        flag = labels.get((section, key), "")
        return flag if flag.startswith("--") else f"[{section}] {key}"

    settings = validated(_model_fields(merged), name, _missing)
    origins: dict[str, str] = {}
    for section in CONFIG_KEYS:
        value = getattr(settings, section)
        if value is None:
            continue
        table = merged.get(section, {})
        for item in fields(value):
            key = FILE_KEYS.get(item.name, item.name)
            if (section, key) in labels:
                origin = labels[section, key]
            elif section == "database" and "url" in table and key in CONNECTION_KEYS:
                origin = labels[section, "url"]
            else:
                origin = DEFAULT_ORIGIN
            origins[f"{section}.{item.name}"] = origin
    notes = tuple(note for layer in layers for note in layer.notes)
    return ResolvedSettings(settings, origins, notes)


def _model_fields(tables: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The file's forms as the model's fields: a database url, MiB, a private key file."""
    document = {section: dict(table) for section, table in tables.items()}
    database = document.get("database")
    if database is not None and "url" in database:
        url = database.pop("url")
        if not isinstance(url, str):
            raise SettingsError(f"[database] url: expected a string, got {type(url).__name__}")
        clashing = sorted(set(database) & {"host", "name", "user", "password"})
        if clashing:
            raise SettingsError(
                f"[database] url and [database] {', '.join(clashing)} are both set; keep one"
            )
        document["database"] = asdict(parse_database_url(url, "[database] url")) | {
            key: value for key, value in database.items() if key != "sslrootcert" or value
        }
    copy = document.get("copy", {})
    for mib_key, bytes_key in (
        ("multipart_threshold_mib", "multipart_threshold_bytes"),
        ("part_size_mib", "part_size_bytes"),
    ):
        if mib_key in copy:
            copy[bytes_key] = _mib(copy.pop(mib_key), f"[copy] {mib_key}") * MIB
    if "bastion" in document:
        document["bastion"] = _bastion_fields(document["bastion"])
    return document


def _mib(value: object, setting: str) -> int:
    low, high = MIN_PART_BYTES // MIB, MAX_PART_BYTES // MIB
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SettingsError(f"{setting}: must be a whole number of MiB from {low} to {high}")
    return value


def _bastion_fields(table: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(table)
    for required in ("host", "user", "private_key_file", "host_key"):
        if not values.get(required):
            raise SettingsError(
                f"[bastion] {required} is missing (host_key is the bastion's public host key "
                "line, e.g. from ssh-keyscan, so the tunnel cannot be intercepted)"
            )
    key_file = values.pop("private_key_file")
    if not isinstance(key_file, str):
        raise SettingsError(
            f"[bastion] private_key_file: expected a string, got {type(key_file).__name__}"
        )
    key_path = Path(key_file).expanduser()
    try:
        values["private_key"] = key_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(
            f"[bastion] private_key_file: cannot read {str(key_path)!r}: {error}"
        ) from None
    return values


def read_config_file(path: Path, flag: str = "--config") -> dict[str, Any]:
    """The TOML document of ``--config``; errors name the flag and the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{flag}: file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"{flag}: cannot read {str(path)!r}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{flag}: {str(path)!r} is not valid TOML: {error}") from None


def config_layer(path: Path, flag: str = "--config", stack: bool = False) -> SettingsLayer:
    """Read a TOML config file (see README, "Configuration") as a layer, checking its shape.

    ``stack``: keep the ``[stack]`` table (the CDK app's; the CLI leaves it out), even empty.
    """
    document = read_config_file(path, flag)
    tables: dict[str, Mapping[str, Any]] = {STACK_SECTION: {}} if stack else {}
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
        known = STACK_KEYS if section == STACK_SECTION else CONFIG_KEYS[section]
        unknown = sorted(set(value) - known)
        if section == STACK_SECTION:
            if stack and unknown:
                raise SettingsError(
                    f"[stack] unknown key(s): {', '.join(unknown)}; "
                    f"known keys: {', '.join(sorted(STACK_KEYS))}"
                )
            if stack:
                tables[section] = value
            continue
        if unknown:
            raise SettingsError(
                f"{path}: unknown key(s) in [{section}]: {', '.join(unknown)}; "
                f"known keys: {', '.join(sorted(CONFIG_KEYS[section]))}"
            )
        tables[section] = value
    return SettingsLayer(f"config {path}", tables, base=path.parent, mastodon_env=mastodon_env)


def load_config(path: Path, flag: str = "--config", stack: bool = False) -> Settings:
    """Read a TOML config file (see README, "Configuration") into Settings.

    ``stack``: with its ``[stack]`` section checked too (for the CDK app, ``-c config=PATH``).
    """
    return resolve([config_layer(path, flag, stack)]).settings


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
        document["copy"] = {
            FILE_KEYS.get(name, name): value // MIB if name.endswith("_bytes") else value
            for name, value in asdict(copy).items()
        }
    return tomli_w.dumps(document)
