"""Child processes in tests: the CLI run to completion, a command whose stderr is read as it
comes (to act once it says it is running), and which processes listen on a loopback port (to
prove they stopped).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

PROC = Path("/proc")
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp
CLI = (sys.executable, "-m", "mastodon_s3_sync")
CLI_TIMEOUT_SECONDS = 300


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = CLI_TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[str]:
    """``mastodon-s3-sync ARGS`` to completion (in ``cwd``, ``env`` added to ours), its output
    captured."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


class Child:
    """``python -m mastodon_s3_sync ARGS`` with its stderr collected line by line."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*CLI, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, name="child-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, text: str, timeout: float) -> str:
        """The first line (from now on) containing ``text``; fails the test after
        ``timeout`` seconds or when the child ends first."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"ended before saying {text!r}:\n{self.stderr}")
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"did not say {text!r} within {timeout} s:\n{self.stderr}")

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the child."""
        self.process.send_signal(signum)

    def finish(self, timeout: float) -> int:
        """Wait for the exit (and the rest of stderr); the exit status."""
        status = self.process.wait(timeout=timeout)
        self._reader.join(timeout)
        while (line := self._lines.get(timeout=timeout)) is not None:
            self.lines.append(line)
        return status

    @property
    def stderr(self) -> str:
        """What the child wrote to stderr so far (as read)."""
        return "\n".join(self.lines)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:  # a failed test: leave nothing behind
            self.process.kill()
            self.process.wait()
        self._reader.join(10)
        assert self.process.stderr is not None
        self.process.stderr.close()


def listening_pids(port: int) -> set[int]:
    """The processes with a socket listening on 127.0.0.1:``port`` (or any address)."""
    inodes = set()
    for line in (PROC / "net" / "tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, state, inode = fields[1], fields[3], fields[9]
        if state == _LISTEN and int(address.split(":")[1], 16) == port:
            inodes.add(f"socket:[{inode}]")
    return {
        int(process.name)
        for process in PROC.iterdir()
        if process.name.isdigit() and _open_files(process) & inodes
    }


def _open_files(process: Path) -> set[str]:
    """What the file descriptors of a process point at (``socket:[INODE]`` for sockets)."""
    links: set[str] = set()
    try:
        descriptors = list((process / "fd").iterdir())
    except OSError:  # the process is gone
        return links
    for descriptor in descriptors:
        try:
            links.add(os.readlink(descriptor))
        except OSError:  # closed meanwhile
            continue
    return links


def is_running(pid: int) -> bool:
    """Whether a process ``pid`` exists (and is no zombie)."""
    try:
        status = (PROC / str(pid) / "status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status
