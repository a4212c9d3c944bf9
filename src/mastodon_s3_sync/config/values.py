"""Values users write in one string: database URLs, ``s3://`` URLs, points in time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from mastodon_s3_sync.config.checks import (
    DEFAULT_PORT,
    bucket_name,
    named,
    port,
    sslmode_setting,
)
from mastodon_s3_sync.config.settings import URL_FORM, DatabaseSettings
from mastodon_s3_sync.errors import SettingsError


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
        number = parts.port
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
        number = named(port, query["port"], setting)
    return DatabaseSettings(
        name=name,
        user=user,
        host=query.get("host") or unquote(parts.hostname or "") or "localhost",
        port=number or DEFAULT_PORT,
        password=unquote(parts.password) if parts.password is not None else None,
        sslmode=sslmode_setting(query.get("sslmode", "disable"), f"{setting} sslmode"),
        sslrootcert=query.get("sslrootcert") or None,
    )


def parse_side(text: str, setting: str) -> dict[str, str]:
    """A side as given on the command line: ``s3://BUCKET[/PREFIX]`` -> bucket and key
    prefix; ``file:///PATH`` or a path -> a directory (made absolute)."""
    if text.startswith("s3://"):
        bucket, prefix = parse_s3_url(text, setting)
        return {"bucket": bucket, "key_prefix": prefix}
    if text.startswith("file://"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise SettingsError(f"{setting}: {text!r} should look like file:///PATH")
        return {"path": unquote(parts.path), "key_prefix": ""}
    if "://" in text:
        raise SettingsError(
            f"{setting}: {text!r} should look like s3://BUCKET[/PREFIX], file:///PATH or a path"
        )
    return {"path": str(Path(text).expanduser().absolute()), "key_prefix": ""}


def parse_s3_url(url: str, setting: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` -> (bucket, key prefix as Mastodon's S3_KEY_PREFIX)."""
    if not url.startswith("s3://"):
        raise SettingsError(
            f"{setting}: {url!r} should look like s3://BUCKET or s3://BUCKET/PREFIX"
        )
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise SettingsError(f"{setting}: {bucket!r} is not a bucket name")
    return named(bucket_name, bucket, setting), prefix


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
