"""Timing a child process: wall time, its own CPU time and peak RSS.

Peak RSS is read by GNU time, not by ``wait4`` from this process: a child forked from a
large parent inherits the parent's high-water mark across ``exec`` on Linux, which
would report the benchmark's own size instead of the tool's.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass

GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Measurement:
    """One timed run of a command."""

    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    stderr: str


def timed(command: list[str], env: dict[str, str] | None = None) -> Measurement:
    """Run ``command`` to completion under GNU time; raise SystemExit if it fails."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as usage:
        started = time.perf_counter()
        result = subprocess.run(
            [GNU_TIME, "-o", usage.name, "-f", "%M %U %S", *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            check=False,
        )
        seconds = time.perf_counter() - started
        fields = usage.read().split()
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{result.stderr[-3000:]}")
    peak_kib, user, system = int(fields[-3]), float(fields[-2]), float(fields[-1])
    return Measurement(seconds, user + system, peak_kib / 1024, result.stderr)
