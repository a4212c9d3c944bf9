"""What a person watching a command sees: a live bar per type on a terminal, plain
periodic lines (``run``) or nothing (``plan``, ``verify``) otherwise (logs, CI, ``nohup``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TextIO

from tqdm import tqdm

from mastodon_s3_sync.cli.report import OutcomeLog
from mastodon_s3_sync.copying.results import CopyResult
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.mastodon.models import TYPE_WIDTH
from mastodon_s3_sync.mastodon.plan import Progress, ProgressFactory
from mastodon_s3_sync.outcomes import Tally

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


@dataclass
class _TypeProgress:
    rows_total: int
    started: float
    tally: Tally
    estimated_objects: int = 0
    enumeration_done: bool = False
    bar: tqdm | None = None


class RunDisplay:
    """An engine Observer that shows progress and keeps missing/failed keys in ``log``."""

    def __init__(self, stream: TextIO, log: OutcomeLog, *, live: bool) -> None:
        self._stream = stream
        self._log = log
        self._live = live
        self._types: dict[RecordType, _TypeProgress] = {}
        self._last_line = time.monotonic()

    def type_started(self, record_type: RecordType, rows: int) -> None:
        """A type's enumeration begins; ``rows`` is its row count."""
        state = _TypeProgress(rows, time.monotonic(), Tally(), estimated_objects=rows)
        if self._live:
            state.bar = tqdm(
                total=rows or None,
                desc=f"{record_type!s:<{TYPE_WIDTH}}",
                unit=" obj",
                position=len(self._types),
                file=self._stream,
                dynamic_ncols=True,
            )
        self._types[record_type] = state

    def enumerated(self, record_type: RecordType, rows: int, objects: int, done: bool) -> None:
        """Refine the expected object count from the objects-per-row seen so far."""
        state = self._types[record_type]
        state.enumeration_done = done
        if done:
            state.estimated_objects = objects
        elif rows:
            state.estimated_objects = max(objects, round(state.rows_total * objects / rows))
        if state.bar is not None:
            state.bar.total = state.estimated_objects
            state.bar.refresh()

    def result(self, result: CopyResult) -> None:
        """Count one outcome and show it."""
        self._log.record(result)
        state = self._types[result.ref.record_type]
        state.tally.add(result)
        if state.bar is not None:
            state.bar.update(1)
            tally = state.tally
            state.bar.set_postfix_str(
                f"{tally.bytes_copied / 1024**2:,.1f} MiB, skipped {tally.skipped:,}, "
                f"missing {tally.missing:,}, withheld {tally.withheld:,}, "
                f"failed {tally.failed:,}",
                refresh=False,
            )
        elif time.monotonic() - self._last_line >= PLAIN_INTERVAL_SECONDS:
            self._print_lines()

    def _print_lines(self) -> None:
        self._last_line = now = time.monotonic()
        for record_type, state in self._types.items():
            tally, elapsed = state.tally, max(now - state.started, 1e-9)
            rate = tally.done / elapsed
            total = max(state.estimated_objects, tally.done)
            approx = "" if state.enumeration_done else "~"
            eta = f", ETA {_duration((total - tally.done) / rate)}" if rate and total else ""
            print(
                f"{record_type!s}: {tally.done:,}/{approx}{total:,} objects "
                f"(copied {tally.copied:,}, skipped {tally.skipped:,}, missing {tally.missing:,}, "
                f"withheld {tally.withheld:,}, failed {tally.failed:,}), "
                f"{tally.bytes_copied / 1024**2:,.1f} MiB, "
                f"{rate:,.1f} objects/s{eta}",
                file=self._stream,
                flush=True,
            )

    def close(self) -> None:
        """Close the bars (the closing table follows)."""
        for state in self._types.values():
            if state.bar is not None:
                state.bar.close()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(max(seconds, 0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}"
