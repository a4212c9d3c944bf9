"""A throwaway PostgreSQL cluster on the loopback interface.

The integration tests and the ``demo`` command need a real PostgreSQL server that nobody
else uses and that disappears afterwards. :class:`LocalPostgres` runs ``initdb`` and
``pg_ctl`` from the machine's PostgreSQL installation, or from the binaries bundled with the
PyPI package ``pgserver``. It requires a password (SCRAM), so credentials are checked the way
a production server checks them. PostgreSQL 13 or later is required.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import quote

import pg8000.native

from mastodon_s3_sync.demo.pg_binaries import (
    LocalPostgresError,
    PostgresBinaries,
    find_postgres_binaries,
)
from mastodon_s3_sync.demo.process import (
    AUTO_PORT_ATTEMPTS,
    LOOPBACK_HOST,
    LoopbackService,
    free_loopback_port,
    log_tail,
)

__all__ = [
    "LocalPostgres",
]


SUPERUSER = "mastodon"


#: The OS account that runs the server when this process is root (PostgreSQL refuses root).
SERVER_OS_USER_WHEN_ROOT = "postgres"


START_TIMEOUT_S = 30


STOP_TIMEOUT_S = 30


INITDB_TIMEOUT_S = 120


_LOG_TAIL_LINES = 40


_MAX_IDENTIFIER_BYTES = 63


_APPLICATION_NAME = "mastodon-s3-sync-sandbox"


@dataclass(frozen=True)
class _OsUser:
    name: str
    uid: int
    gid: int


def _server_os_user() -> _OsUser | None:
    """The account to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVER_OS_USER_WHEN_ROOT)
    except KeyError:
        raise LocalPostgresError(
            f"Running as root, but there is no {SERVER_OS_USER_WHEN_ROOT!r} OS user to run "
            "PostgreSQL as (PostgreSQL refuses to run as root). Create one, for example "
            f"`useradd --system {SERVER_OS_USER_WHEN_ROOT}`, or run as an unprivileged user."
        ) from None
    return _OsUser(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid)


def _child_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGOPTIONS, ...) would silently change what pg_ctl does.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


