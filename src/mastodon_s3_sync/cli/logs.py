"""The event log of a long command: phases and totals by default, each object at ``-v``.

A ``nohup``'d run of hours needs a record a person or a log shipper can read afterwards:
``--log-file FILE`` appends the events there, ``--log-format json`` writes one JSON object
per line. Without ``--log-file`` events reach stderr only where they add to the display:
in JSON, or with ``-v`` (one line per object). ``-q`` leaves warnings and errors alone.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import UTC, datetime
from typing import Any, TextIO

from mastodon_s3_sync.copying.results import CopyResult
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.outcomes import Outcome, RunTotals

LOGGER = logging.getLogger("mastodon_s3_sync.events")
_FIELDS = "event_fields"


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with its fields (kept as values for the JSON format)."""
    if LOGGER.isEnabledFor(level):
        LOGGER.log(level, name, extra={_FIELDS: fields})


def phase(name: str, line: str, stream: TextIO | None) -> None:
    """A phase that can take seconds begins: ``line`` on ``stream`` (None: quiet) and a
    ``phase`` event, so that neither screen nor log stays blank meanwhile."""
    if stream is not None:
        print(line, file=stream, flush=True)
    event("phase", phase=name)


def object_event(result: CopyResult) -> None:
    """One object's outcome, at ``-v`` (callers check :func:`logs_objects` first)."""
    ref = result.ref
    event(
        "object",
        logging.DEBUG,
        outcome=str(result.outcome),
        key=result.destination_key or ref.key,
        type=str(ref.record_type),
        bytes=result.bytes_copied,
        reason=result.reason,
    )


def totals_event(totals: RunTotals, seconds: float) -> None:
    """The run's totals: each outcome, bytes, seconds, and whether it was interrupted."""
    whole = totals.total()
    event(
        "totals",
        **{str(outcome): whole.count(outcome) for outcome in Outcome},
        bytes_copied=whole.bytes_copied,
        seconds=round(seconds, 1),
        interrupted=totals.interrupted,
    )


def logs_objects() -> bool:
    """Whether object events are written (``-v``): checked once, off the hot path."""
    return LOGGER.isEnabledFor(logging.DEBUG)


class JsonLines(logging.Formatter):
    """One JSON object per event: time, level, event and its fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            **getattr(record, _FIELDS, {}),
        }
        return json.dumps(document, default=str)


class TextLines(logging.Formatter):
    """``TIME LEVEL event key=value …``."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one text line."""
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds")
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, _FIELDS, {}).items())
        return f"{when} {record.levelname.lower()} {record.getMessage()} {fields}".rstrip()


def configure_logging(args: argparse.Namespace, stderr: TextIO) -> logging.Handler | None:
    """The event log the flags ask for; returns its handler (None: no event log)."""
    verbose, quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    log_file, log_format = getattr(args, "log_file", None), getattr(args, "log_format", "text")
    LOGGER.propagate = False
    for old in list(LOGGER.handlers):
        LOGGER.removeHandler(old)
        old.close()
    LOGGER.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    handler: logging.Handler
    if log_file is not None:
        try:
            handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as error:
            raise SettingsError(
                f"--log-file {log_file} cannot be written ({error.strerror})"
            ) from None
    elif log_format == "json" or verbose:
        handler = logging.StreamHandler(stderr)
    else:
        LOGGER.addHandler(logging.NullHandler())
        return None
    handler.setFormatter(JsonLines() if log_format == "json" else TextLines())
    LOGGER.addHandler(handler)
    return handler
