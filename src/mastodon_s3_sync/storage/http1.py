"""HTTP/1.1 for the lean client: one keep-alive connection, requests written and answers read.

The standard library's http.client parses every answer's headers with the email package:
about 90 µs of CPU per answer on this project's machine, against about 15 µs for the plain
split here, and the hot path reads two answers per object (a GET's and a PUT's). Only what S3
answers needs is here: a Content-Length body, a chunked one, or one that ends when the
server closes; a HEAD's, a 204's and a 304's none; 1xx answers skipped. Errors are
http.client's own (``RemoteDisconnected``, ``IncompleteRead``) or ``OSError``s, so callers
treat a broken connection alike whichever client broke.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
from collections.abc import Iterable, Mapping

MAX_LINE = 64 * 1024
MAX_HEADERS = 200
_SMALL_BODY = 64 * 1024
"""Bodies up to this size leave in the same send as the request head."""
_NO_BODY_STATUSES = frozenset({204, 304})


class Connection:
    """One connection to ``host`` (``name:port``), plain or TLS; not thread-safe."""

    def __init__(
        self,
        host: str,
        *,
        tls: ssl.SSLContext | None,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        name, port = _split_host(host, 443 if tls is not None else 80)
        sock = socket.create_connection((name, port), timeout=connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=name)
            sock.settimeout(read_timeout)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._reader = sock.makefile("rb")

    def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | Iterable[memoryview],
    ) -> None:
        """Write a request; an iterable body is sent chunk by chunk as it yields (the
        caller gives its ``Content-Length``)."""
        lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if isinstance(body, bytes | bytearray | memoryview):
            if len(body) <= _SMALL_BODY:
                self._sock.sendall(head + body)
                return
            self._sock.sendall(head)
            self._sock.sendall(body)
            return
        self._sock.sendall(head)
        for chunk in body:
            self._sock.sendall(chunk)

    def response(self, method: str) -> Response:
        """The answer's status and headers; its body is read from the :class:`Response`."""
        while True:
            status, reason, version = self._status_line()
            headers = self._headers()
            if not 100 <= status < 200:
                return Response(self._reader, method, status, reason, version, headers)

    def close(self) -> None:
        """Close the connection (an unfinished answer cannot be read any more)."""
        self._reader.close()
        self._sock.close()

    def _status_line(self) -> tuple[int, str, str]:
        line = self._reader.readline(MAX_LINE + 1)
        if not line:
            raise http.client.RemoteDisconnected("the server closed the connection")
        version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise http.client.BadStatusLine(line.decode("latin-1")[:100])
        return int(code), reason, version

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = self._reader.readline(MAX_LINE + 1)
            if line in (b"\r\n", b"\n"):
                return headers
            if not line:
                raise http.client.IncompleteRead(b"", None)
            if len(line) > MAX_LINE:
                raise http.client.LineTooLong("header line")
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                raise http.client.HTTPException(f"not a header line: {line[:100]!r}")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        raise http.client.HTTPException(f"more than {MAX_HEADERS} header lines")


class Response:
    """An answer: ``status``, ``reason``, ``headers`` (lower-case names) and a body read
    with :meth:`read` or :meth:`readinto`; :attr:`complete` once the body was read whole."""

    def __init__(
        self,
        reader: io.BufferedReader,
        method: str,
        status: int,
        reason: str,
        version: str,
        headers: dict[str, str],
    ) -> None:
        self._reader = reader
        self.status, self.reason, self.headers = status, reason, headers
        self.reusable = version != "HTTP/1.0" and "close" not in headers.get("connection", "")
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._left: int | None = 0  # bytes of a Content-Length body not read yet
        self._buffer = b""  # chunked bodies: decoded bytes not handed out yet
        self._ended = False
        if method == "HEAD" or status in _NO_BODY_STATUSES:
            self._ended = True
        elif self._chunked:
            pass
        elif "content-length" in headers:
            self._left = _length(headers["content-length"])
            self._ended = self._left == 0
        else:
            self._left, self.reusable = None, False  # the body ends when the server closes

    def getheader(self, name: str, default: str = "") -> str:
        """One header's value (``default`` when absent)."""
        return self.headers.get(name.lower(), default)

    @property
    def complete(self) -> bool:
        """Whether the whole body was read (the connection may then carry another request)."""
        return self._ended and not self._buffer

    def read(self, amount: int | None = None) -> bytes:
        """Up to ``amount`` bytes of the body (the rest without it); b"" at its end."""
        if amount is None:
            if self._left is not None and not self._chunked and not self._ended:
                amount = self._left  # one read of exactly the rest
            else:
                parts = []
                while chunk := self.read(_SMALL_BODY):
                    parts.append(chunk)
                return b"".join(parts)
        buffer = bytearray(amount)
        filled = self.readinto(memoryview(buffer))
        return bytes(buffer[:filled]) if filled < amount else bytes(buffer)

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` from the body as far as it goes; 0 at its end."""
        if self._chunked:
            return self._readinto_chunked(view)
        if self._ended or not len(view):
            return 0
        if self._left is not None:
            view = view[: self._left]
        filled = self._read_fully(view)
        if self._left is None:
            self._ended = filled < len(view)
            return filled
        if filled < len(view):
            raise http.client.IncompleteRead(b"", self._left - filled)
        self._left -= filled
        self._ended = self._left == 0
        return filled

    def _read_fully(self, view: memoryview) -> int:
        filled = 0
        while filled < len(view):
            received = self._reader.readinto(view[filled:])
            if not received:
                break
            filled += received
        return filled

    def _readinto_chunked(self, view: memoryview) -> int:
        while not self._buffer and not self._ended:
            self._buffer = self._next_chunk()
        taken = min(len(view), len(self._buffer))
        view[:taken] = self._buffer[:taken]
        self._buffer = self._buffer[taken:]
        return taken

    def _next_chunk(self) -> bytes:
        """One chunk's data; at the last chunk, its trailer lines are read and b"" returned."""
        line = self._reader.readline(MAX_LINE + 1)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise http.client.IncompleteRead(b"", None) from None
        if size == 0:
            while (trailer := self._reader.readline(MAX_LINE + 1)) not in (b"\r\n", b"\n"):
                if not trailer:
                    raise http.client.IncompleteRead(b"", None)
            self._ended = True
            return b""
        data = self._reader.read(size + 2)
        if len(data) < size + 2:
            raise http.client.IncompleteRead(data, size + 2 - len(data))
        return bytes(data[:size])


def _length(value: str) -> int:
    """A Content-Length value's byte count; a broken answer when it is none (a sign, or the
    list a repeated header was joined into)."""
    if not (value.isascii() and value.isdigit()):
        raise http.client.HTTPException(f"Content-Length is no byte count: {value[:40]!r}")
    return int(value)


def _split_host(host: str, default_port: int) -> tuple[str, int]:
    """``name:port`` (``[::1]:port`` for IPv6) -> name and port."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") else default_port
    name, colon, port = host.rpartition(":")
    return (name, int(port)) if colon else (host, default_port)
