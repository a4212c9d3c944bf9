"""Mastodon's models whose attachments live in the media bucket, and the styles of each.

Pure data and functions, no I/O: the executable form of ``shared/docs/mastodon-storage.md``
§2 (which styles a row has, per model, per row and per release) and §1.5 (``local?``, which
decides ``cache/``). :mod:`.layout` turns them into keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

Row = Mapping[str, Any]
"""One database row: column name -> value (missing optional columns read as NULL)."""


class RecordType(StrEnum):
    """The Mastodon models (tables) whose attachments live in the media bucket."""

    ACCOUNTS = "accounts"
    MEDIA_ATTACHMENTS = "media_attachments"
    CUSTOM_EMOJIS = "custom_emojis"
    PREVIEW_CARDS = "preview_cards"
    SITE_UPLOADS = "site_uploads"
    PREVIEW_CARD_PROVIDERS = "preview_card_providers"
    BACKUPS = "backups"
    IMPORTS = "imports"


TYPE_WIDTH = max(len(record_type) for record_type in RecordType)
"""The longest type name (``preview_card_providers``): the type column of every table."""


class Release(NamedTuple):
    """A Mastodon release (``major.minor``), as far as the storage rules tell them apart."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


OLDEST_RELEASE = Release(3, 1)
"""The oldest release whose database the catalog reads."""
SITE_UPLOAD_STYLES_SINCE = Release(4, 0)
"""The server thumbnail's ``@1x``/``@2x`` styles (commit b04633a961, #19348); before, none."""
PRIVATE_SUSPENDED_MEDIA_SINCE = Release(3, 3)
"""Suspending an account makes its media private instead of deleting it (commit ed099d8bdc,
#14726); unsuspending makes it public again."""
PRIVATE_BACKUPS_SINCE = Release(4, 2)
"""Backup dumps uploaded ``private`` (commit 75e5a6e437, #24136)."""
SITE_UPLOAD_ICONS_SINCE = Release(4, 3)
"""The ``favicon`` and ``app_icon`` site uploads (commit bc24c4792d, #30040)."""
PRIVATE_REMOVED_MEDIA_SINCE = Release(4, 4)
"""Media of a removed status kept for moderation is made private (commit 24d943fee0, #34872)."""
NEWEST_RULES = PRIVATE_REMOVED_MEDIA_SINCE
"""The newest release whose rules differ from its predecessor's: the default when unknown."""


@dataclass(frozen=True, slots=True)
class Style:
    """A Paperclip style: its name and the ``format`` that replaces the extension."""

    name: str
    format: str | None = None


ORIGINAL = Style("original")

StylesRule = Callable[[Row, Release], tuple[Style, ...]]
"""Given a row and the database's release, the styles Mastodon wrote for one attachment."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A Paperclip attachment of a model: column prefix, plural path segment, styles.

    ``schema_version_column`` is None for models that have no ``*_storage_schema_version``.
    """

    name: str
    plural: str
    styles: StylesRule
    schema_version_column: str | None


@dataclass(frozen=True, slots=True)
class Model:
    """A model's attachments, its ``local?`` rule (§1.5) and its upload ACL (§5)."""

    record_type: RecordType
    attachments: tuple[Attachment, ...]
    is_local: Callable[[Row], bool] | None
    """Mastodon's ``local?``; None for models without one, whose keys never take ``cache/``."""
    private_since: Release | None = None
    """From this release Mastodon uploads the objects ``private`` (no ACL when
    ``S3_PERMISSION`` is empty); before it, and for other models, ``S3_PERMISSION``."""


def is_blank(value: object) -> bool:
    """Ruby's ``blank?`` for the strings Mastodon tests: None, empty or whitespace only."""
    return value is None or (isinstance(value, str) and (not value or value.isspace()))


# §2.1: MediaAttachment#file_styles, keyed on the DB content type (exact string match).
_VIDEO_CONVERTED = frozenset({"image/gif", "video/webm", "video/quicktime"})
_IMAGE_CONVERTED = frozenset({"image/heic", "image/heif", "image/avif"})
_IMAGE = frozenset({"image/jpeg", "image/png", "image/webp"})
_VIDEO = frozenset({"video/mp4", "video/ogg"})
AVIF = "image/avif"


def _media_file_styles(row: Row, _release: Release) -> tuple[Style, ...]:
    content_type = row.get("file_content_type")
    if content_type in _VIDEO_CONVERTED or content_type in _VIDEO:
        return (ORIGINAL, Style("small", "png"))
    if content_type == AVIF:
        # §2.6 and §7: written under 4.0-4.1 rules, where AVIF was not converted.
        return (ORIGINAL, Style("small"))
    if content_type in _IMAGE_CONVERTED:
        return (ORIGINAL, Style("small", "jpeg"))
    if content_type in _IMAGE:
        return (ORIGINAL, Style("small"))
    return (ORIGINAL,)  # audio and anything else: AUDIO_STYLES has no small


def _original_only(_row: Row, _release: Release) -> tuple[Style, ...]:
    return (ORIGINAL,)


def _gif_static(content_type_column: str) -> StylesRule:
    def styles(row: Row, _release: Release) -> tuple[Style, ...]:
        if row.get(content_type_column) == "image/gif":
            return (ORIGINAL, Style("static", "png"))
        return (ORIGINAL,)

    return styles


def _always_static(_row: Row, _release: Release) -> tuple[Style, ...]:
    return (ORIGINAL, Style("static", "png"))


def _png(*names: str) -> tuple[Style, ...]:
    return (ORIGINAL, *(Style(name, "png") for name in names))


