"""Mastodon's own configuration (``.env.production``) as a settings layer.

An admin already described the database and the current bucket to Mastodon; reading that
file means they only describe the destination. The file is read by python-dotenv plus what
the ``dotenv`` gem does for Mastodon on top (see :func:`parse_dotenv`), and mapped with the
defaults Mastodon applies (``config/database.yml``, ``config/initializers/paperclip.rb``).
Values are never echoed in errors: they may be secrets.
"""

from __future__ import annotations

import io
import ipaddress
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from dotenv.parser import Binding, parse_stream

from mastodon_s3_sync.config.checks import DEFAULT_PORT, SslMode
from mastodon_s3_sync.config.layers import ResolvedSettings, SettingsLayer, config_layer, resolve
from mastodon_s3_sync.config.settings import URL_FORM
from mastodon_s3_sync.config.values import parse_database_url
from mastodon_s3_sync.errors import SettingsError

MASTODON_DB_DEFAULTS = {
    "DB_HOST": "localhost",
    "DB_PORT": str(DEFAULT_PORT),
    "DB_NAME": "mastodon_production",
    "DB_USER": "mastodon",
}
"""What Mastodon's config/database.yml uses (production) when a variable is unset."""
MASTODON_SSLMODE_DEFAULT = "prefer"
MASTODON_S3_REGION_DEFAULT = "us-east-1"
RAILS_DATABASE_URL_OPTIONS = frozenset(
    {
        "advisory_locks",
        "application_name",
        "checkout_timeout",
        "connect_timeout",
        "encoding",
        "idle_timeout",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "min_messages",
        "pool",
        "prepared_statements",
        "reaping_frequency",
        "statement_limit",
        "timeout",
    }
)
"""``DATABASE_URL`` query parameters Rails accepts that tune its connection pool, statements,
timeouts or logging: they change neither where nor how we connect, so they are left out."""

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_QUOTE = re.compile(r"\s*(?:export\s+)?[^=]*=\s*(['\"]?)")
"""The opening quote of a binding's value (python-dotenv does not say which it had)."""
_YAML_STYLE = re.compile(r"(\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.]*):(?=\s)")
"""``KEY: value``, which the dotenv gem reads as ``KEY=value`` and python-dotenv refuses."""
_SUBSTITUTION = re.compile(r"(\\?)\$(?:\{(\w+)\}|(\w+))")


def _expand(value: str, known: Mapping[str, str]) -> str:
    """``$VAR`` and ``${VAR}`` from earlier lines (the dotenv gem does this; ``\\$`` stays)."""

    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(0)[1:]
        return known.get(match.group(2) or match.group(3), "")

    return _SUBSTITUTION.sub(one, value)


def _bindings(text: str) -> Iterator[Binding]:
    """python-dotenv's bindings, with ``KEY: value`` lines read as the dotenv gem reads them."""
    for binding in parse_stream(io.StringIO(text)):
        yaml_style = _YAML_STYLE.match(binding.original.string)
        if binding.error and yaml_style:
            line = _YAML_STYLE.sub(r"\1=", binding.original.string, count=1)
            for again in parse_stream(io.StringIO(line)):
                yield again._replace(original=binding.original)
        else:
            yield binding


def _malformed(path: Path, binding: Binding) -> SettingsError:
    """What is wrong with a line python-dotenv could not read, without its value."""
    where = f"{path}:{binding.original.line}"
    original = binding.original.string
    opened = _QUOTE.match(original)
    key = _KEY.match(original.strip().removeprefix("export").strip())
    if opened and opened.group(1) and key:
        quote, rest = opened.group(1), original[opened.end() :]
        if quote in rest:
            return SettingsError(
                f"{where}: {key.group(0)}: unexpected text after the closing {quote} quote"
            )
        return SettingsError(f"{where}: {key.group(0)}: the {quote} quote is never closed")
    return _not_an_assignment(where)


def _not_an_assignment(where: str) -> SettingsError:
    return SettingsError(f"{where}: not a KEY=VALUE line (a variable name, =, then the value)")


