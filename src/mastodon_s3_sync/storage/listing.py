"""What a bucket holds, read from its listings instead of a request per object.

Mastodon's keys sort the way its rows do: within one *family* (``[prefix/][cache/]class/
attachment/``) the zero-padded id partition grows with the id, and the database is read in
id order. So one ListObjectsV2 page (1,000 keys) answers the next ~1,000 lookups: a million
objects cost about a thousand list requests per bucket instead of a million HEADs.

A lookup is answered from the listing only when it comes in order (its partition directory is
not below the last one looked up in that family); otherwise the answer is :data:`UNKNOWN`
and the caller asks for the object itself. An object a listing shows is there with that
size; a key it passed over was absent *when listed* — an object written since may be there,
so callers confirm an absence with a request wherever it would decide anything but a copy.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, NamedTuple

import botocore.exceptions

if TYPE_CHECKING:
    from mastodon_s3_sync.storage.protocol import ObjectStore

LIST_PAGE_KEYS = 1000  # ListObjectsV2's maximum
_PARTITION_TAIL = re.compile(r"(?:^|/)\d{3}(?:/\d{3})*$")


class NotListable(Exception):
    """Raised by a store that answers per object only (a directory: ``stat`` per file)."""


class Listed(NamedTuple):
    """An object a listing showed: its size and ETag."""

    size: int
    etag: str


class Unlisted(Enum):
    """What a listing says about a key it did not show."""

    ABSENT = "absent"  # passed over in order: not in the bucket when it was listed
    UNKNOWN = "unknown"  # the listing cannot tell (out of order, not a layout key)


ABSENT = Unlisted.ABSENT
UNKNOWN = Unlisted.UNKNOWN

Sighting = Listed | Unlisted


def family_and_directory(key: str) -> tuple[str, str] | None:
    """``(family, partition directory)`` of a layout key, or None for any other key.

    ``media_attachments/files/000/000/001/original/a.png`` ->
    ``("media_attachments/files/", "media_attachments/files/000/000/001/")``.
    """
    parts = key.rsplit("/", 2)
    if len(parts) != 3:
        return None
    head = parts[0]
    partition = _PARTITION_TAIL.search(head)
    if partition is None:
        return None
    family_end = partition.start() + (1 if head[partition.start()] == "/" else 0)
    return head[:family_end], head + "/"


@dataclass
class _Window:
    """The listed keys of one family from ``floor`` up to ``listed_through``, sorted."""

    floor: str = ""
    listed_through: str | None = None
    exhausted: bool = False
    ordered: bool = True  # False once the server's listing broke the sort order
    keys: list[str] = field(default_factory=list)
    objects: list[Listed] = field(default_factory=list)
    start: int = 0  # keys[:start] are below the floor

    def raise_floor(self, directory: str) -> None:
        self.floor = directory
        self.start = bisect.bisect_left(self.keys, directory, lo=self.start)
        if self.start > len(self.keys) // 2:
            del self.keys[: self.start], self.objects[: self.start]
            self.start = 0

    def covers(self, key: str) -> bool:
        return self.exhausted or (self.listed_through is not None and key <= self.listed_through)

    def find(self, key: str) -> Sighting:
        index = bisect.bisect_left(self.keys, key, lo=self.start)
        if index < len(self.keys) and self.keys[index] == key:
            return self.objects[index]
        return ABSENT


class BucketListing:
    """Answers "is this key there, with which size?" from ordered listings of one bucket.

    Not thread-safe: one reader asks in enumeration order (the thread that reads the database,
    or one queue message at a time).
    """

    def __init__(self, objects: ObjectStore, page_keys: int = LIST_PAGE_KEYS) -> None:
        self._objects = objects
        self._page_keys = page_keys
        self._windows: dict[str, _Window] = {}
        self.list_requests = 0
        self.refused: str | None = None
        """Why the bucket may not be listed (no s3:ListBucket, no such bucket); then every
        answer is UNKNOWN and the caller asks per object, as it would without listings."""

    def sight(self, key: str) -> Sighting:
        """The object under ``key`` as listed, :data:`ABSENT`, or :data:`UNKNOWN`."""
        located = family_and_directory(key)
        if located is None:
            return UNKNOWN
        family, directory = located
        window = self._windows.setdefault(family, _Window())
        if directory < window.floor or not window.ordered or self.refused:
            return UNKNOWN
        if directory > window.floor:
            window.raise_floor(directory)
        while not window.covers(key):
            try:
                self._list_page(family, window)
            except NotListable as error:
                self.refused = str(error)
                return UNKNOWN
            except botocore.exceptions.ClientError as error:
                if _is_refusal(error):
                    self.refused = str(error)
                return UNKNOWN  # otherwise the next lookup lists again
            except botocore.exceptions.BotoCoreError:
                return UNKNOWN  # unreachable after the retries: ask per object meanwhile
            if not window.ordered or self.refused:
                return UNKNOWN
        return window.find(key)

    def _list_page(self, family: str, window: _Window) -> None:
        start_after = window.floor
        if window.listed_through is not None and window.listed_through > start_after:
            start_after = window.listed_through
        else:  # jumping ahead: what was listed below the floor is of no further use
            window.keys, window.objects, window.start = [], [], 0
        self.list_requests += 1
        page = self._objects.list_page(family, start_after, self._page_keys)
        contents = page.get("Contents", [])
        previous = start_after
        for item in contents:
            if item["Key"] <= previous:  # StartAfter ignored or keys unsorted: don't rely on it
                window.ordered = False
                return
            previous = item["Key"]
            window.keys.append(item["Key"])
            window.objects.append(Listed(item["Size"], item.get("ETag", "")))
        if not page.get("IsTruncated"):
            window.exhausted = True
        elif contents:
            window.listed_through = contents[-1]["Key"]
        else:  # "more to come" and nothing shown: this listing cannot be followed
            window.ordered = False


def _is_refusal(error: botocore.exceptions.ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = error.response.get("Error", {}).get("Code", "")
    return status in (403, 404) or code in ("AccessDenied", "NoSuchBucket")
