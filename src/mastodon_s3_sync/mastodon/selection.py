"""Which kinds of object a command walks, and why it leaves out each of the others.

Nothing is left behind silently: ``plan``, ``run``, ``verify``, ``enumerate`` and the
enumerator function end with one line per kind they did not walk, whether a setting left it
out (``backups: skipped by --skip-backups``) or the database has no table for it
(``imports: no table (Mastodon 4.4+)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mastodon_s3_sync.mastodon.catalog import Catalog, SkippedType
from mastodon_s3_sync.mastodon.layout import RecordType

ALL_TYPES = tuple(RecordType)


@dataclass(frozen=True)
class Selection:
    """The kinds to walk, and the kinds set aside before the database is asked, with why."""

    record_types: tuple[RecordType, ...] = ALL_TYPES
    """Walked in this order; a database without a kind's table yields none of it."""
    set_aside: Mapping[RecordType, str] = field(default_factory=dict)

    def walked(self, catalog: Catalog) -> list[RecordType]:
        """The kinds the database has, of those selected."""
        return [t for t in self.record_types if catalog.skip_reason(t) is None]

    def left_out(self, catalog: Catalog) -> list[SkippedType]:
        """Every kind not walked, with why, in :class:`RecordType` order."""
        reasons = dict(self.set_aside)
        absent = catalog.skipped_types(self.record_types)
        reasons.update((line.record_type, line.reason) for line in absent)
        return [SkippedType(t, reasons[t]) for t in RecordType if t in reasons]


def select(
    requested: Iterable[RecordType] = ALL_TYPES,
    *,
    skip_backups: str | None = None,
    skip_remote_cache: str | None = None,
    unrequested: str | None = None,
) -> Selection:
    """The ``requested`` kinds, less those a setting leaves out.

    ``skip_backups`` and ``skip_remote_cache`` name the setting that asked (None: not
    asked): every preview card is remote cache, so the latter leaves the kind out whole.
    ``unrequested`` is the reason shown for each kind not requested (None: not shown).
    """
    wanted = tuple(dict.fromkeys(requested))
    set_aside: dict[RecordType, str] = {}
    if unrequested is not None:
        set_aside.update((t, unrequested) for t in RecordType if t not in wanted)
    if skip_backups is not None and RecordType.BACKUPS in wanted:
        set_aside[RecordType.BACKUPS] = f"skipped by {skip_backups}"
    if skip_remote_cache is not None and RecordType.PREVIEW_CARDS in wanted:
        set_aside[RecordType.PREVIEW_CARDS] = (
            f"skipped by {skip_remote_cache} (all remote cache: Mastodon fetches them again)"
        )
    return Selection(tuple(t for t in wanted if t not in set_aside), set_aside)
