"""Opening a pg8000 connection to Mastodon's database, with errors a user can act on."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Protocol

import pg8000.exceptions
import pg8000.native

from mastodon_s3_sync.config.settings import DatabaseSettings, SshSettings
from mastodon_s3_sync.errors import DatabaseError, SettingsError, SyncError

SOCKET_TIMEOUT_SECONDS = 300
"""Longest wait on one database read: a dead server fails the run instead of hanging it."""

MIN_BIGINT, MAX_BIGINT = -(2**63), 2**63 - 1
"""What PostgreSQL's bigint holds: Mastodon's ids, and the bounds of a LIMIT."""

APPLICATION_NAME = "mastodon-s3-sync"


class SqlConnection(Protocol):
    """The part of ``pg8000.native.Connection`` the catalog uses."""

    def run(self, sql: str, **params: Any) -> list[list[Any]] | None: ...

    def close(self) -> None: ...


CONNECT_TIMEOUT_SECONDS = 15
"""Longest wait for the server to accept the connection, and for each answer of the
handshake (TLS, then PostgreSQL's startup and login)."""

_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
"""PostgreSQL's SSLRequest message: length 8, then the request code."""
_TLS_FIX = (
    "turn on ssl in the server's postgresql.conf, or set sslmode = disable "
    "([database] sslmode, ?sslmode= in the URL, or DB_SSLMODE) if the network path is "
    "trusted (loopback, SSH bastion)"
)


def _ssl_context(settings: DatabaseSettings) -> ssl.SSLContext | None:
    """The TLS context for this sslmode, None for a plain connection (as libpq's modes)."""
    if settings.sslmode == "disable" or settings.unix_socket is not None:
        return None  # libpq ignores sslmode on Unix sockets, and so do we
    context = ssl.create_default_context()
    # require: encrypted, server not authenticated, unless a root certificate is given
    # (then the CA is checked, as libpq does); verify-ca: CA only; verify-full: CA and name.
    context.check_hostname = settings.sslmode == "verify-full"
    if settings.sslmode == "require" and settings.sslrootcert is None:
        context.verify_mode = ssl.CERT_NONE
    if settings.sslrootcert is not None:
        try:
            context.load_verify_locations(cafile=settings.sslrootcert)
        except (OSError, ssl.SSLError) as error:
            raise SettingsError(
                f"[database] sslrootcert: cannot read CA certificates from "
                f"{settings.sslrootcert!r}: {error}; give a PEM file"
            ) from None
    return context


def _tls_socket(
    settings: DatabaseSettings, context: ssl.SSLContext, server_name: str
) -> ssl.SSLSocket:
    """Open TCP, ask for TLS, refuse to go on in plain text, and complete the handshake."""
    where = settings.describe()
    sock = socket.create_connection((settings.host, settings.port), CONNECT_TIMEOUT_SECONDS)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.sendall(_SSL_REQUEST)
        if sock.recv(1) != b"S":
            raise DatabaseError(
                f"PostgreSQL at {where} does not offer TLS, and sslmode is "
                f"{settings.sslmode}: nothing was sent in plain text; {_TLS_FIX}"
            )
        try:
            tls = context.wrap_socket(sock, server_hostname=server_name)
        except ssl.SSLCertVerificationError as error:
            raise DatabaseError(
                f"the TLS certificate of PostgreSQL at {where} failed verification "
                f"({error.verify_message}) with sslmode {settings.sslmode}: give the CA that "
                f"signed it as [database] sslrootcert (?sslrootcert= in the URL, DB_SSLROOTCERT)"
                + (f", and check that it names {server_name}" if context.check_hostname else "")
            ) from None
    except BaseException:
        sock.close()
        raise
    return tls


def _socket(
    settings: DatabaseSettings, context: ssl.SSLContext | None, server_name: str
) -> socket.socket:
    """The connection to hand to pg8000, TLS set up if wanted, waiting at most
    :data:`CONNECT_TIMEOUT_SECONDS` for each answer until the login is done."""
    if context is not None:
        return _tls_socket(settings, context, server_name)
    if settings.unix_socket is None:
        sock = socket.create_connection((settings.host, settings.port), CONNECT_TIMEOUT_SECONDS)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return sock
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT_SECONDS)
        sock.connect(settings.unix_socket)
    except BaseException:
        sock.close()
        raise
    return sock


