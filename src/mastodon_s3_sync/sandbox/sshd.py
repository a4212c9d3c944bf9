"""A throwaway SSH bastion on the loopback interface.

The tunnel tests need a real SSH server that checks host and client keys the way a
production bastion does. :class:`LocalSshd` runs the system's OpenSSH ``sshd`` (Debian
package ``openssh-server``) in the foreground with its own configuration, host key and
authorized keys, all in a scratch directory: it reads nothing from ``/etc/ssh``, accepts
public keys only, and forwards TCP connections to the loopback interface only.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from mastodon_s3_sync.settings import SshSettings

__all__ = ["SSHD_PATH", "LocalSshd", "LocalSshdError"]

LOOPBACK_HOST = "127.0.0.1"
SSHD_PATH = Path("/usr/sbin/sshd")
"""sshd insists on being started by its absolute path (it re-executes itself)."""
START_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0
_PRIVILEGE_SEPARATION_DIR = Path("/run/sshd")  # Debian's sshd needs it when run as root
_POLL_INTERVAL_S = 0.05
_PROBE_TIMEOUT_S = 0.5
# A free port found by binding to port 0 can be taken before the server binds it.
_AUTO_PORT_ATTEMPTS = 3
_LOG_TAIL_LINES = 30


class LocalSshdError(RuntimeError):
    """The throwaway sshd could not be found, started or used."""


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        return int(sock.getsockname()[1])


def _answers_ssh(port: int) -> bool:
    """Whether something on ``port`` greets like an SSH server."""
    try:
        with socket.create_connection((LOOPBACK_HOST, port), _PROBE_TIMEOUT_S) as sock:
            return sock.recv(8).startswith(b"SSH-2.0")
    except OSError:
        return False


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def _generate_key(path: Path, comment: str) -> None:
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise LocalSshdError("ssh-keygen not found on PATH; apt-get install -y openssh-server")
    result = subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise LocalSshdError(f"ssh-keygen failed: {(result.stderr or result.stdout).strip()}")


class LocalSshd:
    """An OpenSSH server on 127.0.0.1 that lets :attr:`user` in with :attr:`client_private_key`.

    Use it as a context manager, or call :meth:`start` and :meth:`stop` (both idempotent;
    ``stop`` also runs at interpreter exit). When ``port`` is None a free port is picked.
    Host and client keys are fresh Ed25519 keys for each server.
    """

    def __init__(self, port: int | None = None) -> None:
        self._requested_port = port
        self._port: int | None = None
        self._work_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._owner_pid = os.getpid()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalSshd(port={self._port!r}, running={self.running})"

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
            raise LocalSshdError("LocalSshd has not been started")
        return self._port

    @property
    def user(self) -> str:
        """The OS user this process runs as: the only one the server lets in."""
        return pwd.getpwuid(os.geteuid()).pw_name

    @property
    def host_key_line(self) -> str:
        """The server's public host key, ``ssh-ed25519 AAAA… COMMENT``."""
        return (self._require_work_dir() / "host_key.pub").read_text().strip()

    @property
    def client_private_key(self) -> str:
        """An Ed25519 private key (OpenSSH format) that the server accepts for :attr:`user`."""
        return (self._require_work_dir() / "client_key").read_text()

    @property
    def log_path(self) -> Path:
        """The server's log (``sshd -e``: stderr), deleted on stop."""
        return self._require_work_dir() / "sshd.log"

    @property
    def running(self) -> bool:
        """Whether the server process is up."""
        return self._process is not None and self._process.poll() is None

    def ssh_settings(self) -> SshSettings:
        """Settings that log in to this server with its client key and verify its host key."""
        return SshSettings(
            host=self.host,
            port=self.port,
            user=self.user,
            private_key=self.client_private_key,
            host_key=self.host_key_line,
        )

    def authorize(self, public_key_line: str) -> None:
        """Let :attr:`user` in with one more key (``TYPE BASE64 [COMMENT]``)."""
        with (self._require_work_dir() / "authorized_keys").open("a") as keys:
            keys.write(public_key_line.strip() + "\n")

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Create keys and config, start sshd and wait until it greets; a no-op when running."""
        with self._lock:
            if self._process is not None:
                return self
            self._owner_pid = os.getpid()
            if not SSHD_PATH.is_file():
                raise LocalSshdError(
                    f"{SSHD_PATH} not found; install it with apt-get install -y openssh-server"
                )
            self._work_dir = Path(tempfile.mkdtemp(prefix="mastodon-s3-sync-sshd-"))
            try:
                self._prepare(self._work_dir)
                self._launch()
            except BaseException:
                self._terminate()
                self._cleanup()
                raise
            atexit.register(self.stop)
            return self

    def stop(self) -> None:
        """Stop sshd (SIGTERM, then SIGKILL after a grace period) and delete its files."""
        if os.getpid() != self._owner_pid:
            # A forked child runs atexit hooks too; the server belongs to the parent.
            return
        with self._lock:
            atexit.unregister(self.stop)
            self._terminate()
            self._cleanup()

    # -- internals -----------------------------------------------------------------------

    def _require_work_dir(self) -> Path:
        if self._work_dir is None:
            raise LocalSshdError("LocalSshd has not been started")
        return self._work_dir

    def _prepare(self, work_dir: Path) -> None:
        _generate_key(work_dir / "host_key", "mastodon-s3-sync-sandbox-host")
        _generate_key(work_dir / "client_key", "mastodon-s3-sync-sandbox-client")
        self.authorize((work_dir / "client_key.pub").read_text())
        if os.geteuid() == 0:
            _PRIVILEGE_SEPARATION_DIR.mkdir(mode=0o755, exist_ok=True)

    def _config(self, port: int) -> str:
        work_dir = self._require_work_dir()
        return "\n".join(
            [
                f"ListenAddress {LOOPBACK_HOST}",
                f"Port {port}",
                f"HostKey {work_dir / 'host_key'}",
                f"PidFile {work_dir / 'sshd.pid'}",
                f"AuthorizedKeysFile {work_dir / 'authorized_keys'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "AllowTcpForwarding yes",
                # Whatever a test asks, the bastion only connects to this machine.
                "PermitOpen 127.0.0.1:* localhost:*",
                "AllowAgentForwarding no",
                "AllowStreamLocalForwarding no",
                "X11Forwarding no",
                "PermitTTY no",
                "StrictModes no",
                "UsePAM no",
                "UseDNS no",
                "PrintMotd no",
                "",
            ]
        )

    def _launch(self) -> None:
        work_dir = self._require_work_dir()
        config = work_dir / "sshd_config"
        attempts = 1 if self._requested_port is not None else _AUTO_PORT_ATTEMPTS
        failure = ""
        for _ in range(attempts):
            self._port = self._requested_port or _free_loopback_port()
            config.write_text(self._config(self._port))
            self._log = self.log_path.open("wb")
            self._process = subprocess.Popen(
                [str(SSHD_PATH), "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=work_dir,
            )
            failure = self._wait_until_ready()
            if not failure:
                return
            self._terminate()
        raise LocalSshdError(failure)

    def _wait_until_ready(self) -> str:
        """Poll until sshd greets; return "" or a message saying why it did not."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                return (
                    f"sshd exited with code {code} before listening on port {self.port}; "
                    f"its log:\n{_tail(self.log_path)}"
                )
            # The greeting must come from our process, not from whoever holds the port.
            if _answers_ssh(self.port) and self._process.poll() is None:
                return ""
            time.sleep(_POLL_INTERVAL_S)
        return (
            f"sshd did not answer on {LOOPBACK_HOST}:{self.port} within {START_TIMEOUT_S:g}s; "
            f"its log:\n{_tail(self.log_path)}"
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

    def _cleanup(self) -> None:
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
