"""Checks shared by every section of the settings model, and the one error adapter.

Each check raises ValueError with a message that does not name the setting; pydantic
carries it, and :func:`settings_error` prefixes the name the user wrote (``[source]
endpoint_url``, ``--workers``, ``environment variable MSS_ACL``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import ConfigDict, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from mastodon_s3_sync.errors import SettingsError

SslMode = Literal["disable", "require", "verify-ca", "verify-full"]
AddressingStyle = Literal["auto", "path", "virtual"]
DEFAULT_PORT = 5432  # PostgreSQL's
DEFAULT_SSH_PORT = 22
SECTION_CONFIG = ConfigDict(extra="forbid")
MISSING = "missing"  # pydantic's error type for a required value, also used for ""


def required_text(value: object) -> object:
    """A required string: "" counts as missing, as an unset value would."""
    if value == "":
        raise PydanticCustomError(MISSING, "Field required")
    return value


def whole(value: object, low: int, high: int, what: str = "") -> int:
    """A whole number from ``low`` to ``high`` (a bool is not one)."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"must be a whole number{what} from {low} to {high}")
    return value


def port(value: object) -> int:
    """A TCP port, also as text (URLs, .env files)."""
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if not 0 < number < 65536:
        raise ValueError(f"port {value!r} is not a number between 1 and 65535")
    return number


def sslmode(value: object) -> SslMode:
    """One of libpq's modes that never falls back to plain text."""
    modes = get_args(SslMode)
    if value not in modes:
        raise ValueError(f"unknown sslmode {value!r}; use one of {', '.join(modes)}")
    return value  # type: ignore[return-value]


def endpoint(value: object) -> object:
    """An http(s) URL with a host."""
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL; write it as https://HOST[:PORT]")
    return value


def bucket_name(value: object) -> object:
    """A bucket name, checked loosely."""
    # Loosely: providers differ, and S3 itself is stricter.
    if isinstance(value, str) and (
        "/" in value or any(char.isspace() for char in value) or len(value) > 255
    ):
        raise ValueError(f"{value!r} is not a bucket name")
    return required_text(value)


def named(check: Callable[[Any], Any], value: object, setting: str) -> Any:
    """``check(value)``, its ValueError as a SettingsError naming ``setting``."""
    try:
        return check(value)
    except ValueError as error:
        raise SettingsError(f"{setting}: {error}") from None


def sslmode_setting(value: object, setting: str) -> SslMode:
    """Validate a TLS mode for the database."""
    return named(sslmode, value, setting)  # type: ignore[no-any-return]


def endpoint_setting(value: str, setting: str) -> str:
    """Validate an endpoint URL (scheme and host)."""
    return named(endpoint, value, setting)  # type: ignore[no-any-return]


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
    if detail["type"] == MISSING and key is not None:
        return SettingsError(f"{setting}{missing(section, key)}")
    if detail["type"] == "string_type":
        return SettingsError(f"{setting}: expected a string, got {type(detail['input']).__name__}")
    cause = detail.get("ctx", {}).get("error")
    message = str(cause) if isinstance(cause, ValueError) else detail["msg"]
    return SettingsError(f"{setting}{':' if key else ''} {message}")
