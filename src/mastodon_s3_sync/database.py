"""Opening a pg8000 connection to Mastodon's database, with errors a user can act on."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Protocol

import pg8000.exceptions
import pg8000.native

from .errors import DatabaseError
from .settings import DatabaseSettings, SshSettings

SOCKET_TIMEOUT_SECONDS = 300
"""Longest wait on one database read: a dead server fails the run instead of hanging it."""

APPLICATION_NAME = "mastodon-s3-sync"


class SqlConnection(Protocol):
    """The part of ``pg8000.native.Connection`` the catalog uses."""

    def run(self, sql: str, **params: Any) -> list[list[Any]] | None: ...

    def close(self) -> None: ...


def _ssl_context(settings: DatabaseSettings) -> ssl.SSLContext | None:
    if settings.sslmode == "disable":
        return None
    context = ssl.create_default_context()
    if settings.sslmode == "require":  # encrypted, server not authenticated (as libpq)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _server_message(error: pg8000.exceptions.DatabaseError) -> tuple[str, str]:
    details = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    return str(details.get("C", "")), str(details.get("M", error))


def connect(settings: DatabaseSettings) -> pg8000.native.Connection:
    """Connect, turning pg8000's failures into one-line :class:`DatabaseError` messages."""
    where = settings.describe()
    try:
        return pg8000.native.Connection(
            user=settings.user,
            password=settings.password,
            database=settings.name,
            host=settings.host if settings.unix_socket is None else "localhost",
            port=settings.port,
            unix_sock=settings.unix_socket,
            ssl_context=_ssl_context(settings),
            timeout=SOCKET_TIMEOUT_SECONDS,
            application_name=APPLICATION_NAME,
        )
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
    except (pg8000.exceptions.InterfaceError, OSError, ssl.SSLError) as error:
        cause = error.__cause__ or error
        raise DatabaseError(
            f"cannot connect to PostgreSQL at {where}: {cause}; check [database] host/port "
            "(or --database-url), that the server runs and accepts this machine, "
            "and [database] sslmode"
        ) from None


@contextlib.contextmanager
def open_database(
    settings: DatabaseSettings, bastion: SshSettings | None = None
) -> Iterator[pg8000.native.Connection]:
    """A connection, directly or through an SSH bastion; closed (and the tunnel too) on exit."""
    with contextlib.ExitStack() as stack:
        if bastion is not None:
            from .tunnel import open_tunnel  # paramiko: only where a bastion is used

            host, port = stack.enter_context(open_tunnel(bastion, settings.host, settings.port))
            settings = replace(settings, host=host, port=port)
        conn = connect(settings)
        stack.callback(conn.close)
        yield conn
