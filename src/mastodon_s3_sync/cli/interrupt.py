"""Ctrl-C during a copy: stop cleanly, so the report still says what was done."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import TextIO


@contextlib.contextmanager
def ctrl_c_stops(stop: threading.Event, stderr: TextIO) -> Iterator[None]:
    """The first Ctrl-C sets ``stop``; the second one quits at once."""

    def first(_signal: int, _frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print(
            "\nstopping: finishing the objects in flight (Ctrl-C again quits now)",
            file=stderr,
            flush=True,
        )

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
