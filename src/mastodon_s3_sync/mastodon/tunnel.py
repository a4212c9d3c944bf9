"""Reaching PostgreSQL through an SSH bastion, in pure Python (no ``ssh`` binary in Lambda).

:func:`open_tunnel` logs in to the bastion with a private key, listens on a free port of
127.0.0.1 and forwards each connection made to it over a ``direct-tcpip`` channel, so the
database code connects to the yielded address as if PostgreSQL were local.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import logging
import selectors
import socket
import threading
from collections.abc import Callable, Iterator

import paramiko

from mastodon_s3_sync.config.settings import SshSettings
from mastodon_s3_sync.errors import DatabaseError, SettingsError

LOOPBACK_HOST = "127.0.0.1"
CONNECT_TIMEOUT_S = 10.0
"""Longest wait for the bastion's TCP connection, SSH handshake, login, or a new channel."""
KEEPALIVE_INTERVAL_S = 30
"""Idle connections through NAT gateways and firewalls survive with a packet this often."""
JOIN_TIMEOUT_S = 5.0
_POLL_INTERVAL_S = 0.2  # how soon the forwarding threads notice that the tunnel closes
_BUFFER_BYTES = 64 * 1024
_KEY_CLASSES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key,
    paramiko.ECDSAKey,
    paramiko.RSAKey,
)

# Without a handler, paramiko's log reaches stderr as tracebacks (through logging.lastResort);
# every failure it logs is raised here as a one-line error instead. Configured logging still
# receives its records.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


def load_private_key(text: str) -> paramiko.PKey:
    """Parse an unencrypted Ed25519, ECDSA or RSA private key (OpenSSH or PEM format)."""
    # Keys pasted into TOML strings or environment variables gain indentation and blank lines.
    lines = "\n".join(line.strip() for line in text.strip().splitlines()) + "\n"
    for key_class in _KEY_CLASSES:
        try:
            return key_class.from_private_key(io.StringIO(lines))
        except paramiko.PasswordRequiredException:
            raise SettingsError(
                "[bastion] private_key_file is encrypted; give the key without its passphrase "
                "(ssh-keygen -p -N '' -f COPY_OF_KEY_FILE removes it)"
            ) from None
        except (paramiko.SSHException, ValueError):
            continue
    raise SettingsError(
        "[bastion] private_key_file is not a supported private key; give the text of an "
        "Ed25519, ECDSA or RSA private key file (-----BEGIN OPENSSH PRIVATE KEY----- …)"
    )


def parse_host_key(line: str) -> paramiko.PKey:
    """The public key in ``[HOST] TYPE BASE64 [COMMENT]``, as ssh-keyscan prints it."""
    words = line.split()
    for index, word in enumerate(words[:2]):
        if len(words) > index + 1 and any(word in c.identifiers() for c in _KEY_CLASSES):
            try:
                return paramiko.PKey.from_type_string(word, base64.b64decode(words[index + 1]))
            except (binascii.Error, paramiko.SSHException, ValueError):
                break
    raise SettingsError(
        f"[bastion] host_key: {line!r} is not a public host key; write it as "
        "'ssh-ed25519 AAAA…' (ssh-keyscan -t ed25519 BASTION prints it)"
    )


@contextlib.contextmanager
def open_tunnel(
    settings: SshSettings, remote_host: str, remote_port: int
) -> Iterator[tuple[str, int]]:
    """Forward a local port to ``remote_host:remote_port`` as the bastion sees it.

    Yields ``(host, port)`` on 127.0.0.1 to connect to; everything is closed on exit.
    """
    transport = _log_in(
        settings, _expected_host_key(settings), load_private_key(settings.private_key)
    )
    try:
        _check_destination(transport, settings, remote_host, remote_port)
        with contextlib.closing(_Forwarder(transport, (remote_host, remote_port))) as forwarder:
            yield forwarder.address
    finally:
        _close(transport)


def _expected_host_key(settings: SshSettings) -> paramiko.PKey | None:
    if settings.insecure_skip_host_key:
        return None
    if settings.host_key is None:
        raise SettingsError(
            "[bastion] host_key is not set: give the bastion's public host key "
            "(ssh-keyscan -t ed25519 BASTION prints it), or set "
            "(on a trusted network only) insecure_skip_host_key to accept any key"
        )
    return parse_host_key(settings.host_key)


def _close(transport: paramiko.Transport) -> None:
    transport.close()
    transport.sock.close()  # Transport.close() leaves it open when the handshake failed
    if transport.ident is not None:  # the transport's thread was started
        transport.join(JOIN_TIMEOUT_S)


