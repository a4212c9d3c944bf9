"""The one-machine engine: the catalog feeds a bounded queue, a pool of threads copies.

Memory stays bounded: at most ``queue_size`` references wait, each worker holds at most
one part of one object. Interrupting stops the enumeration, lets each worker finish or
abort (multipart) its current object, and still produces the report.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Protocol

from mastodon_s3_sync.config.settings import DEFAULT_WORKERS
from mastodon_s3_sync.copying.copier import Copier
from mastodon_s3_sync.copying.results import CopyResult
from mastodon_s3_sync.copying.survey import Sightings
from mastodon_s3_sync.mastodon.catalog import CatalogFilter, RowObjects
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.outcomes import RunTotals, Tally

_WAIT_SECONDS = 0.2  # how often a blocked thread looks at the stop flag
_ENUMERATION_REPORT_ROWS = 100  # how often the observer hears how far enumeration got


class RowSource(Protocol):
    """Rows and their objects, per type: the catalog, or a narrowing of it."""

    def count_rows(self, record_type: RecordType, filt: CatalogFilter) -> int: ...

    def walk(self, record_type: RecordType, filt: CatalogFilter) -> Iterator[RowObjects]: ...


class Observer(Protocol):
    """Receives the run's events; called from several threads, one call at a time."""

    def type_started(self, record_type: RecordType, rows: int) -> None: ...

    def enumerated(self, record_type: RecordType, rows: int, objects: int, done: bool) -> None: ...

    def result(self, result: CopyResult) -> None: ...


class Engine:
    """Runs the copy of the selected types with ``workers`` threads."""

    def __init__(
        self,
        catalog: RowSource,
        copier: Copier,
        observer: Observer,
        *,
        workers: int = DEFAULT_WORKERS,
        stop: threading.Event | None = None,
    ) -> None:
        self._catalog = catalog
        self._copier = copier
        self._observer = observer
        self._workers = workers
        self._stop = stop or threading.Event()
        self._queue: queue.Queue[tuple[ObjectRef, Sightings] | None] = queue.Queue(
            maxsize=workers * 8
        )
        self._lock = threading.Lock()
        self.totals = RunTotals()
        self.survey = copier.survey()
        """The listings behind the skip checks (their request count is reported)."""

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=_WAIT_SECONDS)
            except queue.Empty:
                continue
            if item is None:
                return
            ref, seen = item
            result = self._copier.copy_or_fail(ref, seen)
            with self._lock:
                self.totals.add(ref.record_type, result)
                self._observer.result(result)

    def _put(self, item: tuple[ObjectRef, Sightings] | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_WAIT_SECONDS)
                return
            except queue.Full:
                continue

    def _enumerate(self, record_types: Iterable[RecordType], filt: CatalogFilter) -> None:
        survey = self.survey
        for record_type in record_types:
            rows = self._catalog.count_rows(record_type, filt)
            with self._lock:
                self.totals.by_type[record_type] = Tally()
                self._observer.type_started(record_type, rows)
            rows = objects = 0
            for row in self._catalog.walk(record_type, filt):
                if self._stop.is_set():
                    return
                for ref in row.objects:
                    self._put((ref, survey.sight(ref)))
                objects += len(row.objects)
                rows += 1
                if rows % _ENUMERATION_REPORT_ROWS == 0:
                    with self._lock:
                        self._observer.enumerated(record_type, rows, objects, done=False)
            with self._lock:
                self._observer.enumerated(record_type, rows, objects, done=True)

    def _interrupt(self) -> None:
        """Stop taking work; workers finish (or abort) the object they hold."""
        self._stop.set()
        self.totals.interrupted = True

    def run(self, record_types: Iterable[RecordType], filt: CatalogFilter) -> RunTotals:
        """Enumerate in this thread, copy in the pool; returns the totals."""
        threads = [
            threading.Thread(target=self._work, name=f"copier-{n}", daemon=True)
            for n in range(self._workers)
        ]
        for thread in threads:
            thread.start()
        try:
            self._enumerate(record_types, filt)
            for _ in threads:
                self._put(None)
        except KeyboardInterrupt:
            self._interrupt()
        except BaseException:
            # e.g. the database connection dropped: the totals so far are reported as an
            # unfinished run, which a re-run resumes.
            self._interrupt()
            self._join(threads)
            raise
        self._join(threads)
        if self._stop.is_set():
            self.totals.interrupted = True
        return self.totals

    def _join(self, threads: list[threading.Thread]) -> None:
        """Wait for the workers; a Ctrl-C while waiting turns into a clean stop."""
        for thread in threads:
            while thread.is_alive():
                try:
                    thread.join(timeout=_WAIT_SECONDS)
                except KeyboardInterrupt:
                    self._interrupt()