def parse_dotenv(path: Path) -> dict[str, str]:
    """Read a dotenv file: ``KEY=value`` lines, ``export``, quotes, comments; last one wins.

    python-dotenv reads the syntax; on top, as Mastodon's dotenv gem does: unquoted values
    end at ``#``, ``$VAR`` expands from earlier lines outside single quotes, and
    ``KEY: value`` is an assignment. Anything else is an error naming ``file:line``.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SettingsError(f"--mastodon-env: file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"--mastodon-env: cannot read {str(path)!r}: {error}") from None
    values: dict[str, str] = {}
    for binding in _bindings(text):
        if binding.error:
            raise _malformed(path, binding)
        if binding.key is None:
            continue  # a blank or comment line
        if binding.value is None or not _KEY.fullmatch(binding.key):
            raise _not_an_assignment(f"{path}:{binding.original.line}")
        opened = _QUOTE.match(binding.original.string)
        quote = opened.group(1) if opened else ""
        value = binding.value
        if quote == "'":
            values[binding.key] = value
            continue
        if not quote:
            value = value.split("#", 1)[0].strip()
        values[binding.key] = _expand(value, values)
    return values


def _is_local(host: str) -> bool:
    if host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _sslmode(mastodon_mode: str, host: str, label: str) -> tuple[SslMode, str]:
    """Our sslmode for Mastodon's (libpq's) one, and how it was decided (for config check)."""
    if mastodon_mode in ("prefer", "allow"):
        # libpq falls back to plain text there; we never do silently: a local server needs
        # no TLS, a remote one must offer it (sslmode = disable says otherwise, explicitly).
        local = _is_local(host)
        decided = "disable (local server)" if local else "require (remote server)"
        return ("disable" if local else "require"), f"{label} -> {decided}"
    if mastodon_mode in ("disable", "require", "verify-ca", "verify-full"):
        return mastodon_mode, label  # type: ignore[return-value]
    raise SettingsError(
        f"{label}: unknown sslmode {mastodon_mode!r}; Mastodon (libpq) takes disable, "
        "allow, prefer, require, verify-ca or verify-full"
    )


def _database_table(
    env: Mapping[str, str], where: str
) -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
    table: dict[str, Any] = {}
    labels: dict[tuple[str, str], str] = {}

    def put(key: str, value: Any, label: str) -> None:
        table[key] = value
        labels["database", key] = label

    mastodon_mode = env.get("DB_SSLMODE") or MASTODON_SSLMODE_DEFAULT
    ssl_variable = f"{where} DB_SSLMODE " + (
        mastodon_mode if env.get("DB_SSLMODE") else f"unset (Mastodon's {mastodon_mode})"
    )
    if env.get("DATABASE_URL"):  # wins over the DB_* variables, as in Mastodon (Rails)
        url_label = f"{where} DATABASE_URL"
        try:
            parts = urlsplit(env["DATABASE_URL"].strip())
        except ValueError:  # urllib's reason can quote the host or the password: not shown
            raise SettingsError(
                f"{url_label}: not a valid URL (a [ or ] outside an IPv6 address, or a "
                "character not allowed in a host name; percent-encode [ ] / ? # @ : in the "
                f"password); write it as {URL_FORM}"
            ) from None
        query = parse_qs(parts.query)
        ignored = sorted(set(query) & RAILS_DATABASE_URL_OPTIONS)
        for name in ignored:
            del query[name]
        if "sslmode" in query:  # libpq's modes, mapped below like DB_SSLMODE
            mastodon_mode = query.pop("sslmode")[-1]
            ssl_variable = f"{url_label} sslmode={mastodon_mode}"
        url = parts._replace(query=urlencode(query, doseq=True)).geturl()
        note = f" ({', '.join(ignored)}: Rails' own, ignored)" if ignored else ""
        put("url", url, url_label + note)
        mode, label = _sslmode(mastodon_mode, parse_database_url(url, url_label).host, ssl_variable)
        put("sslmode", mode, label)
    else:
        values = {name: env.get(name) or default for name, default in MASTODON_DB_DEFAULTS.items()}
        for name, key in (("DB_HOST", "host"), ("DB_NAME", "name"), ("DB_USER", "user")):
            unset = "" if env.get(name) else f" (unset: Mastodon's {values[name]})"
            put(key, values[name], f"{where} {name}{unset}")
        try:
            port = int(values["DB_PORT"])
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise SettingsError(f"{where} DB_PORT: not a port number between 1 and 65535")
        put("port", port, f"{where} DB_PORT" + ("" if env.get("DB_PORT") else " (unset)"))
        if env.get("DB_PASS"):  # Mastodon sends '' when unset: no password (peer, trust)
            put("password", env["DB_PASS"], f"{where} DB_PASS")
        mode, label = _sslmode(mastodon_mode, values["DB_HOST"], ssl_variable)
        put("sslmode", mode, label)
    if env.get("DB_SSLROOTCERT"):
        put("sslrootcert", env["DB_SSLROOTCERT"], f"{where} DB_SSLROOTCERT")
    return table, labels


def _source_table(
    env: Mapping[str, str], where: str
) -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
    table: dict[str, Any] = {}
    labels: dict[tuple[str, str], str] = {}

    def put(key: str, variable: str, value: str | None = None, note: str = "") -> None:
        table[key] = env[variable] if value is None else value
        labels["source", key] = f"{where} {variable}{note}"

    if not env.get("S3_BUCKET"):
        raise SettingsError(f"{where}: S3_ENABLED is true but S3_BUCKET is not set")
    put("bucket", "S3_BUCKET")
    if env.get("S3_KEY_PREFIX"):
        put("key_prefix", "S3_KEY_PREFIX")
    if env.get("S3_REGION"):
        put("region", "S3_REGION")
    else:
        put("region", "S3_REGION", MASTODON_S3_REGION_DEFAULT, " (unset: Mastodon's default)")
    if env.get("S3_ENDPOINT"):
        put("endpoint_url", "S3_ENDPOINT")
        # With an endpoint Mastodon forces path-style requests unless told otherwise.
        virtual = env.get("S3_OVERRIDE_PATH_STYLE") == "true"
        note = "=true" if virtual else " not true, with S3_ENDPOINT"
        put("addressing_style", "S3_OVERRIDE_PATH_STYLE", "virtual" if virtual else "path", note)
    keys = [env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")]
    if any(keys) and not all(keys):
        raise SettingsError(
            f"{where}: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together"
        )
    if all(keys):
        put("access_key_id", "AWS_ACCESS_KEY_ID")
        put("secret_access_key", "AWS_SECRET_ACCESS_KEY")
    return table, labels


def local_storage_root(env: Mapping[str, str], rails_root: Path) -> tuple[Path, str]:
    """Where Mastodon's filesystem storage keeps media, and which rule said so.

    ``PAPERCLIP_ROOT_PATH``, else ``:rails_root/public/system`` (config/initializers/
    paperclip.rb); the ``.env.production`` file sits in the Rails root.
    """
    configured = env.get("PAPERCLIP_ROOT_PATH")
    if not configured:
        return rails_root / "public" / "system", "PAPERCLIP_ROOT_PATH unset: public/system"
    expanded = configured.replace(":rails_root", str(rails_root))
    return rails_root / expanded, "PAPERCLIP_ROOT_PATH"


def mastodon_layer(path: Path) -> SettingsLayer:
    """The database, the source bucket and the ACL mode from Mastodon's ``.env`` file."""
    env = parse_dotenv(path)
    where = path.name
    database, labels = _database_table(env, where)
    tables: dict[str, dict[str, Any]] = {"database": database}
    notes: list[str] = []
    if env.get("S3_ENABLED") == "true":
        source, source_labels = _source_table(env, where)
        tables["source"] = source
        labels |= source_labels
        if "S3_PERMISSION" in env and not env["S3_PERMISSION"]:
            # Mastodon sends no ACL at all: the provider has none (R2, owner-enforced buckets).
            tables["copy"] = {"acl": "none"}
            labels["copy", "acl"] = f"{where} S3_PERMISSION (empty: no ACLs)"
    elif env.get("SWIFT_ENABLED") == "true" or env.get("AZURE_ENABLED") == "true":
        notes.append(
            f"{where}: Mastodon keeps media on Swift or Azure; the source is not taken from it"
        )
    else:
        root, rule = local_storage_root(env, path.parent.absolute())
        tables["source"] = {"path": str(root), "key_prefix": ""}
        labels["source", "path"] = f"{where} {rule}"
        labels["source", "key_prefix"] = f"{where} (local storage has no key prefix)"
        notes.append(f"{where}: S3_ENABLED is not true: the source is the directory {root}")
    return SettingsLayer(f".env {path}", tables, labels, base=path.parent, notes=tuple(notes))