def _log_in(
    settings: SshSettings, expected: paramiko.PKey | None, key: paramiko.PKey
) -> paramiko.Transport:
    where = settings.describe()
    try:
        sock = socket.create_connection((settings.host, settings.port), CONNECT_TIMEOUT_S)
    except OSError as error:
        raise DatabaseError(
            f"cannot reach the SSH bastion at {where}: {error}; check [bastion] host "
            "and port, and that this machine may connect to the bastion"
        ) from None
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = transport.handshake_timeout = CONNECT_TIMEOUT_S
        transport.auth_timeout = CONNECT_TIMEOUT_S
        if expected is not None:
            # Ask for the configured key's type first, so a bastion with several keys shows it.
            options = transport.get_security_options()
            ours = set(type(expected).identifiers())
            options.key_types = sorted(options.key_types, key=lambda name: name not in ours)
        try:
            transport.start_client(timeout=CONNECT_TIMEOUT_S)
        except (paramiko.SSHException, OSError, EOFError) as error:
            reason = str(error) or "the connection was closed"
            raise DatabaseError(
                f"SSH handshake with the bastion at {where} failed: {reason}; "
                "check that [bastion] host and port point at an SSH server"
            ) from None
        presented = transport.get_remote_server_key()
        if expected is not None and presented.asbytes() != expected.asbytes():
            raise SettingsError(
                f"the SSH bastion at {where} presented the host key {presented.get_name()} "
                f"{presented.fingerprint}, which is not [bastion] host_key; check that "
                "setting (ssh-keyscan prints the key) before trusting this server"
            )
        # A refusal raises, a request for more methods returns: both are reported below.
        with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
            transport.auth_publickey(settings.user, key)
        if not transport.is_authenticated():
            raise DatabaseError(
                f"the SSH bastion at {where} refused the key for user {settings.user!r}; "
                "check [bastion] user, and that the bastion's authorized_keys has the "
                "public half of [bastion] private_key_file"
            )
        transport.set_keepalive(KEEPALIVE_INTERVAL_S)
    except BaseException:
        _close(transport)
        raise
    return transport


def _open_channel(
    transport: paramiko.Transport, destination: tuple[str, int], source: tuple[str, int]
) -> paramiko.Channel:
    return transport.open_channel("direct-tcpip", destination, source, timeout=CONNECT_TIMEOUT_S)


def _check_destination(
    transport: paramiko.Transport, settings: SshSettings, host: str, port: int
) -> None:
    """Fail now, with a message, rather than as a dropped connection in the database driver."""
    try:
        _open_channel(transport, (host, port), (LOOPBACK_HOST, 0)).close()
    except (paramiko.SSHException, OSError, EOFError) as error:
        reason = error.text if isinstance(error, paramiko.ChannelException) else error
        raise DatabaseError(
            f"the SSH bastion at {settings.describe()} cannot connect to {host}:{port} "
            f"({reason}); check [database] host and port as the bastion sees them, and that "
            "the bastion allows TCP forwarding"
        ) from None


class _Forwarder:
    """A listener on 127.0.0.1 and one thread per accepted connection, until closed."""

    def __init__(self, transport: paramiko.Transport, destination: tuple[str, int]) -> None:
        self._transport = transport
        self._destination = destination
        self._listener = socket.create_server((LOOPBACK_HOST, 0))
        self._listener.settimeout(_POLL_INTERVAL_S)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._closing = threading.Event()
        self._connections: list[threading.Thread] = []
        self._acceptor = self._thread(self._accept, "accept")
        self._acceptor.start()

    def close(self) -> None:
        """Stop accepting, end every forwarded connection and wait for the threads."""
        self._closing.set()
        self._acceptor.join(JOIN_TIMEOUT_S)
        for thread in self._connections:
            thread.join(JOIN_TIMEOUT_S)
        self._listener.close()

    def _thread(self, target: Callable[..., None], role: str, *args: object) -> threading.Thread:
        name = f"ssh-tunnel-{self.address[1]}-{role}"
        return threading.Thread(target=target, args=args, name=name, daemon=True)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, source = self._listener.accept()
            except TimeoutError:
                continue
            thread = self._thread(self._forward, f"from-{source[1]}", client)
            self._connections = [t for t in self._connections if t.is_alive()] + [thread]
            thread.start()

    def _forward(self, client: socket.socket) -> None:
        with contextlib.closing(client), selectors.DefaultSelector() as selector:
            try:
                channel = _open_channel(self._transport, self._destination, client.getpeername())
            except (paramiko.SSHException, OSError, EOFError):
                return  # the client sees its connection closed
            with contextlib.closing(channel):
                selector.register(client, selectors.EVENT_READ, (client, channel))
                selector.register(channel, selectors.EVENT_READ, (channel, client))
                while not self._closing.is_set():
                    for ready, _ in selector.select(_POLL_INTERVAL_S):
                        source, target = ready.data
                        try:
                            data = source.recv(_BUFFER_BYTES)
                            if not data:
                                return  # one side hung up: close both
                            target.sendall(data)
                        except (paramiko.SSHException, OSError, EOFError):
                            return
