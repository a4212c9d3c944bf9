"""What the progress display and the event log cost per object (``python -m
benchmarks.progress_overhead``): the observer calls of a run, without the copy.

Each mode feeds the same 200,000 results to :class:`RunDisplay` off a terminal (plain lines,
the default 15 s interval), with the event log off, at the default level into a file, and at
``-v`` into a file in JSON (one object event per result). Prints microseconds per object,
the median of 5 rounds per mode.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mastodon_s3_sync.cli.logs import LOGGER, configure_logging
from mastodon_s3_sync.cli.progress import RunDisplay
from mastodon_s3_sync.cli.report import OutcomeLog
from mastodon_s3_sync.copying.results import CopyResult
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.outcomes import Outcome

OBJECTS = 200_000
ROUNDS = 5


def results(count: int) -> list[CopyResult]:
    """Copied results of distinct media keys, 50 KB each."""
    return [
        CopyResult(
            ObjectRef(RecordType.MEDIA_ATTACHMENTS, n, "file", "small", f"media/{n}.png"),
            Outcome.COPIED,
            destination_key=f"media/{n}.png",
            bytes_copied=50_000,
        )
        for n in range(count)
    ]


def per_object_us(batch: list[CopyResult], flags: list[str], log_dir: Path) -> float:
    """One round: microseconds per ``result`` call with these logging flags."""
    parser = argparse.ArgumentParser()
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--log-file", type=Path)
    parser.add_argument("--log-format", default="text")
    handler = configure_logging(parser.parse_args(flags), sys.stderr)
    try:
        with contextlib.closing(OutcomeLog()) as log:
            display = RunDisplay(io.StringIO(), log, live=False)
            display.expect({RecordType.MEDIA_ATTACHMENTS: len(batch)})
            started = time.perf_counter()
            for result in batch:
                display.result(result)
            return (time.perf_counter() - started) / len(batch) * 1e6
    finally:
        if handler is not None:
            LOGGER.removeHandler(handler)
            handler.close()
        for leftover in log_dir.iterdir():
            leftover.unlink()


def main() -> None:
    """Print the median microseconds per object of each mode."""
    batch = results(OBJECTS)
    with tempfile.TemporaryDirectory() as work:
        log_dir = Path(work)
        modes = {
            "no event log": [],
            "--log-file (phases, totals)": ["--log-file", str(log_dir / "a.log")],
            "-v --log-file --log-format json": [
                "-v",
                "--log-file",
                str(log_dir / "b.jsonl"),
                "--log-format",
                "json",
            ],
        }
        for name, flags in modes.items():
            rounds = [per_object_us(batch, flags, log_dir) for _ in range(ROUNDS)]
            print(
                f"{name:<34} {statistics.median(rounds):6.2f} us per object "
                f"(range {min(rounds):.2f}-{max(rounds):.2f}, {OBJECTS:,} objects x {ROUNDS})"
            )


if __name__ == "__main__":
    main()