# §2.7: SiteUpload::STYLES per `var`, newest release first; every derived style is `png`.
_THUMBNAIL = _png("@1x", "@2x")
_FAVICON_SIZES = (16, 32, 48)
_APPLE_ICON_SIZES = (57, 60, 72, 76, 114, 120, 144, 152, 167, 180, 1024)
_ANDROID_ICON_SIZES = (36, 48, 72, 96, 144, 192, 256, 384, 512)
# The union, first occurrence kept (72 and 144 are in both): 18 sizes.
_APP_ICON_SIZES = tuple(dict.fromkeys(_APPLE_ICON_SIZES + _ANDROID_ICON_SIZES))
_SITE_UPLOAD_STYLES: tuple[tuple[Release, Mapping[str, tuple[Style, ...]]], ...] = (
    (
        SITE_UPLOAD_ICONS_SINCE,
        {
            "thumbnail": _THUMBNAIL,
            "mascot": (ORIGINAL,),
            "favicon": _png(*map(str, _FAVICON_SIZES)),
            "app_icon": _png(*map(str, _APP_ICON_SIZES)),
        },
    ),
    (SITE_UPLOAD_STYLES_SINCE, {"thumbnail": _THUMBNAIL, "mascot": (ORIGINAL,)}),
)


def _site_upload_styles(row: Row, release: Release) -> tuple[Style, ...]:
    for since, by_var in _SITE_UPLOAD_STYLES:
        if release >= since:
            return by_var.get(str(row.get("var")), (ORIGINAL,))  # unknown var: STYLES[var] nil
    return (ORIGINAL,)  # before 4.0 SiteUpload had no styles


def _attachment(name: str, plural: str, styles: StylesRule, *, versioned: bool) -> Attachment:
    return Attachment(name, plural, styles, f"{name}_storage_schema_version" if versioned else None)


def _domain_is_nil(row: Row) -> bool:
    return row.get("domain") is None


MODELS: Mapping[RecordType, Model] = {
    RecordType.ACCOUNTS: Model(
        RecordType.ACCOUNTS,
        (
            _attachment("avatar", "avatars", _gif_static("avatar_content_type"), versioned=True),
            _attachment("header", "headers", _gif_static("header_content_type"), versioned=True),
        ),
        is_local=_domain_is_nil,
    ),
    RecordType.MEDIA_ATTACHMENTS: Model(
        RecordType.MEDIA_ATTACHMENTS,
        (
            _attachment("file", "files", _media_file_styles, versioned=True),
            _attachment("thumbnail", "thumbnails", _original_only, versioned=True),
        ),
        is_local=lambda row: is_blank(row.get("remote_url")),
    ),
    RecordType.CUSTOM_EMOJIS: Model(
        RecordType.CUSTOM_EMOJIS,
        (_attachment("image", "images", _always_static, versioned=True),),
        is_local=_domain_is_nil,
    ),
    RecordType.PREVIEW_CARDS: Model(
        RecordType.PREVIEW_CARDS,
        (_attachment("image", "images", _original_only, versioned=True),),
        is_local=lambda _row: False,
    ),
    # §2.7: none of these defines local?, so none is ever under cache/.
    RecordType.SITE_UPLOADS: Model(
        RecordType.SITE_UPLOADS,
        (_attachment("file", "files", _site_upload_styles, versioned=False),),
        is_local=None,
    ),
    RecordType.PREVIEW_CARD_PROVIDERS: Model(
        RecordType.PREVIEW_CARD_PROVIDERS,
        (_attachment("icon", "icons", _always_static, versioned=False),),
        is_local=None,
    ),
    RecordType.BACKUPS: Model(
        RecordType.BACKUPS,
        (_attachment("dump", "dumps", _original_only, versioned=False),),
        is_local=None,
        private_since=PRIVATE_BACKUPS_SINCE,
    ),
    RecordType.IMPORTS: Model(
        RecordType.IMPORTS,
        (_attachment("data", "data", _original_only, versioned=False),),
        is_local=None,
    ),
}


def uploaded_private(record_type: RecordType, release: Release) -> bool:
    """Whether Mastodon at ``release`` uploads this type's objects ``private`` (§5)."""
    since = MODELS[record_type].private_since
    return since is not None and release >= since


ACCOUNT_SUSPENDED = "account_suspended"
"""The catalog's column for a media row: its account is suspended (``suspended_at``)."""
STATUS_REMOVED = "status_removed"
"""The catalog's column for a media row: its status is removed but kept (``deleted_at``)."""


def made_private(record_type: RecordType, row: Row, release: Release) -> bool:
    """Whether Mastodon at ``release`` made this row's objects private (§5, and
    ``docs/privacy-rules.md``): backups from 4.2; media of a suspended account (local or
    remote, not its avatar or header) from 3.3; media of a removed status kept for
    moderation from 4.4."""
    if uploaded_private(record_type, release):
        return True
    if record_type != RecordType.MEDIA_ATTACHMENTS:
        return False
    return (release >= PRIVATE_SUSPENDED_MEDIA_SINCE and bool(row.get(ACCOUNT_SUSPENDED))) or (
        release >= PRIVATE_REMOVED_MEDIA_SINCE and bool(row.get(STATUS_REMOVED))
    )


def never_public(record_type: RecordType) -> bool:
    """Whether a fixed ``public-read`` must not apply to this type's objects: Mastodon
    uploads them private (from some release), as users' archives must be."""
    return MODELS[record_type].private_since is not None
