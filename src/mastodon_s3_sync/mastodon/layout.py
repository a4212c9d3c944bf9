"""Mastodon's object-storage layout: the S3 keys one database row stands for.

Pure functions, no I/O. This module is the executable form of
``shared/docs/mastodon-storage.md``; section numbers below refer to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

Row = Mapping[str, Any]
"""One database row: column name -> value (missing optional columns read as NULL)."""


class RecordType(StrEnum):
    """The four Mastodon models whose attachments live in the media bucket."""

    ACCOUNTS = "accounts"
    MEDIA_ATTACHMENTS = "media_attachments"
    CUSTOM_EMOJIS = "custom_emojis"
    PREVIEW_CARDS = "preview_cards"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object Mastodon wrote for a row, and where else it may be found.

    ``key`` is the canonical key; ``alternates`` are tried in order when it is absent
    (other ``cache/`` placement, old AVIF ``small``, no key prefix, paperclip 6.0.0
    partition). ``expected_size`` is the database's ``*_file_size`` (originals only).
    """

    record_type: RecordType
    record_id: int
    attachment: str
    style: str
    key: str
    alternates: tuple[str, ...] = ()
    expected_size: int | None = None


@dataclass(frozen=True, slots=True)
class Style:
    """A Paperclip style: its name and the ``format`` that replaces the extension."""

    name: str
    format: str | None = None


ORIGINAL = Style("original")

_StylesRule = Callable[[Row], tuple[Style, ...]]


@dataclass(frozen=True, slots=True)
class Attachment:
    """A Paperclip attachment of a model: column prefix, plural path segment, styles."""

    name: str
    plural: str
    styles: _StylesRule
    schema_version_column: str


@dataclass(frozen=True, slots=True)
class Model:
    """A model's attachments and its ``local?`` rule (§1.5)."""

    record_type: RecordType
    attachments: tuple[Attachment, ...]
    is_local: Callable[[Row], bool]


# §2.1: MediaAttachment#file_styles, keyed on the DB content type (exact string match).
_VIDEO_CONVERTED = frozenset({"image/gif", "video/webm", "video/quicktime"})
_IMAGE_CONVERTED = frozenset({"image/heic", "image/heif", "image/avif"})
_IMAGE = frozenset({"image/jpeg", "image/png", "image/webp"})
_VIDEO = frozenset({"video/mp4", "video/ogg"})
_AVIF = "image/avif"


def _media_file_styles(row: Row) -> tuple[Style, ...]:
    content_type = row.get("file_content_type")
    if content_type in _VIDEO_CONVERTED or content_type in _VIDEO:
        return (ORIGINAL, Style("small", "png"))
    if content_type == _AVIF:
        # §2.6 and §7: written under 4.0-4.1 rules, where AVIF was not converted.
        return (ORIGINAL, Style("small"))
    if content_type in _IMAGE_CONVERTED:
        return (ORIGINAL, Style("small", "jpeg"))
    if content_type in _IMAGE:
        return (ORIGINAL, Style("small"))
    return (ORIGINAL,)  # audio and anything else: AUDIO_STYLES has no small


def _original_only(_row: Row) -> tuple[Style, ...]:
    return (ORIGINAL,)


def _gif_static(content_type_column: str) -> _StylesRule:
    def styles(row: Row) -> tuple[Style, ...]:
        if row.get(content_type_column) == "image/gif":
            return (ORIGINAL, Style("static", "png"))
        return (ORIGINAL,)

    return styles


def _always_static(_row: Row) -> tuple[Style, ...]:
    return (ORIGINAL, Style("static", "png"))


def _attachment(name: str, plural: str, styles: _StylesRule) -> Attachment:
    return Attachment(name, plural, styles, f"{name}_storage_schema_version")


def is_blank(value: object) -> bool:
    """Ruby's ``blank?`` for the strings Mastodon tests: None, empty or whitespace only."""
    return value is None or (isinstance(value, str) and (not value or value.isspace()))


MODELS: Mapping[RecordType, Model] = {
    RecordType.ACCOUNTS: Model(
        RecordType.ACCOUNTS,
        (
            _attachment("avatar", "avatars", _gif_static("avatar_content_type")),
            _attachment("header", "headers", _gif_static("header_content_type")),
        ),
        is_local=lambda row: row.get("domain") is None,
    ),
    RecordType.MEDIA_ATTACHMENTS: Model(
        RecordType.MEDIA_ATTACHMENTS,
        (
            _attachment("file", "files", _media_file_styles),
            _attachment("thumbnail", "thumbnails", _original_only),
        ),
        is_local=lambda row: is_blank(row.get("remote_url")),
    ),
    RecordType.CUSTOM_EMOJIS: Model(
        RecordType.CUSTOM_EMOJIS,
        (_attachment("image", "images", _always_static),),
        is_local=lambda row: row.get("domain") is None,
    ),
    RecordType.PREVIEW_CARDS: Model(
        RecordType.PREVIEW_CARDS,
        (_attachment("image", "images", _original_only),),
        is_local=lambda _row: False,
    ),
}

_GROUP = re.compile(r"\d{3}")
_ID_PARTITION_LIMIT = 1_000_000_000


def id_partition(record_id: int) -> str:
    """kt-paperclip's ``:id_partition`` (§1.3): 9 or 12 padded digits in groups of 3."""
    width = 9 if record_id < _ID_PARTITION_LIMIT else 12
    return "/".join(_GROUP.findall(f"{record_id:0{width}d}"))


def legacy_id_partition(record_id: int) -> str:
    """paperclip 6.0.0's partition (Mastodon <= 3.4.0): always 9 padded digits."""
    return "/".join(_GROUP.findall(f"{record_id:09d}"))


