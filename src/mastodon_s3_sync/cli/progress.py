"""What a person watching a command sees: an overall bar over a bar per type on a terminal,
plain periodic lines with the same figures (``run``) or nothing (``plan``, ``verify``)
otherwise (logs, CI, ``nohup``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from tqdm import tqdm

from mastodon_s3_sync.cli.logs import event, logs_objects, object_event, phase
from mastodon_s3_sync.cli.report import OutcomeLog
from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.copying.results import CopyResult
from mastodon_s3_sync.mastodon.catalog import CatalogFilter
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.mastodon.models import TYPE_WIDTH
from mastodon_s3_sync.mastodon.plan import Progress, ProgressFactory
from mastodon_s3_sync.outcomes import Outcome, Tally
from mastodon_s3_sync.transport.engine import RowSource

PLAIN_INTERVAL_SECONDS = 15.0


def row_bars(stream: TextIO) -> ProgressFactory | None:
    """Live bars of rows read, on a terminal; nothing when ``stream`` is a file or a pipe."""
    if not stream.isatty():
        return None

    def start(record_type: RecordType, estimated: int) -> Progress:
        return tqdm(  # type: ignore[no-any-return]
            total=estimated or None, desc=str(record_type), unit=" rows", file=stream, leave=False
        )

    return start


def listing_phase(
    source: BucketSettings, destination: BucketSettings, stream: TextIO | None
) -> None:
    """Before the first object: the first list pages of each bucket side are read (seconds on
    a large bucket); a directory is not listed."""
    sides = [
        name
        for name, side in (("source", source), ("destination", destination))
        if side.path is None
    ]
    if sides:
        phase("listing", f"listing the {' and the '.join(sides)}…", stream)


ESTIMATE_SAMPLE_ROWS = 200
"""Rows read per type, before the run, to learn its objects per row."""


def estimate_objects(
    catalog: RowSource, record_types: Iterable[RecordType], filt: CatalogFilter
) -> dict[RecordType, int]:
    """Each type's expected object count: its rows (COUNT) times the objects per row of
    its first rows; one COUNT and one small page per type."""
    estimates: dict[RecordType, int] = {}
    for record_type in record_types:
        rows = catalog.count_rows(record_type, filt)
        sample_rows = min(rows, ESTIMATE_SAMPLE_ROWS)
        sample = dataclasses.replace(filt, limit=sample_rows) if sample_rows else filt
        objects = sum(len(row.objects) for row in catalog.walk(record_type, sample)) if rows else 0
        estimates[record_type] = round(rows * objects / sample_rows) if sample_rows else 0
    return estimates


@dataclass
class _TypeProgress:
    estimated_objects: int
    tally: Tally = field(default_factory=Tally)
    enumerated: int = 0
    enumeration_done: bool = False
    bar: tqdm | None = None

    @property
    def expected(self) -> int:
        """Objects this type will have: exact once enumerated, else the larger of the
        estimate and what enumeration has found so far."""
        if self.enumeration_done:
            return self.enumerated
        return max(self.estimated_objects, self.enumerated)


class RunDisplay:
    """An engine Observer that shows progress and keeps missing/failed keys in ``log``.

    One overall line (objects, MiB, MiB/s, ETA) over a line per type: live bars on a
    terminal, plain lines every ``interval`` seconds otherwise, nothing with ``quiet``.
    The overall total is estimated from the database before the run (:func:`estimate_objects`,
    marked ``~``) and exact once every type is enumerated; it never goes down.
    """

    def __init__(
        self,
        stream: TextIO,
        log: OutcomeLog,
        *,
        live: bool,
        quiet: bool = False,
        interval: float = PLAIN_INTERVAL_SECONDS,
    ) -> None:
        self._stream = stream
        self._log = log
        self._live = live and not quiet
        self._plain = not live and not quiet
        self._interval = interval
        self._types: dict[RecordType, _TypeProgress] = {}
        self._overall = Tally()
        self._shown_total = 0
        self._started = self._last_line = time.monotonic()
        self._log_objects = logs_objects()
        self._bar: tqdm | None = None

    def expect(self, estimates: dict[RecordType, int]) -> None:
        """The expected objects per type, before the run starts."""
        for record_type, objects in estimates.items():
            self._types[record_type] = _TypeProgress(objects)
        self._started = self._last_line = time.monotonic()
        total = self._total()
        event("estimate", objects=total, by_type={str(k): v for k, v in estimates.items()})
        if self._live:
            self._bar = tqdm(
                total=total or None,
                desc=f"{'all':<{TYPE_WIDTH}}",
                unit=" obj",
                position=0,
                file=self._stream,
                dynamic_ncols=True,
            )

    def type_started(self, record_type: RecordType, rows: int) -> None:
        """A type's enumeration begins; ``rows`` is its row count."""
        state = self._types.setdefault(record_type, _TypeProgress(rows))
        event("type_started", type=str(record_type), rows=rows)
        if self._live:
            state.bar = tqdm(
                total=state.expected or None,
                desc=f"{record_type!s:<{TYPE_WIDTH}}",
                unit=" obj",
                position=list(self._types).index(record_type) + 1,
                file=self._stream,
                dynamic_ncols=True,
                leave=False,
            )

    def enumerated(self, record_type: RecordType, rows: int, objects: int, done: bool) -> None:
        """How many objects enumeration has found of this type so far."""
        state = self._types[record_type]
        state.enumerated, state.enumeration_done = objects, done
        if state.bar is not None:
            state.bar.total = state.expected
            state.bar.refresh()
        if self._bar is not None:
            self._bar.total = self._total()
            self._bar.refresh()

    def _total(self) -> int:
        """The overall expected objects, never less than shown before."""
        expected = sum(state.expected for state in self._types.values())
        self._shown_total = max(self._shown_total, expected, self._overall.done)
        return self._shown_total

    @property
    def counted(self) -> bool:
        """Whether the total is exact (every type enumerated) rather than estimated."""
        return all(state.enumeration_done for state in self._types.values())

    def result(self, result: CopyResult) -> None:
        """Count one outcome and show it."""
        self._log.record(result)
        if self._log_objects:
            object_event(result)
        self._overall.add(result)
        state = self._types[result.ref.record_type]
        state.tally.add(result)
        if state.bar is not None and self._bar is not None:
            state.bar.update(1)
            self._bar.update(1)
            self._bar.set_postfix_str(self._figures(time.monotonic()), refresh=False)
        elif self._plain and time.monotonic() - self._last_line >= self._interval:
            self._print_lines()

    def _figures(self, now: float) -> str:
        tally, elapsed = self._overall, max(now - self._started, 1e-9)
        mib = tally.bytes_copied / 1024**2
        counts = ", ".join(f"{outcome} {tally.count(outcome):,}" for outcome in Outcome)
        return f"{mib:,.1f} MiB, {mib / elapsed:,.2f} MiB/s ({counts})"

    def _print_lines(self) -> None:
        self._last_line = now = time.monotonic()
        tally, elapsed = self._overall, max(now - self._started, 1e-9)
        total, rate = self._total(), tally.done / elapsed
        how = "counted" if self.counted else "estimated"
        eta = f", ETA {_duration((total - tally.done) / rate)}" if rate and total else ""
        line = (
            f"all: {tally.done:,}/{total:,} objects ({how}), {self._figures(now)}, "
            f"{rate:,.1f} objects/s{eta}"
        )
        print(line, file=self._stream, flush=True)
        event(
            "progress",
            done=tally.done,
            total=total,
            total_is=how,
            bytes_copied=tally.bytes_copied,
            seconds=round(now - self._started, 1),
        )
        for record_type, state in self._types.items():
            if not state.tally.done and not state.enumerated:
                continue
            approx = "" if state.enumeration_done else "~"
            print(
                f"  {record_type!s}: {state.tally.done:,}/{approx}{state.expected:,} objects, "
                f"{state.tally.bytes_copied / 1024**2:,.1f} MiB",
                file=self._stream,
                flush=True,
            )

    def close(self) -> None:
        """Close the bars, and print a last line off a terminal (the closing table follows)
        once the run has begun (not after a failed connection)."""
        for state in self._types.values():
            if state.bar is not None:
                state.bar.close()
        if self._bar is not None:
            self._bar.close()
        if self._plain and self._types:
            self._print_lines()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(max(seconds, 0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}"
