"""The lean client's HTTP/1.1 connection against a server that answers canned bytes: every
body framing S3 servers use, and the errors a broken answer raises."""

from __future__ import annotations

import http.client
import re
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from mastodon_s3_sync.storage.http1 import Connection, _split_host
from mastodon_s3_sync.storage.lean import TRANSPORT_ERRORS

pytestmark = pytest.mark.integration


class Canned:
    """A loopback server that reads one request head per answer and sends the answer's
    bytes as given (then closes when told to); keeps the request heads it read."""

    def __init__(self, answers: list[bytes], close_after: bool = False) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.answers, self.close_after = answers, close_after
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            received = b""
            for answer in self.answers:
                while b"\r\n\r\n" not in received:
                    data = connection.recv(65536)
                    if not data:
                        return
                    received += data
                head, _, received = received.partition(b"\r\n\r\n")
                self.requests.append(head)
                length = re.search(rb"(?im)^content-length: *(\d+)", head)
                while length is not None and len(received) < int(length[1]):
                    received += connection.recv(65536)  # the body, before the answer
                received = received[int(length[1]) if length else 0 :]
                connection.sendall(answer)
            if self.close_after:
                connection.shutdown(socket.SHUT_WR)
            while connection.recv(65536):  # until the client closes
                pass


Connect = Callable[..., tuple[Canned, Connection]]


@pytest.fixture
def connect() -> Iterator[Connect]:
    opened: list[tuple[Canned, Connection]] = []

    def make(answers: list[bytes], close_after: bool = False) -> tuple[Canned, Connection]:
        server = Canned(answers, close_after)
        connection = Connection(server.host, tls=None, connect_timeout=5, read_timeout=5)
        opened.append((server, connection))
        return server, connection

    yield make
    for server, connection in opened:
        connection.close()
        server.listener.close()


def test_content_length_chunked_and_bodiless_answers_on_one_connection(connect: Connect) -> None:
    server, connection = connect(
        [
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "a"\r\nX-Amz-Meta-A: 1\r\n'
            b"x-amz-meta-a: 2\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ]
    )
    connection.request("PUT", "/b/k", {"Host": server.host, "Content-Length": "3"}, b"abc")
    first = connection.response("PUT")
    assert (first.status, first.getheader("ETag"), first.headers["x-amz-meta-a"]) == (
        200,
        '"a"',
        "1, 2",
    )
    assert first.read() == b"hello"
    assert first.complete
    assert first.reusable
    connection.request("GET", "/b/?list-type=2", {"Host": server.host}, b"")
    chunked = connection.response("GET")
    view = memoryview(bytearray(5))
    assert chunked.readinto(view) == 3
    assert bytes(view[:3]) == b"abc"
    assert chunked.read() == b"defg"
    assert chunked.complete
    connection.request("HEAD", "/b/k", {"Host": server.host}, b"")
    head = connection.response("HEAD")
    assert head.read() == b""
    assert head.complete
    connection.request("DELETE", "/b/k", {"Host": server.host}, b"")
    assert connection.response("DELETE").status == 204
    assert server.requests[0].startswith(b"PUT /b/k HTTP/1.1\r\n")
    assert b"Content-Length: 3" in server.requests[0]


def test_a_streamed_body_goes_out_chunk_by_chunk(connect: Connect) -> None:
    server, connection = connect([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    pieces = [memoryview(b"ab"), memoryview(b"cd")]
    connection.request("PUT", "/b/k", {"Host": server.host, "Content-Length": "4"}, iter(pieces))
    assert connection.response("PUT").status == 200


def test_a_body_that_ends_when_the_server_closes(connect: Connect) -> None:
    _, connection = connect([b"HTTP/1.0 200 OK\r\n\r\nall of it"], close_after=True)
    connection.request("GET", "/b/k", {"Host": "h"}, b"")
    answer = connection.response("GET")
    assert not answer.reusable
    assert answer.read() == b"all of it"
    assert answer.complete


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", http.client.IncompleteRead),
        (b"", http.client.RemoteDisconnected),
        (b"SSH-2.0-OpenSSH\r\n\r\n", http.client.BadStatusLine),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            http.client.IncompleteRead,
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nshort", http.client.HTTPException),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nshort",
            http.client.HTTPException,
        ),
    ],
    ids=["short-body", "closed", "not-http", "bad-chunk", "negative-length", "two-lengths"],
)
def test_broken_answers_raise_what_callers_count_as_transport_errors(
    connect: Connect, answer: bytes, error: type[Exception]
) -> None:
    _, connection = connect([answer], close_after=True)
    connection.request("GET", "/b/k", {"Host": "h"}, b"")
    with pytest.raises(error) as raised:
        connection.response("GET").read()
    assert isinstance(raised.value, TRANSPORT_ERRORS)


def test_hosts_with_ports_and_ipv6() -> None:
    assert _split_host("example.com", 443) == ("example.com", 443)
    assert _split_host("127.0.0.1:9000", 80) == ("127.0.0.1", 9000)
    assert _split_host("[::1]:9000", 80) == ("::1", 9000)
    assert _split_host("[::1]", 443) == ("::1", 443)