def _ruby_split_extension(file_name: str) -> tuple[str, str]:
    """``(File.basename(name, ".*"), File.extname(name))`` with Ruby's rules.

    Leading dots never start an extension; a trailing dot is an extension of ".".
    """
    trimmed = file_name.rstrip("/")
    base = trimmed.rsplit("/", 1)[-1] if trimmed else file_name[:1]
    leading_dots = len(base) - len(base.lstrip("."))
    dot = base.rfind(".", leading_dots)
    if dot < 0:
        return base, ""
    return base[:dot], base[dot:]


def style_file_name(file_name: str, style: Style) -> str:
    """Mastodon's ``:filename`` interpolation (§1.4)."""
    if style.name == ORIGINAL.name:
        return file_name
    basename, extname = _ruby_split_extension(file_name)
    extension = style.format or extname.lstrip(".")
    return ".".join(part for part in (basename, extension) if part)


def apply_key_prefix(key_prefix: str, path: str) -> str:
    """``"#{S3_KEY_PREFIX}/" + path``, then Paperclip strips one leading ``/``."""
    key = f"{key_prefix}/{path}" if not is_blank(key_prefix) else path
    return key[1:] if key.startswith("/") else key


MAX_KEY_BYTES = 1024
"""S3's limit on the length of a key, in UTF-8 bytes."""
# Not in a key: ASCII control characters break XML listings and file-backed servers.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def unsafe_key_reason(key: object) -> str | None:
    """Why ``key`` must not be read or written (None when it is a plain storage key).

    A file name from the database or a queue message can hold anything. A key that is
    empty, too long, not UTF-8, has a control character, starts with ``/`` or has a ``.``
    or ``..`` path segment could address something outside the bucket's layout (file-backed
    S3 servers resolve such paths) or break listings, so it is refused rather than copied.
    (Empty segments stay: an ``S3_KEY_PREFIX`` ending in ``/`` gives ``prefix//...`` keys.)
    """
    if not isinstance(key, str) or not key:
        return "not a non-empty string"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if size > MAX_KEY_BYTES:
        return f"longer than {MAX_KEY_BYTES} bytes"
    if _CONTROL_CHARACTER.search(key):
        return "contains a control character (NUL, newline, ...)"
    if key.startswith("/"):
        return "absolute (starts with /)"
    if {".", ".."} & set(key.split("/")):
        return "has a . or .. path segment"
    return None


def _schema_version(row: Row, column: str) -> int:
    value = row.get(column)
    return int(value) if value is not None else 0


def _changed_since(row: Row, attachment: Attachment, since: datetime | None) -> bool:
    if since is None:
        return True
    updated_at = row.get(f"{attachment.name}_updated_at")
    # Unknown change time: include it, a delta pass must not miss an object.
    return updated_at is None or updated_at >= since


@dataclass(frozen=True, slots=True)
class _RowPlaces:
    """What every attachment of one row shares: id, locality, partitions, key prefixes."""

    record_id: int
    remote: bool
    partitions: tuple[str, ...]
    prefixes: tuple[str, ...]


def _row_places(model: Model, row: Row, key_prefix: str) -> _RowPlaces:
    record_id = int(row["id"])
    partitions = dict.fromkeys((id_partition(record_id), legacy_id_partition(record_id)))
    prefixes = ("",) if is_blank(key_prefix) else (apply_key_prefix(key_prefix, ""), "")
    return _RowPlaces(record_id, not model.is_local(row), tuple(partitions), prefixes)


def _attachment_objects(
    model: Model, attachment: Attachment, row: Row, places: _RowPlaces
) -> Iterator[ObjectRef]:
    file_name: str = row[f"{attachment.name}_file_name"]
    in_cache = places.remote and _schema_version(row, attachment.schema_version_column) >= 1
    placements = ("cache/", "") if in_cache else ("", "cache/")
    size = row.get(f"{attachment.name}_file_size")
    for style in attachment.styles(row):
        names = [style_file_name(file_name, style)]
        if style.name == "small" and row.get(f"{attachment.name}_content_type") == _AVIF:
            names.append(style_file_name(file_name, Style("small", "jpeg")))
        candidates = [
            f"{prefix}{cache}{model.record_type}/{attachment.plural}/{partition}/{style.name}/{name}"
            for partition in places.partitions
            for prefix in places.prefixes
            for name in names
            for cache in placements
        ]
        yield ObjectRef(
            record_type=model.record_type,
            record_id=places.record_id,
            attachment=attachment.name,
            style=style.name,
            key=candidates[0],
            alternates=tuple(dict.fromkeys(candidates[1:])),
            expected_size=int(size) if style == ORIGINAL and size is not None else None,
        )


def objects_for_row(
    record_type: RecordType,
    row: Row,
    *,
    key_prefix: str = "",
    since: datetime | None = None,
) -> list[ObjectRef]:
    """Every object Mastodon stored for ``row``, canonical key first (§7).

    Attachments whose file name is blank yield nothing (§6). With ``since``, only
    attachments updated at or after it (or of unknown update time) are listed.
    """
    model = MODELS[record_type]
    refs: list[ObjectRef] = []
    places: _RowPlaces | None = None
    for attachment in model.attachments:
        if is_blank(row.get(f"{attachment.name}_file_name")):
            continue
        if _changed_since(row, attachment, since):
            places = places or _row_places(model, row, key_prefix)
            refs.extend(_attachment_objects(model, attachment, row, places))
    return refs


def is_local(record_type: RecordType, row: Row) -> bool:
    """Mastodon's ``local?`` for the row: False means remote media cache (re-fetchable)."""
    return MODELS[record_type].is_local(row)
