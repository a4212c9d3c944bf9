"""Skip checks from listings: what the ordered listings of both buckets show of each reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mastodon_s3_sync.mastodon.layout import (
    ObjectRef,
)
from mastodon_s3_sync.storage.listing import UNKNOWN, BucketListing, Listed, Sighting
from mastodon_s3_sync.storage.s3 import Bucket

if TYPE_CHECKING:
    pass
from collections.abc import Callable


@dataclass(frozen=True, slots=True)
class Sightings:
    """What listings showed of a reference before its copy (see :class:`Survey`):
    its destination key, and each source candidate (canonical key first)."""

    destination: Sighting = UNKNOWN
    source: tuple[Sighting, ...] = ()

    def of_candidate(self, index: int) -> Sighting:
        return self.source[index] if index < len(self.source) else UNKNOWN


NOT_SURVEYED = Sightings()


class Survey:
    """Listings of both buckets for one ordered pass (a run, or one queue message).

    Replaces the HEAD requests of the skip check: ask in enumeration order, from one thread.
    """

    def __init__(
        self, source: Bucket, destination: Bucket, destination_key: Callable[[str], str]
    ) -> None:
        self._destination_key = destination_key
        self.source = BucketListing(source.objects)
        self.destination = BucketListing(destination.objects)

    def sight(self, ref: ObjectRef) -> Sightings:
        """Sightings of ``ref``; alternates are looked up only when the canonical key is not
        listed at the source."""
        destination = self.destination.sight(self._destination_key(ref.key))
        source = [self.source.sight(ref.key)]
        if not isinstance(source[0], Listed):
            source.extend(self.source.sight(key) for key in ref.alternates)
        return Sightings(destination, tuple(source))

    @property
    def list_requests(self) -> int:
        return self.source.list_requests + self.destination.list_requests