def _server_message(error: pg8000.exceptions.DatabaseError) -> tuple[str, str]:
    details = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    return str(details.get("C", "")), str(details.get("M", error))


def server_error_text(error: pg8000.exceptions.DatabaseError) -> str:
    """An error PostgreSQL sent, as one line: its message and SQLSTATE code (pg8000 gives
    the whole field dictionary)."""
    code, message = _server_message(error)
    return f"{message} (SQLSTATE {code})" if code else message


def check_bigint(value: int, setting: str) -> int:
    """``value``, if a bigint holds it (an id, a row count); else a SettingsError naming
    ``setting`` (PostgreSQL would refuse the query, after the work had begun)."""
    if not MIN_BIGINT <= value <= MAX_BIGINT:
        raise SettingsError(
            f"{setting} {value} is out of range: ids and row counts are PostgreSQL bigints, "
            f"from {MIN_BIGINT} to {MAX_BIGINT}"
        )
    return value


def connect(settings: DatabaseSettings, server_name: str | None = None) -> pg8000.native.Connection:
    """Connect, turning pg8000's failures into one-line :class:`DatabaseError` messages.

    ``server_name`` is the name the TLS certificate must carry (default: ``host``); it
    differs when the connection goes through a tunnel.
    """
    where = settings.describe()
    context = _ssl_context(settings)
    try:
        sock = _socket(settings, context, server_name or settings.host)
        try:
            conn = pg8000.native.Connection(
                user=settings.user,
                password=settings.password,
                database=settings.name,
                host=settings.host if settings.unix_socket is None else "localhost",
                port=settings.port,
                ssl_context=False,  # TLS, when wanted, is set up above on our own socket
                sock=sock,
                application_name=APPLICATION_NAME,
            )
        except BaseException:
            sock.close()
            raise
        sock.settimeout(SOCKET_TIMEOUT_SECONDS)  # logged in: from now on, queries may be slow
        return conn
    except SyncError:
        raise
    except pg8000.exceptions.DatabaseError as error:
        code, message = _server_message(error)
        if code in ("28P01", "28000"):
            hint = "check the user and password (--database-url or [database] user/password)"
        elif code == "3D000":
            hint = "check the database name (--database-url or [database] name)"
        else:
            hint = "check the [database] settings"
        raise DatabaseError(
            f"PostgreSQL at {where} refused the connection: {message}; {hint}"
        ) from None
    except (pg8000.exceptions.InterfaceError, OSError) as error:
        cause = error.__cause__ or error
        if isinstance(cause, TimeoutError):
            raise DatabaseError(
                f"no answer from PostgreSQL at {where} within {CONNECT_TIMEOUT_SECONDS} s: "
                "is that the host and port of a PostgreSQL server? check [database] "
                "host/port (or --database-url)"
            ) from None
        raise DatabaseError(
            f"cannot connect to PostgreSQL at {where}: {cause}; check [database] host/port "
            "(or --database-url), that the server runs and accepts this machine, "
            "and [database] sslmode"
        ) from None
    except Exception:  # pg8000 fails with whatever its parser hits on a foreign answer
        raise DatabaseError(
            f"{where} answered, but not in PostgreSQL's protocol: is that port a PostgreSQL "
            "server? check [database] host/port (or --database-url)"
        ) from None


@contextlib.contextmanager
def open_database(
    settings: DatabaseSettings, bastion: SshSettings | None = None
) -> Iterator[pg8000.native.Connection]:
    """A connection, directly or through an SSH bastion; closed (and the tunnel too) on exit."""
    with contextlib.ExitStack() as stack:
        if bastion is not None:
            from mastodon_s3_sync.mastodon.tunnel import (
                open_tunnel,  # paramiko: only where a bastion is used
            )

            host, port = stack.enter_context(open_tunnel(bastion, settings.host, settings.port))
            tunnelled = replace(settings, host=host, port=port)
            conn = connect(tunnelled, server_name=settings.host)
        else:
            conn = connect(settings)
        stack.callback(_close, conn)
        yield conn


def _close(conn: pg8000.native.Connection) -> None:
    """Close, quietly when the connection is already broken (the error that broke it, if
    any, is the one to report)."""
    with contextlib.suppress(pg8000.exceptions.InterfaceError, OSError):
        conn.close()
