"""A throwaway SSH bastion on the loopback interface.

The tunnel tests need a real SSH server that checks host and client keys the way a
production bastion does. :class:`LocalSshd` runs the system's OpenSSH ``sshd`` (Debian
package ``openssh-server``) in the foreground with its own configuration, host key and
authorized keys, all in a scratch directory: it reads nothing from ``/etc/ssh``, accepts
public keys only, and forwards TCP connections to the loopback interface only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

from mastodon_s3_sync.config.settings import SshSettings
from mastodon_s3_sync.demo.process import LOOPBACK_HOST, LoopbackServer

__all__ = ["SSHD_PATH", "LocalSshd", "LocalSshdError"]

SSHD_PATH = Path("/usr/sbin/sshd")
"""sshd insists on being started by its absolute path (it re-executes itself)."""
_PRIVILEGE_SEPARATION_DIR = Path("/run/sshd")  # Debian's sshd needs it when run as root
_PROBE_TIMEOUT_S = 0.5


class LocalSshdError(RuntimeError):
    """The throwaway sshd could not be found, started or used."""


def _answers_ssh(port: int) -> bool:
    """Whether something on ``port`` greets like an SSH server."""
    try:
        with socket.create_connection((LOOPBACK_HOST, port), _PROBE_TIMEOUT_S) as sock:
            return sock.recv(8).startswith(b"SSH-2.0")
    except OSError:
        return False


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


class LocalSshd(LoopbackServer):
    """An OpenSSH server on 127.0.0.1 that lets :attr:`user` in with :attr:`client_private_key`.

    The lifecycle is :class:`LoopbackServer`'s: a context manager, or :meth:`start` and
    :meth:`stop` (both idempotent). When ``port`` is None a free port is picked. Host and
    client keys are fresh Ed25519 keys for each server; the log is ``sshd -e``'s stderr.
    """

    error = LocalSshdError
    program = "sshd"
    log_name = "sshd.log"

    # -- what clients need ---------------------------------------------------------------

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

    # -- for LoopbackServer --------------------------------------------------------------

    def _executable(self) -> Path:
        if not SSHD_PATH.is_file():
            raise LocalSshdError(
                f"{SSHD_PATH} not found; install it with apt-get install -y openssh-server"
            )
        return SSHD_PATH

    def _prepare(self, work_dir: Path) -> None:
        _generate_key(work_dir / "host_key", "mastodon-s3-sync-sandbox-host")
        _generate_key(work_dir / "client_key", "mastodon-s3-sync-sandbox-client")
        self.authorize((work_dir / "client_key.pub").read_text())
        if os.geteuid() == 0:
            _PRIVILEGE_SEPARATION_DIR.mkdir(mode=0o755, exist_ok=True)

    def _command(self, program: Path, port: int) -> list[str]:
        # The port is only known per attempt, so each attempt writes the config afresh.
        config = self._require_work_dir() / "sshd_config"
        config.write_text(self._config(port))
        return [str(program), "-D", "-e", "-f", str(config)]

    def _answers(self, port: int) -> bool:
        return _answers_ssh(port)

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
