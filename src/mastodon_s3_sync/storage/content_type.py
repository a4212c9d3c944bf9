"""The Content-Type Mastodon would have sent for a file on its disk (mastodon-storage.md §5).

Paperclip detects each style's type from the file's bytes (Marcel's magic numbers), then
from its name: a preview card's ``.gif`` that holds JPEG is ``image/jpeg``. The sniffer is
``filetype``, pure Python with no dependencies: it knows every format Mastodon stores
(JPEG, PNG, GIF, WebP, AVIF, HEIC, MP4, WebM, Ogg, MP3, FLAC, WAV) from the first bytes,
and needs no system libmagic on the Mastodon host (python-magic would, and libmagic's
answers vary with its version). A file it does not know gets the type of its extension.
"""

from __future__ import annotations

import mimetypes

import filetype

SNIFF_BYTES = 8192
"""How much of a file the sniffer reads (filetype's own limit)."""
FALLBACK = "application/octet-stream"
_CANONICAL = {"image/x-icon": "image/vnd.microsoft.icon"}
"""filetype's name -> the one Marcel (shared-mime-info) gives, which Mastodon sends."""


def detect(head: bytes, key: str) -> str:
    """The MIME type of a file from its first :data:`SNIFF_BYTES`, else from its name."""
    sniffed = filetype.guess_mime(head) if head else None
    if sniffed:
        return _CANONICAL.get(str(sniffed), str(sniffed))
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or FALLBACK
