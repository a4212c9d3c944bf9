"""A recording S3 stand-in on 127.0.0.1 for exact-request tests of the lean client.

It answers each request with the next canned answer queued for its bucket and records the
request as it arrived (method, path, query, headers, body), so a test can check the bytes
on the wire as botocore's ``Stubber`` checks parameters. A real server on 127.0.0.1,
so its tests are in the integration tier (a unit test may open no socket).
"""

from __future__ import annotations

import collections
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Answer:
    """What the server sends back for one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Request:
    """One request as received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class RecordingS3:
    """Canned answers per bucket (first path segment), in order; every request recorded."""

    def __init__(self) -> None:
        self.received: list[Request] = []
        self._answers: dict[str, collections.deque[Answer]] = collections.defaultdict(
            collections.deque
        )
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """The endpoint URL (path-style addressing)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, bucket: str, answer: Answer) -> None:
        """Queue the answer to the next request for ``bucket``."""
        with self._lock:
            self._answers[bucket].append(answer)

    def pending(self) -> int:
        """Answers queued and not yet sent."""
        with self._lock:
            return sum(len(queue) for queue in self._answers.values())

    def _next(self, request: Request) -> Answer:
        bucket = request.path.lstrip("/").split("/", 1)[0]
        with self._lock:
            self.received.append(request)
            queue = self._answers[bucket]
            return queue.popleft() if queue else Answer(599, body=b"no answer queued")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the lean client pools connections

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                url = urllib.parse.urlsplit(self.path)
                request = Request(
                    self.command,
                    url.path,
                    url.query,
                    {name.lower(): value for name, value in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                answer = owner._next(request)
                self.send_response(answer.status)
                headers = {"Content-Length": str(len(answer.body)), **answer.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test reads what it needs from ``received``."""

        return Handler

    def __enter__(self) -> RecordingS3:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