class LocalPostgres(LoopbackService):
    """A PostgreSQL cluster in a scratch directory, reachable only on 127.0.0.1.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. The superuser is
    ``mastodon`` with a random password generated for this cluster. When ``base_dir`` is None
    a temporary directory is used and deleted on stop; when ``port`` is None a free port is
    picked.
    """

    error = LocalPostgresError

    def __init__(self, base_dir: Path | None = None, port: int | None = None) -> None:
        super().__init__(port)
        self._requested_base_dir = base_dir
        self._password = secrets.token_urlsafe(24)
        self._base_dir: Path | None = None
        self._owns_base_dir = False
        self._binaries: PostgresBinaries | None = None
        self._os_user: _OsUser | None = None
        self._running = False

    def __repr__(self) -> str:
        return f"LocalPostgres(host={self.host!r}, port={self._port!r}, running={self._running})"

    @property
    def user(self) -> str:
        """The superuser's name."""
        return SUPERUSER

    @property
    def password(self) -> str:
        """The superuser's password, random per cluster."""
        return self._password

    @property
    def log_path(self) -> Path:
        """The server log file."""
        return self._require_base_dir() / "server.log"

    @property
    def running(self) -> bool:
        """Whether the server has been started and not stopped."""
        return self._running

    def url(self, dbname: str = "postgres") -> str:
        """A ``postgresql://`` URL with credentials for database ``dbname``."""
        return (
            f"postgresql://{quote(self.user, safe='')}:{quote(self._password, safe='')}"
            f"@{self.host}:{self.port}/{quote(dbname, safe='')}"
        )

    def connect(self, dbname: str = "postgres") -> pg8000.native.Connection:
        """Open a new connection to ``dbname`` as the superuser; the caller closes it."""
        if not self._running:
            raise LocalPostgresError("the cluster is not running")
        return pg8000.native.Connection(
            self.user,
            host=self.host,
            port=self.port,
            database=dbname,
            password=self._password,
            application_name=_APPLICATION_NAME,
        )

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        _check_identifier(name)
        with self._admin_connection() as conn:
            conn.run(f"CREATE DATABASE {pg8000.native.identifier(name)}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, disconnecting its sessions first."""
        _check_identifier(name)
        with self._admin_connection() as conn:
            conn.run(f"DROP DATABASE IF EXISTS {pg8000.native.identifier(name)} WITH (FORCE)")

    def start(self) -> Self:
        """Initialise the cluster and start the server; a no-op when already running."""
        if self._running:
            return self
        self._binaries = find_postgres_binaries()
        self._os_user = _server_os_user()
        try:
            self._prepare_directories()
            self._initdb()
            self._start_server()
        except BaseException:
            # An interrupted pg_ctl can leave a server running in the directory we delete.
            self._stop_server()
            self._remove_directories()
            raise
        self._stop_at_exit()
        return self

    def _shut_down(self) -> None:
        """Stop the server with pg_ctl and delete the directories this cluster created."""
        if self._running:
            self._stop_server()
            self._running = False
        self._remove_directories()

    # -- internals -------------------------------------------------------------------

    def _not_started(self) -> LocalPostgresError:
        return LocalPostgresError("the cluster has not been started")

    def _require_base_dir(self) -> Path:
        if self._base_dir is None:
            raise self._not_started()
        return self._base_dir

    @property
    def _data_dir(self) -> Path:
        return self._require_base_dir() / "data"

    @property
    def _socket_dir(self) -> Path:
        return self._require_base_dir() / "run"

    @contextlib.contextmanager
    def _admin_connection(self) -> Iterator[pg8000.native.Connection]:
        conn = self.connect("postgres")
        try:
            yield conn
        finally:
            conn.close()

    def _prepare_directories(self) -> None:
        if self._requested_base_dir is None:
            self._base_dir = Path(tempfile.mkdtemp(prefix="mastodon-s3-sync-pg-"))
            self._owns_base_dir = True
        else:
            self._base_dir = self._requested_base_dir
            self._base_dir.mkdir(parents=True, exist_ok=True)
            self._owns_base_dir = False
            if self._data_dir.exists() and any(self._data_dir.iterdir()):
                raise LocalPostgresError(f"{self._data_dir} is not empty; use a fresh base_dir")
        for directory in (self._data_dir, self._socket_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
        self.log_path.touch()
        if self._os_user is not None:
            owned = [self._data_dir, self._socket_dir, self.log_path]
            if self._owns_base_dir:
                owned.append(self._base_dir)
            for path in owned:
                os.chown(path, self._os_user.uid, self._os_user.gid)

    def _remove_directories(self) -> None:
        if self._base_dir is not None and self._owns_base_dir:
            shutil.rmtree(self._base_dir, ignore_errors=True)
            self._base_dir = None
            self._owns_base_dir = False

    def _run(self, args: list[str | Path], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a server program, as the ``postgres`` OS user when we are root."""
        user = self._os_user
        try:
            return subprocess.run(
                [str(a) for a in args],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                cwd=self._data_dir,
                env=_child_env(),
                user=None if user is None else user.uid,
                group=None if user is None else user.gid,
                extra_groups=None if user is None else [],
            )
        except subprocess.TimeoutExpired as exc:
            raise LocalPostgresError(f"{Path(args[0]).name} did not finish in {timeout}s") from exc

    def _initdb(self) -> None:
        assert self._binaries is not None
        pwfile = self._require_base_dir() / "initdb.pw"
        pwfile.write_text(self._password)
        pwfile.chmod(0o600)
        if self._os_user is not None:
            os.chown(pwfile, self._os_user.uid, self._os_user.gid)
        try:
            result = self._run(
                [
                    self._binaries.initdb,
                    "--pgdata",
                    self._data_dir,
                    "--username",
                    self.user,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    # A throwaway cluster does not need its files flushed to disk.
                    "--no-sync",
                ],
                timeout=INITDB_TIMEOUT_S,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise LocalPostgresError(
                f"initdb failed with exit code {result.returncode}:\n"
                f"{(result.stderr or result.stdout).strip()}"
            )

    def _server_options(self, port: int) -> str:
        return " ".join(
            [
                f"-c listen_addresses={LOOPBACK_HOST}",
                f"-p {port}",
                f"-k {shlex.quote(str(self._socket_dir))}",
                "-c unix_socket_permissions=0700",
                # Durability is pointless for a scratch cluster; these make bulk loads fast.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )

    def _start_server(self) -> None:
        assert self._binaries is not None
        attempts = 1 if self._requested_port is not None else AUTO_PORT_ATTEMPTS
        for _ in range(attempts):
            port = self._requested_port or free_loopback_port()
            result = self._run(
                [
                    self._binaries.pg_ctl,
                    "--pgdata",
                    self._data_dir,
                    "--log",
                    self.log_path,
                    "--wait",
                    f"--timeout={START_TIMEOUT_S}",
                    "-o",
                    self._server_options(port),
                    "start",
                ],
                timeout=START_TIMEOUT_S + 10,
            )
            if result.returncode == 0:
                self._port = port
                self._running = True
                return
            # The server may be half-up after a timeout; make sure nothing is left behind.
            self._stop_server()
        raise LocalPostgresError(
            f"PostgreSQL did not start on {LOOPBACK_HOST}:{port} "
            f"(pg_ctl exit code {result.returncode}): {(result.stderr or result.stdout).strip()}"
            f"\n--- end of the server log ---\n{log_tail(self.log_path, _LOG_TAIL_LINES)}"
        )

    def _stop_server(self) -> None:
        if self._binaries is None or self._base_dir is None or not self._data_dir.is_dir():
            return
        try:
            result = self._run(
                [
                    self._binaries.pg_ctl,
                    "--pgdata",
                    self._data_dir,
                    "--mode=fast",
                    "--wait",
                    f"--timeout={STOP_TIMEOUT_S}",
                    "stop",
                ],
                timeout=STOP_TIMEOUT_S + 10,
            )
            stopped = result.returncode == 0
        except (OSError, LocalPostgresError):
            stopped = False
        if not stopped:
            self._kill_postmaster()

    def _kill_postmaster(self) -> None:
        """Last resort when pg_ctl cannot stop the server: signal the pid in postmaster.pid."""
        try:
            pid = int((self._data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        for sig, grace_s in ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)


def _check_identifier(name: str) -> None:
    # PostgreSQL silently truncates longer names, so the URL would point elsewhere.
    if not name or len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        raise ValueError(f"database name must be 1-{_MAX_IDENTIFIER_BYTES} bytes: {name!r}")