def public_url(env: Mapping[str, str]) -> str | None:
    """The base URL Mastodon links media to, as kt-paperclip builds it
    (``config/initializers/paperclip.rb``): ``S3_PROTOCOL://S3_ALIAS_HOST`` (or
    ``S3_CLOUDFRONT_HOST``, ``:s3_alias_url``); else, with ``S3_ENDPOINT``,
    ``S3_PROTOCOL://S3_HOSTNAME/S3_BUCKET`` (``:s3_path_url``); None when S3 is off or
    neither is set."""
    if env.get("S3_ENABLED") != "true":
        return None
    protocol = env.get("S3_PROTOCOL") or "https"
    alias = env.get("S3_ALIAS_HOST") or env.get("S3_CLOUDFRONT_HOST")
    if alias:
        return f"{protocol}://{alias}"
    if "S3_ENDPOINT" in env and env.get("S3_BUCKET"):
        region = env.get("S3_REGION") or "us-east-1"
        host = env.get("S3_HOSTNAME") or f"s3-{region}.amazonaws.com"
        return f"{protocol}://{host}/{env['S3_BUCKET']}"
    return None


def env_file(config: Path | None, mastodon_env: Path | None) -> Path | None:
    """Mastodon's ``.env``: ``mastodon_env`` (the flag), else the config file's."""
    if mastodon_env is not None or config is None:
        return mastodon_env
    return config_layer(config).mastodon_env


def load_settings(
    config: Path | None, mastodon_env: Path | None, flags: SettingsLayer
) -> ResolvedSettings:
    """A command's settings: flags over the config file over Mastodon's ``.env``
    (:func:`env_file`)."""
    config_file = config_layer(config) if config is not None else None
    env_path = mastodon_env or (config_file.mastodon_env if config_file else None)
    layers = [mastodon_layer(env_path)] if env_path is not None else []
    if config_file is not None:
        layers.append(config_file)
    layers.append(flags)
    return resolve(layers)
