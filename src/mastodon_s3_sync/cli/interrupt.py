"""Ctrl-C and SIGTERM: one clean stop, so the report still says what was done.

A terminal stops a program with SIGINT; systemd, Docker and Kubernetes with SIGTERM. Both
stop a command the same way (uploads aborted, report written, servers stopped); only the
exit status tells them apart: 128 + the signal's number, 130 or 143.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import TextIO

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_STATUSES = frozenset(128 + each for each in STOP_SIGNALS)
"""The exit statuses of a command stopped by a signal."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python raises KeyboardInterrupt for SIGINT: every place that
    stops cleanly on Ctrl-C stops the same way on it."""


def interrupted_status(interrupt: KeyboardInterrupt) -> int:
    """The exit status of a command a signal stopped: 143 for SIGTERM, else 130."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside, SIGTERM raises :class:`Terminated` (the default would end the process
    without running a single ``finally``: no report, servers left running)."""

    def terminated(_signal: int, _frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopRequest:
    """Which signal asked a command to stop, if one has."""

    signum: int | None = None

    @property
    def exit_status(self) -> int:
        """128 + the signal's number (130 when none was heard)."""
        return 128 + (self.signum or signal.SIGINT)


@contextlib.contextmanager
def ctrl_c_stops(stop: threading.Event, stderr: TextIO) -> Iterator[StopRequest]:
    """The first Ctrl-C or SIGTERM sets ``stop``; a second one quits at once."""
    heard = StopRequest()

    def first(signum: int, _frame: object) -> None:
        heard.signum = signum
        stop.set()
        for each, handler in previous.items():
            signal.signal(each, handler)
        again = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(
            f"\nstopping: finishing the objects in flight ({again} again quits now)",
            file=stderr,
            flush=True,
        )

    previous = {each: signal.signal(each, first) for each in STOP_SIGNALS}
    try:
        yield heard
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
