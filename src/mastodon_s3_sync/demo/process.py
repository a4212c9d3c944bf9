"""The lifecycle shared by the sandbox's throwaway servers on the loopback interface.

The S3 servers, the SSH bastion and the PostgreSQL cluster are all "something serving on
127.0.0.1:PORT that a test starts, uses and stops". :class:`LoopbackService` holds what
they all share (context manager, ``host``/``port``, stopping at exit in the owning process
only); :class:`LoopbackServer` adds the child process itself for the servers this module
runs directly: a scratch directory with a log, a free port retried on a race, a wait
until the server answers, SIGTERM then SIGKILL, and a stop when the parent process dies.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, ClassVar, Self

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "AUTO_PORT_ATTEMPTS",
    "LOOPBACK_HOST",
    "LoopbackServer",
    "LoopbackService",
    "free_loopback_port",
    "log_tail",
]

LOOPBACK_HOST = "127.0.0.1"
START_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0
# A free port found by binding to port 0 can be taken before the server binds it.
AUTO_PORT_ATTEMPTS = 3
_POLL_INTERVAL_S = 0.05
_LOG_TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a server log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when this process dies.

    atexit hooks do not run when the test process is killed; this still stops the
    server. Linux ties the signal to the thread that forked, so it is only used when
    starting from the main thread (a worker thread may end long before the process).
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))

    return set_parent_death_signal


class LoopbackService(ABC):
    """Something serving on 127.0.0.1 that is started, used as a context manager and stopped.

    Subclasses implement :meth:`start` (calling :meth:`_stop_at_exit` once up) and
    :meth:`_shut_down`, and set ``_port``.
    """

    error: ClassVar[type[RuntimeError]] = RuntimeError
    """What this service raises when it cannot be found, started or used."""

    def __init__(self, port: int | None = None) -> None:
        self._requested_port = port
        self._port: int | None = None
        self._owner_pid = os.getpid()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """The address the server listens on (loopback only)."""
        return LOOPBACK_HOST

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._port is None:
            raise self._not_started()
        return self._port

    @abstractmethod
    def start(self) -> Self:
        """Start the server; a no-op when running."""

    def stop(self) -> None:
        """Stop the server and delete its files; safe to call more than once."""
        if os.getpid() != self._owner_pid:
            # A forked child runs atexit hooks too; the server belongs to the parent.
            return
        atexit.unregister(self.stop)
        self._shut_down()

    @abstractmethod
    def _shut_down(self) -> None:
        """Stop the server if it runs and delete the files it owns."""

    def _not_started(self) -> RuntimeError:
        return self.error(f"{type(self).__name__} has not been started")

    def _stop_at_exit(self) -> None:
        """Make this process the owner and stop the server when it exits."""
        self._owner_pid = os.getpid()
        atexit.register(self.stop)


class LoopbackServer(LoopbackService):
    """A child process serving on 127.0.0.1:PORT, with a scratch directory and a log.

    Use it as a context manager, or call :meth:`start` and :meth:`stop` (both idempotent;
    ``stop`` also runs at interpreter exit, and on Linux the child gets SIGTERM when this
    process dies). When ``port`` is None a free port is picked.
    """

    program: ClassVar[str] = ""
    """The server's name in messages and in its scratch directory's name."""
    log_name: ClassVar[str] = "server.log"
    """The file in the scratch directory that gets the child's stdout and stderr."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self._process: subprocess.Popen[bytes] | None = None
        self._work_dir: Path | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(port={self._port!r}, running={self.running})"

    @property
    def running(self) -> bool:
        """Whether the server process is up."""
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        """The server's combined stdout/stderr (deleted on stop)."""
        return self._require_work_dir() / self.log_name

    def start(self) -> Self:
        """Start the server and wait until it answers; a no-op when running."""
        with self._lock:
            if self._process is not None:
                return self
            program = self._executable()
            self._work_dir = Path(tempfile.mkdtemp(prefix=f"mastodon-s3-sync-{self.program}-"))
            try:
                self._prepare(self._work_dir)
                self._launch(program)
            except BaseException:
                self._terminate()
                self._cleanup()
                raise
            self._stop_at_exit()
            return self

    def _shut_down(self) -> None:
        """SIGTERM the server, SIGKILL it after a grace period, and delete its files."""
        with self._lock:
            self._terminate()
            self._cleanup()

    # -- for subclasses ------------------------------------------------------------------

    @abstractmethod
    def _executable(self) -> Path:
        """The program to run; raises :attr:`error` when it is not installed."""

    def _prepare(self, work_dir: Path) -> None:
        """Create what the server needs before it starts (keys, a data directory, ...)."""

    @abstractmethod
    def _command(self, program: Path, port: int) -> list[str]:
        """The argv that serves on ``127.0.0.1:port``."""

    def _environment(self) -> dict[str, str] | None:
        """The child's environment; None inherits this process's."""
        return None

    @abstractmethod
    def _answers(self, port: int) -> bool:
        """Whether something on ``port`` answers the way this server does."""

    def _require_work_dir(self) -> Path:
        if self._work_dir is None:
            raise self._not_started()
        return self._work_dir

    def _cleanup(self) -> None:
        """Delete files the server used; subclasses keep what the caller gave them."""
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    # -- internals -----------------------------------------------------------------------

    def _launch(self, program: Path) -> None:
        attempts = 1 if self._requested_port is not None else AUTO_PORT_ATTEMPTS
        failure = ""
        for _ in range(attempts):
            self._port = self._requested_port or free_loopback_port()
            command = self._command(program, self._port)
            self._log = self.log_path.open("wb")
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                cwd=self._work_dir,
                preexec_fn=_die_with_parent(),
            )
            failure = self._wait_until_ready()
            if not failure:
                return
            self._terminate()
        raise self.error(failure)

    def _wait_until_ready(self) -> str:
        """Poll until the server answers; return "" or a message saying why it did not."""
        assert self._process is not None
        port = self.port
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                return (
                    f"{self.program} exited with code {code} before serving on port {port}; "
                    f"its output:\n{log_tail(self.log_path)}"
                )
            # The answer must come from our process, not from whoever holds the port.
            if self._answers(port) and self._process.poll() is None:
                return ""
            time.sleep(_POLL_INTERVAL_S)
        return (
            f"{self.program} did not answer on {LOOPBACK_HOST}:{port} within "
            f"{START_TIMEOUT_S:g}s; its output:\n{log_tail(self.log_path)}"
        )

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
