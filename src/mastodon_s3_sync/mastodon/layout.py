"""Mastodon's object-storage layout: the S3 keys one database row stands for.

Pure functions, no I/O. This module is the executable form of
``shared/docs/mastodon-storage.md`` §1 (keys) and §7 (worked examples); which styles each
model writes is in :mod:`.models` (§2). Section numbers below refer to the spec.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from mastodon_s3_sync.mastodon.models import (
    AVIF,
    MODELS,
    NEWEST_RULES,
    ORIGINAL,
    Attachment,
    Model,
    RecordType,
    Release,
    Row,
    Style,
    is_blank,
    made_private,
)

__all__ = [
    "MAX_KEY_BYTES",
    "MODELS",
    "ObjectRef",
    "RecordType",
    "Release",
    "Row",
    "Style",
    "apply_key_prefix",
    "folders",
    "id_partition",
    "is_blank",
    "is_local",
    "legacy_id_partition",
    "objects_for_row",
    "style_file_name",
    "unsafe_key_reason",
]


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object Mastodon wrote for a row, and where else it may be found.

    ``key`` is the canonical key; ``alternates`` are tried in order when it is absent
    (other ``cache/`` placement, old AVIF ``small``, no key prefix, paperclip 6.0.0
    partition). ``expected_size`` is the database's ``*_file_size`` (originals only).
    ``private``: Mastodon made the object private (a suspended account's media, ...).
    """

    record_type: RecordType
    record_id: int
    attachment: str
    style: str
    key: str
    alternates: tuple[str, ...] = ()
    expected_size: int | None = None
    private: bool = False


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


def _schema_version(row: Row, column: str | None) -> int:
    value = row.get(column) if column is not None else None
    return int(value) if value is not None else 0


def _changed_since(row: Row, attachment: Attachment, since: datetime | None) -> bool:
    if since is None:
        return True
    updated_at = row.get(f"{attachment.name}_updated_at")
    # Unknown change time: include it, a delta pass must not miss an object.
    return updated_at is None or updated_at >= since


@dataclass(frozen=True, slots=True)
class _RowPlaces:
    """What every attachment of one row shares: id, ``cache/`` placements, partitions,
    key prefixes."""

    record_id: int
    remote: bool
    private: bool
    cache_placements: tuple[str, ...]
    """``("", "cache/")``: the other placement is an alternate; ``("",)`` for models
    without ``local?``, whose keys never take ``cache/`` (§2.7)."""
    partitions: tuple[str, ...]
    prefixes: tuple[str, ...]


def _row_places(model: Model, row: Row, key_prefix: str, release: Release) -> _RowPlaces:
    record_id = int(row["id"])
    private = made_private(model.record_type, row, release)
    partitions = dict.fromkeys((id_partition(record_id), legacy_id_partition(record_id)))
    prefixes = ("",) if is_blank(key_prefix) else (apply_key_prefix(key_prefix, ""), "")
    if model.is_local is None:
        return _RowPlaces(record_id, False, private, ("",), tuple(partitions), prefixes)
    remote = not model.is_local(row)
    return _RowPlaces(record_id, remote, private, ("", "cache/"), tuple(partitions), prefixes)


def _attachment_objects(
    model: Model, attachment: Attachment, row: Row, places: _RowPlaces, release: Release
) -> Iterator[ObjectRef]:
    file_name: str = row[f"{attachment.name}_file_name"]
    placements = places.cache_placements
    if places.remote and _schema_version(row, attachment.schema_version_column) >= 1:
        placements = placements[::-1]
    size = row.get(f"{attachment.name}_file_size")
    for style in attachment.styles(row, release):
        names = [style_file_name(file_name, style)]
        if style.name == "small" and row.get(f"{attachment.name}_content_type") == AVIF:
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
            private=places.private,
        )


def objects_for_row(
    record_type: RecordType,
    row: Row,
    *,
    key_prefix: str = "",
    since: datetime | None = None,
    release: Release = NEWEST_RULES,
) -> list[ObjectRef]:
    """Every object Mastodon stored for ``row``, canonical key first (§7).

    Attachments whose file name is blank yield nothing (§6). With ``since``, only
    attachments updated at or after it (or of unknown update time) are listed.
    ``release`` is the database's Mastodon release (the catalog detects it), for the
    styles that depend on it (site uploads, §2.7) and for which objects it made private.
    """
    model = MODELS[record_type]
    refs: list[ObjectRef] = []
    places: _RowPlaces | None = None
    for attachment in model.attachments:
        if is_blank(row.get(f"{attachment.name}_file_name")):
            continue
        if _changed_since(row, attachment, since):
            places = places or _row_places(model, row, key_prefix, release)
            refs.extend(_attachment_objects(model, attachment, row, places, release))
    return refs


def is_local(record_type: RecordType, row: Row) -> bool:
    """Mastodon's ``local?`` for the row: False means remote media cache (re-fetchable).

    Models without ``local?`` (site uploads, backups, ...) hold no remote cache: True.
    """
    rule = MODELS[record_type].is_local
    return rule is None or rule(row)


def folders(record_type: RecordType, key_prefix: str = "") -> tuple[str, ...]:
    """The key prefixes ("folders") under which this type's canonical keys and alternates
    lie: ``[prefix/][cache/]<table>/<attachment>s/``, one per attachment and placement."""
    model = MODELS[record_type]
    caches = ("",) if model.is_local is None else ("", "cache/")
    prefixes = ("",) if is_blank(key_prefix) else (apply_key_prefix(key_prefix, ""), "")
    return tuple(
        dict.fromkeys(
            f"{prefix}{cache}{record_type}/{attachment.plural}/"
            for prefix in prefixes
            for cache in caches
            for attachment in model.attachments
        )
    )
