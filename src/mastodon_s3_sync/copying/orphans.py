"""``orphans``: what the source bucket holds that no database row references. Never deletes.

Cost: one ordered listing of the bucket (about one ListObjectsV2 request per 1,000 objects,
plus one per Mastodon folder) and one pass over the database; memory does not grow with the
bucket, and the keys found are spooled to disk.

How: each of Mastodon's folders (``[prefix/][cache/]<table>/<attachment>s/``) is listed in
key order and merged with the keys the database implies in it, canonical keys and
alternates (an object found at an alternate key is referenced). The database is read in id
order, which is key order only under conditions (storage spec §1.3): 9- and 12-digit
partitions interleave; 13-14 and 16-17 digit ids drop digits and share partitions;
sequential ids of 100,000,000 and more can sort after snowflakes; the instance actor's
``000/000`` sorts after the ids below 1,000,000; a style named ``1024`` sorts before
``original``. So each folder's keys pass through a re-sort window of ``window`` keys, which
absorbs the local disorder (one row's styles, ids sharing a partition). A key that arrives
below one already merged is spooled instead; once the folder is done, those late keys are
sorted on disk and matched against the listed keys the merge had found unreferenced. The
result is exact whatever the order, and disk is used only for out-of-order keys.

Everything outside Mastodon's folders is listed between them (skipping each folder costs
one request) and reported per top-level folder.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import tempfile
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from mastodon_s3_sync.errors import SettingsError, SyncError
from mastodon_s3_sync.mastodon.catalog import CatalogFilter
from mastodon_s3_sync.mastodon.layout import RecordType, apply_key_prefix, folders
from mastodon_s3_sync.storage.listing import LIST_PAGE_KEYS

if TYPE_CHECKING:
    from mastodon_s3_sync.mastodon.catalog import Catalog
    from mastodon_s3_sync.storage.protocol import ObjectStore

REORDER_WINDOW_KEYS = 4096
"""Database keys held per folder to put them in key order (a row has at most 19 keys per
folder, and at most 100 ids share a partition)."""
SORT_RUN_KEYS = 100_000
"""Out-of-order keys sorted in memory at a time, when a folder has any."""
MERGE_FAN_IN = 64
"""Sorted runs merged at once (files open together)."""
OUTSIDE_FOLDERS_SHOWN = 1000
"""Top-level folders outside Mastodon's tallied one by one; the rest are summed together."""
MORE_FOLDERS = "(more folders)"


class ListingOrderError(SyncError):
    """The provider's listing is not in key order: nothing can be merged with it."""


@dataclass
class FolderTally:
    """What one folder holds: objects and bytes listed, referenced by a row, and orphaned.

    Outside Mastodon's folders everything listed is counted as orphaned.
    """

    folder: str
    objects: int = 0
    bytes: int = 0
    referenced: int = 0
    referenced_bytes: int = 0
    at_alternate: int = 0
    """Referenced objects found at an alternate key (other ``cache/`` placement, ...)."""
    orphans: int = 0
    orphan_bytes: int = 0


class _Spool:
    """JSON lines in an anonymous temporary file: written once, then read back in order."""

    def __init__(self) -> None:
        self._file: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.count = 0

    def add(self, item: list[Any]) -> None:
        self._file.write(json.dumps(item) + "\n")
        self.count += 1

    def items(self) -> Iterator[list[Any]]:
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            yield json.loads(line)

    def close(self) -> None:
        self._file.close()


@dataclass
class OrphanReport:
    """Per-folder tallies, and every unreferenced key (spooled: read with :meth:`entries`).

    A context manager: leaving it removes the spool.
    """

    folders: list[FolderTally] = field(default_factory=list)
    """Mastodon's folders, in key order (each table's, whether or not the database has it)."""
    outside: list[FolderTally] = field(default_factory=list)
    """Top-level folders (``""`` for keys without one) outside Mastodon's, in the order
    first listed; after :data:`OUTSIDE_FOLDERS_SHOWN` of them, :data:`MORE_FOLDERS`."""
    list_requests: int = 0
    late_keys: int = 0
    """Database keys that came out of order beyond the window (sorted on disk)."""
    _spool: _Spool = field(default_factory=_Spool, repr=False)

    def add_key(self, folder: str, key: str, size: int) -> None:
        """Spool one unreferenced key of ``folder``."""
        self._spool.add([folder, key, size])

    def entries(self) -> Iterator[tuple[str, str, int]]:
        """``(folder, key, size)`` of every orphan, folder after folder, each in key order;
        then of every object outside Mastodon's folders, in key order."""
        for folder, key, size in self._spool.items():
            yield str(folder), str(key), int(size)

    def close(self) -> None:
        """Remove the spool."""
        self._spool.close()

    def __enter__(self) -> OrphanReport:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _Lister:
    """Ordered ListObjectsV2 pages of one bucket, counted."""

    def __init__(self, objects: ObjectStore, page_keys: int) -> None:
        self._objects = objects
        self._page_keys = page_keys
        self.requests = 0

    def page(self, prefix: str, start_after: str) -> tuple[list[tuple[str, int]], bool]:
        """Keys and sizes after ``start_after``, and whether more follow."""
        self.requests += 1
        answer = self._objects.list_page(prefix, start_after, self._page_keys)
        items = [(str(item["Key"]), int(item["Size"])) for item in answer.get("Contents", [])]
        previous = start_after
        for key, _ in items:
            # S3 orders keys by UTF-8 bytes, which is code point order: Python's str order.
            if key <= previous or not key.startswith(prefix):
                raise ListingOrderError(
                    f"the listing of {prefix or 'the bucket'} is not in key order "
                    f"({key!r} after {previous!r}): this provider cannot be checked for orphans"
                )
            previous = key
        more = bool(answer.get("IsTruncated"))
        if more and not items:
            raise ListingOrderError(f"the listing of {prefix!r} says more follows but shows none")
        return items, more

    def folder(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every key under ``prefix``, in key order."""
        start_after, more = "", True
        while more:
            items, more = self.page(prefix, start_after)
            yield from items
            if items:
                start_after = items[-1][0]


def sorted_on_disk(
    entries: Iterable[list[Any]], run_keys: int = SORT_RUN_KEYS, fan_in: int = MERGE_FAN_IN
) -> Generator[tuple[str, bool]]:
    """``[key, at_alternate]`` entries in order: sorted runs of ``run_keys`` on disk, merged
    ``fan_in`` at a time. Memory holds one run."""
    runs: list[_Spool] = []
    try:
        iterator = iter(entries)
        while chunk := list(itertools.islice(iterator, run_keys)):
            runs.append(_Spool())
            for key, alternate in sorted((str(k), bool(a)) for k, a in chunk):
                runs[-1].add([key, alternate])
        while len(runs) > fan_in:
            merged, first = _Spool(), runs[:fan_in]
            runs = [*runs[fan_in:], merged]
            for key, alternate in heapq.merge(*map(_pairs, first)):
                merged.add([key, alternate])
            for run in first:
                run.close()
        yield from heapq.merge(*map(_pairs, runs))
    finally:  # also when the reader stops early
        for run in runs:
            run.close()


def _pairs(spool: _Spool) -> Iterator[tuple[str, bool]]:
    for key, alternate in spool.items():
        yield str(key), bool(alternate)


class _FolderMerge:
    """One of Mastodon's folders: its listing merged with the database's keys in it."""

    def __init__(self, folder: str, lister: _Lister, window: int) -> None:
        self.tally = FolderTally(folder)
        self.last_listed: str | None = None
        self._listing = lister.folder(folder)
        self._window = window
        self._heap: list[tuple[str, bool]] = []
        self._merged_through: str | None = None
        self._current: tuple[str, int] | None = None
        self._current_referenced = False
        self._started = False
        self._candidates = _Spool()  # listed, not referenced by the keys merged so far
        self._late = _Spool()

    def push(self, key: str, at_alternate: bool) -> None:
        """A key the database implies in this folder (in any order)."""
        heapq.heappush(self._heap, (key, at_alternate))
        if len(self._heap) > self._window:
            self._merge(*heapq.heappop(self._heap))

    def _advance(self) -> None:
        if self._current is not None and not self._current_referenced:
            self._candidates.add(list(self._current))
        self._current = next(self._listing, None)
        self._current_referenced = False
        if self._current is not None:
            self.last_listed = self._current[0]
            self.tally.objects += 1
            self.tally.bytes += self._current[1]

    def _merge(self, key: str, at_alternate: bool) -> None:
        if self._merged_through is not None and key < self._merged_through:
            self._late.add([key, at_alternate])
            return
        self._merged_through = key
        if not self._started:
            self._started = True
            self._advance()
        while self._current is not None and self._current[0] < key:
            self._advance()
        if self._current is not None and self._current[0] == key:
            if not self._current_referenced:
                self._referenced(self._current[1], at_alternate)
            self._current_referenced = True

    def _referenced(self, size: int, at_alternate: bool) -> None:
        self.tally.referenced += 1
        self.tally.referenced_bytes += size
        self.tally.at_alternate += at_alternate

    def finish(self, report: OrphanReport) -> None:
        """Merge what is left; spool the orphans into ``report``."""
        while self._heap:
            self._merge(*heapq.heappop(self._heap))
        if not self._started:
            self._advance()
        while self._current is not None:
            self._advance()
        report.late_keys += self._late.count
        late = sorted_on_disk(self._late.items())
        pending = next(late, None)
        for key, size in self._candidates.items():
            while pending is not None and pending[0] < key:
                pending = next(late, None)
            if pending is not None and pending[0] == key:
                self._referenced(int(size), pending[1])
                continue
            self.tally.orphans += 1
            self.tally.orphan_bytes += int(size)
            report.add_key(self.tally.folder, key, int(size))
        late.close()
        self.close()

    def close(self) -> None:
        """Remove the spools (also when the merge stops half way)."""
        self._candidates.close()
        self._late.close()


def _folder_of(key: str, sorted_folders: list[str]) -> str | None:
    """The folder ``key`` lies in (folders do not nest, so only the greatest one <= key can)."""
    index = bisect.bisect_right(sorted_folders, key) - 1
    if index >= 0 and key.startswith(sorted_folders[index]):
        return sorted_folders[index]
    return None


def _mastodon_folders(key_prefix: str) -> dict[RecordType, tuple[str, ...]]:
    by_type = {record_type: folders(record_type, key_prefix) for record_type in RecordType}
    every = sorted(folder for group in by_type.values() for folder in group)
    for outer, inner in itertools.pairwise(every):
        if inner.startswith(outer):
            raise SettingsError(
                f"key prefix {key_prefix!r} puts Mastodon's folder {inner} inside {outer}: "
                "orphans cannot tell their objects apart"
            )
    return by_type


def _outside_folder(key: str, prefix_path: str) -> str:
    """A key's top-level folder (under the key prefix when it has it); ``""`` for none."""
    base = prefix_path if prefix_path and key.startswith(prefix_path) else ""
    rest = key[len(base) :]
    return base + rest.split("/", 1)[0] + "/" if "/" in rest else base


def _list_outside(
    lister: _Lister, report: OrphanReport, last_listed: dict[str, str | None], prefix_path: str
) -> None:
    sorted_folders = sorted(last_listed)
    tallies: dict[str, FolderTally] = {}
    start_after, more = "", True
    while more:
        items, more = lister.page("", start_after)
        for key, size in items:
            start_after = key
            folder = _folder_of(key, sorted_folders)
            if folder is not None:  # listed already: continue after its last key
                start_after = max(last_listed[folder] or key, key)
                more = True
                break
            name = _outside_folder(key, prefix_path)
            if name not in tallies and len(tallies) >= OUTSIDE_FOLDERS_SHOWN:
                name = MORE_FOLDERS
            tally = tallies.setdefault(name, FolderTally(name))
            tally.objects += 1
            tally.bytes += size
            tally.orphans += 1
            tally.orphan_bytes += size
            report.add_key(name, key, size)
    report.outside = list(tallies.values())


def find_orphans(
    catalog: Catalog,
    objects: ObjectStore,
    *,
    window: int = REORDER_WINDOW_KEYS,
    page_keys: int = LIST_PAGE_KEYS,
) -> OrphanReport:
    """List the bucket ``objects`` reads and report, per folder, what no row of ``catalog``
    references (under the catalog's key prefix; keys without it count as alternates)."""
    key_prefix = catalog.key_prefix
    by_type = _mastodon_folders(key_prefix)
    lister = _Lister(objects, page_keys)
    report = OrphanReport()
    last_listed: dict[str, str | None] = {}
    tallies: list[FolderTally] = []
    merges: dict[str, _FolderMerge] = {}
    try:
        for record_type, type_folders in by_type.items():
            merges = {folder: _FolderMerge(folder, lister, window) for folder in type_folders}
            route = sorted(type_folders)
            for row in catalog.walk(record_type, CatalogFilter()):
                for ref in row.objects:
                    for index, key in enumerate((ref.key, *ref.alternates)):
                        folder = _folder_of(key, route)
                        if folder is not None:
                            merges[folder].push(key, index > 0)
            for folder, merge in merges.items():
                merge.finish(report)
                last_listed[folder] = merge.last_listed
                tallies.append(merge.tally)
        report.folders = sorted(tallies, key=lambda tally: tally.folder)
        _list_outside(lister, report, last_listed, apply_key_prefix(key_prefix, ""))
    except BaseException:
        for merge in merges.values():
            merge.close()
        report.close()
        raise
    report.list_requests = lister.requests
    return report
