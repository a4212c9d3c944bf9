"""An HTTP proxy on loopback that injects S3 faults between a client and a local S3 server.

Real providers throttle (``503 SlowDown``), fail (``500``), time out (``400 RequestTimeout``),
drop connections mid-body and add latency. :class:`FaultProxy` stands in front of a local
S3 server (moto_server, ``rclone serve s3``) and does those things at configured rates per
S3 operation, so tests and benchmarks can show what the copier does when they happen.

The proxy is addressed directly as the S3 endpoint (path-style addressing). Requests and
answers pass through unchanged (method, target, headers including ``Host``, bodies), so
SigV4 signatures still verify; bodies are streamed in 256 KiB chunks both ways and never
held whole. Each client connection gets its own thread and its own keep-alive connection
to the upstream server.
"""

from __future__ import annotations

import contextlib
import enum
import http.client
import random
import re
import select
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl, unquote, urlsplit

from mastodon_s3_sync.demo.process import LOOPBACK_HOST

__all__ = [
    "MULTIPART_OPERATIONS",
    "Fault",
    "FaultProxy",
    "FaultRule",
    "Operation",
    "ProxyStats",
    "classify",
    "mixed_faults",
]

CHUNK_BYTES = 256 * 1024
UPSTREAM_TIMEOUT_S = 300.0
# At most this much of a body is sent before a reset_mid_body or truncate_body fault cuts it.
PARTIAL_BODY_MAX_BYTES = 1024 * 1024
# A reset_mid_body fault waits this long after the partial body before resetting.
RESET_AFTER_S = 0.1
RECENT_INJECTIONS = 10_000
_LISTEN_BACKLOG = 256


class Operation(enum.StrEnum):
    """The S3 operation a request performs, decided from its method, path and query string."""

    ANY = "any"
    """Matches every operation in a :class:`FaultRule`; never the class of a request."""
    GET = "get"
    HEAD = "head"
    PUT = "put"
    COPY = "copy"
    DELETE = "delete"
    LIST = "list"
    ACL = "acl"
    CREATE_MULTIPART = "create_multipart"
    UPLOAD_PART = "upload_part"
    COMPLETE_MULTIPART = "complete_multipart"
    ABORT_MULTIPART = "abort_multipart"
    LIST_MULTIPART = "list_multipart"
    BUCKET = "bucket"
    OTHER = "other"


MULTIPART_OPERATIONS = (
    Operation.CREATE_MULTIPART,
    Operation.UPLOAD_PART,
    Operation.COMPLETE_MULTIPART,
    Operation.ABORT_MULTIPART,
    Operation.LIST_MULTIPART,
)
"""Every step of a multipart upload, for rules that target them all."""


class Fault(enum.StrEnum):
    """What the proxy does instead of (or on top of) forwarding a request."""

    SLOW_DOWN_503 = "slow_down_503"
    """``503 SlowDown`` without forwarding."""
    UNAVAILABLE_503 = "unavailable_503"
    """``503 ServiceUnavailable`` without forwarding (a provider that is down)."""
    INTERNAL_500 = "internal_500"
    """``500 InternalError`` without forwarding."""
    REQUEST_TIMEOUT_400 = "request_timeout_400"
    """``400 RequestTimeout`` without forwarding; never to a HEAD.

    S3 sends it when a request's body stalls. A HEAD answer has no body to carry the code,
    so a client would see a bare ``400``, a bad request, which is no fault to ride out.
    """
    ACCESS_DENIED_403 = "access_denied_403"
    """``403 AccessDenied`` without forwarding (not worth a retry)."""
    RESET_MID_BODY = "reset_mid_body"
    """Forwarded; part of the answer's body is sent, then the connection is reset (RST).

    An answer without a body (a PUT's) is dropped whole after upstream acted on the request.
    """
    TRUNCATE_BODY = "truncate_body"
    """Forwarded; part of the answer's body is sent under the full Content-Length, then the
    connection is closed (FIN). An answer without a body is dropped whole."""
    DELAY = "delay"
    """Forwarded after :attr:`FaultRule.seconds` more seconds."""
    CORRUPT_BODY = "corrupt_body"
    """Forwarded with one byte of a body changed in flight, length and headers kept: the
    request's body when it has one (a PUT's), else the answer's (a GET's)."""


_ERROR_ANSWERS: Mapping[Fault, tuple[int, str, str]] = {
    Fault.SLOW_DOWN_503: (503, "SlowDown", "Please reduce your request rate."),
    Fault.UNAVAILABLE_503: (503, "ServiceUnavailable", "The service is unavailable."),
    Fault.INTERNAL_500: (500, "InternalError", "We encountered an internal error."),
    Fault.ACCESS_DENIED_403: (403, "AccessDenied", "Access Denied"),
    Fault.REQUEST_TIMEOUT_400: (
        400,
        "RequestTimeout",
        "Your socket connection to the server was not read from or written to within the "
        "timeout period.",
    ),
}
_CUT_FAULTS = frozenset({Fault.RESET_MID_BODY, Fault.TRUNCATE_BODY})


@dataclass(frozen=True)
class FaultRule:
    """Inject ``fault`` into a share ``rate`` of the requests that match the filters.

    ``operations`` limits the rule to those S3 operations (``Operation.ANY``: all);
    ``key_pattern`` is a regular expression searched in the object key (requests without a
    key never match it); the rule is active from ``after_s`` to ``until_s`` seconds after
    the rules were set (at :meth:`FaultProxy.start` or :meth:`FaultProxy.set_rules`),
    ``until_s=None`` meaning for ever. ``seconds`` is the extra wait of a ``DELAY`` fault.
    """

    fault: Fault
    operations: tuple[Operation, ...] = (Operation.ANY,)
    rate: float = 1.0
    key_pattern: str | None = None
    after_s: float = 0.0
    until_s: float | None = None
    seconds: float = 0.0
    _key_regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"FaultRule.rate must be between 0 and 1, got {self.rate}")
        if self.seconds < 0:
            raise ValueError(f"FaultRule.seconds must not be negative, got {self.seconds}")
        if self.until_s is not None and self.until_s < self.after_s:
            raise ValueError("FaultRule.until_s must not come before after_s")
        regex = re.compile(self.key_pattern) if self.key_pattern is not None else None
        object.__setattr__(self, "_key_regex", regex)

    @classmethod
    def hard_down(cls, seconds: float) -> FaultRule:
        """The provider answers ``503 ServiceUnavailable`` to everything for ``seconds``."""
        return cls(Fault.UNAVAILABLE_503, until_s=seconds)

    def matches(self, operation: Operation, key: str, elapsed_s: float) -> bool:
        """Whether the filters (not the rate) select a request."""
        if Operation.ANY not in self.operations and operation not in self.operations:
            return False
        if self.fault is Fault.REQUEST_TIMEOUT_400 and operation is Operation.HEAD:
            return False
        if self._key_regex is not None and (not key or not self._key_regex.search(key)):
            return False
        if elapsed_s < self.after_s:
            return False
        return self.until_s is None or elapsed_s < self.until_s


def mixed_faults(
    rate: float,
    operations: tuple[Operation, ...] = (Operation.ANY,),
    faults: Sequence[Fault] = (
        Fault.SLOW_DOWN_503,
        Fault.INTERNAL_500,
        Fault.REQUEST_TIMEOUT_400,
        Fault.RESET_MID_BODY,
        Fault.TRUNCATE_BODY,
    ),
) -> list[FaultRule]:
    """Rules that fault about ``rate`` of the matching requests, split evenly over ``faults``."""
    rules: list[FaultRule] = []
    remaining = 1.0
    share = rate / len(faults)
    for fault in faults:
        # Rules are tried in order, each on what the earlier ones let through.
        conditional = min(1.0, share / remaining) if remaining > 0 else 0.0
        rules.append(FaultRule(fault, operations=operations, rate=conditional))
        remaining -= share
    return rules


@dataclass(frozen=True)
class ProxyStats:
    """What the proxy did: requests forwarded per operation, faults injected per operation."""

    forwarded: Mapping[Operation, int]
    injected: Mapping[tuple[Operation, Fault], int]
    upstream_errors: int

    @property
    def total_forwarded(self) -> int:
        """Requests sent to the upstream server (faults that forward included)."""
        return sum(self.forwarded.values())

    @property
    def total_injected(self) -> int:
        """Faults injected, all kinds."""
        return sum(self.injected.values())

    def injected_by_fault(self) -> Counter[Fault]:
        """Faults injected per kind, all operations together."""
        totals: Counter[Fault] = Counter()
        for (_, fault), count in self.injected.items():
            totals[fault] += count
        return totals


def classify(method: str, target: str, header_names: Iterable[str] = ()) -> Operation:
    """The S3 operation of a path-style request (``/bucket/key?query``)."""
    parts = urlsplit(target)
    query = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    bucket, _, key = parts.path.lstrip("/").partition("/")
    copy_source = any(name.lower() == "x-amz-copy-source" for name in header_names)
    if not bucket:
        return Operation.OTHER
    if "acl" in query:
        return Operation.ACL
    if not key:
        if method == "GET" and "uploads" in query:
            return Operation.LIST_MULTIPART
        if method == "GET" and query <= _LIST_PARAMETERS:
            return Operation.LIST
        return Operation.BUCKET
    if "uploadId" in query:
        by_method = {
            "PUT": Operation.UPLOAD_PART,
            "POST": Operation.COMPLETE_MULTIPART,
            "DELETE": Operation.ABORT_MULTIPART,
        }
        return by_method.get(method, Operation.LIST_MULTIPART)
    if method == "POST" and "uploads" in query:
        return Operation.CREATE_MULTIPART
    if method == "PUT" and copy_source:
        return Operation.COPY
    return _OBJECT_OPERATIONS.get(method, Operation.OTHER)


_LIST_PARAMETERS = frozenset(
    {
        "list-type",
        "prefix",
        "delimiter",
        "marker",
        "max-keys",
        "continuation-token",
        "start-after",
        "encoding-type",
        "fetch-owner",
    }
)
_OBJECT_OPERATIONS = {
    "GET": Operation.GET,
    "HEAD": Operation.HEAD,
    "PUT": Operation.PUT,
    "DELETE": Operation.DELETE,
}


def _flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:]


def _object_key(target: str) -> str:
    bucket, _, key = urlsplit(target).path.lstrip("/").partition("/")
    return unquote(key) if bucket else ""


class _Plan:
    """The fault chosen for one request (or none)."""

    def __init__(self, operation: Operation, rule: FaultRule | None) -> None:
        self.operation = operation
        self.rule = rule

    @property
    def fault(self) -> Fault | None:
        return self.rule.fault if self.rule is not None else None


class _Server(ThreadingHTTPServer):
    """One thread per client connection; connections are cut on stop, not waited for."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = _LISTEN_BACKLOG

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.connections: set[socket.socket] = set()
        self.aborted: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__((LOOPBACK_HOST, 0), _Handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self.connections_lock:
            self.connections.discard(request)
            aborted = request in self.aborted
            self.aborted.discard(request)
        if aborted:
            # SO_LINGER 0 is set: closing without a FIN first sends a reset.
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def cut_all(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """Relays one client connection's requests to the upstream server, injecting faults."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.upstream: http.client.HTTPConnection | None = None
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        self._drop_upstream()
        super().finish()

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request log lines."""

    def handle_expect_100(self) -> bool:
        """Answer ``100 Continue`` only once the request is going to be forwarded."""
        return True

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (OSError, ValueError, http.client.HTTPException):
            # A client that went away or sent a malformed body: this connection is done.
            self.close_connection = True

    def do_GET(self) -> None:
        self._relay()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_PATCH = do_GET

    # -- one request ---------------------------------------------------------------------

    def _relay(self) -> None:
        proxy = self.server.proxy
        if proxy.delay > 0:
            time.sleep(proxy.delay)
        plan = proxy._plan(self.command, self.path, self.headers.keys())
        fault = plan.fault
        if fault is not None and fault in _ERROR_ANSWERS:
            self._answer_error(fault)
            return
        if fault is Fault.DELAY:
            assert plan.rule is not None
            time.sleep(plan.rule.seconds)
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        try:
            response = self._forward(plan.operation, fault)
        except (OSError, http.client.HTTPException) as exc:
            # Had the client gone, answering fails too and ends the connection.
            proxy._count_upstream_error()
            self._drop_upstream()
            self._answer(502, "BadGateway", f"upstream failed: {type(exc).__name__}")
            self.close_connection = True
            return
        try:
            self._send_answer(response, fault)
        except BaseException:
            self._drop_upstream()
            raise

    def _upstream_connection(self) -> http.client.HTTPConnection:
        """This connection's keep-alive upstream connection, reopened when it went stale."""
        if self.upstream is not None and self.upstream.sock is not None:
            readable, _, _ = select.select([self.upstream.sock], [], [], 0)
            if readable:
                # An idle connection with something to read was closed by the server.
                self._drop_upstream()
        if self.upstream is None:
            host, port = self.server.proxy.upstream_address
            self.upstream = http.client.HTTPConnection(host, port, timeout=UPSTREAM_TIMEOUT_S)
        return self.upstream

    def _drop_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    def _forward(self, operation: Operation, fault: Fault | None) -> http.client.HTTPResponse:
        upstream = self._upstream_connection()
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() != "expect":
                upstream.putheader(name, value)
        upstream.endheaders()
        self._stream_request_body(upstream, corrupt=fault is Fault.CORRUPT_BODY)
        response = upstream.getresponse()
        self.server.proxy._count_forwarded(operation)
        return response

    def _stream_request_body(
        self, upstream: http.client.HTTPConnection | None, *, corrupt: bool = False
    ) -> None:
        """Send the client's request body on (or discard it when ``upstream`` is None);
        ``corrupt``: with its first byte changed (a sized body only)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._stream_chunked_body(upstream)
            return
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            data = self.rfile.read1(min(remaining, CHUNK_BYTES))
            if not data:
                raise ConnectionError("client closed the connection inside the request body")
            remaining -= len(data)
            if corrupt:
                data, corrupt = _flip_first_byte(data), False
            if upstream is not None:
                upstream.send(data)

    def _stream_chunked_body(self, upstream: http.client.HTTPConnection | None) -> None:
        """Relay a chunked body as it came, framing included."""

        def send(data: bytes) -> None:
            if upstream is not None:
                upstream.send(data)

        while True:
            size_line = self.rfile.readline(1024)
            if not size_line.endswith(b"\n"):
                raise ConnectionError("bad chunk size line in the request body")
            send(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            remaining = size + 2  # the chunk and its CRLF
            while remaining > 0:
                data = self.rfile.read1(min(remaining, CHUNK_BYTES))
                if not data:
                    raise ConnectionError("client closed the connection inside a chunk")
                remaining -= len(data)
                send(data)
        while True:  # trailer fields, then the empty line
            line = self.rfile.readline(8192)
            send(line)
            if line in (b"\r\n", b"\n", b""):
                break

    def _send_answer(self, response: http.client.HTTPResponse, fault: Fault | None) -> None:
        """Relay the upstream answer, or cut it for a reset/truncate fault."""
        has_body = not (
            self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        )
        length_header = response.getheader("Content-Length")
        declared = int(length_header) if length_header is not None else None
        if fault in _CUT_FAULTS and (not has_body or declared == 0):
            # Upstream acted on the request; the client never hears about it.
            response.read()
            self._abort(reset=fault is Fault.RESET_MID_BODY)
            return
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            self.send_header(name, value)
        self.end_headers()
        if not has_body:
            response.read()
            return
        if fault in _CUT_FAULTS:
            self._send_part(response, declared)
            self._drop_upstream()
            self._abort(reset=fault is Fault.RESET_MID_BODY)
            return
        chunked = bool(response.chunked)
        # A request that carried a body had that body changed instead.
        corrupt = fault is Fault.CORRUPT_BODY and not int(self.headers.get("Content-Length") or 0)
        while data := response.read1(CHUNK_BYTES):
            if corrupt:
                data, corrupt = _flip_first_byte(data), False
            if chunked:
                self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        # read1 leaves a fully read response open; read() closes it for the next request.
        response.read()
        if declared is None and not chunked:
            # The body ended with the connection; so must the client's.
            self.close_connection = True
        if response.will_close:
            self._drop_upstream()

    def _send_part(self, response: http.client.HTTPResponse, declared: int | None) -> None:
        """Send part of the body: half of what was declared, at most 1 MiB, at least 1 byte."""
        budget = max(1, min(PARTIAL_BODY_MAX_BYTES, (declared or 2) // 2))
        sent = 0
        while sent < budget and (data := response.read1(min(CHUNK_BYTES, budget - sent))):
            if response.chunked:
                self.wfile.write(b"%x\r\n%b" % (len(data), data))
            else:
                self.wfile.write(data)
            sent += len(data)

    def _abort(self, *, reset: bool) -> None:
        """End the client connection now: a reset (RST) or a plain close (FIN)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        if reset:
            # A reset discards what the client has not read yet: give it time to read the
            # part sent, so that it sees the reset in the middle of the body.
            time.sleep(RESET_AFTER_S)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with self.server.connections_lock:
                self.server.aborted.add(self.connection)

    def _answer_error(self, fault: Fault) -> None:
        status, code, message = _ERROR_ANSWERS[fault]
        expects_continue = self.headers.get("Expect", "").lower() == "100-continue"
        if expects_continue:
            # The client waits for "100 Continue" before sending the body: it never will.
            self.close_connection = True
        else:
            self._stream_request_body(None)
        self._answer(status, code, message)

    def _answer(self, status: int, code: str, message: str) -> None:
        request_id = self.server.proxy._next_request_id()
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", request_id)
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class FaultProxy:
    """A fault-injecting HTTP proxy on 127.0.0.1 in front of one S3 server.

    Use it as a context manager or call :meth:`start` / :meth:`stop`; point clients at
    :attr:`url`. ``delay`` seconds pass before every request is handled (emulated round
    trip); ``rules`` are tried in order and the first one whose filters match and whose
    rate draw hits decides the request's fault. ``seed`` makes the draws reproducible: a
    request's draws follow from the seed, its operation, its object key and how many such
    requests came before it, so they do not depend on how concurrent requests interleave.
    """

    def __init__(
        self,
        upstream: str,
        *,
        delay: float = 0.0,
        rules: Sequence[FaultRule] = (),
        seed: int = 0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"FaultProxy upstream must be http://HOST:PORT, got {upstream!r}")
        self.upstream_address = (parts.hostname, parts.port or 80)
        self.delay = delay
        self._rules: tuple[FaultRule, ...] = tuple(rules)
        self._seed = seed
        self._occurrences: Counter[tuple[Operation, str]] = Counter()
        self._lock = threading.Lock()
        self._rules_set_at = time.monotonic()
        self._forwarded: Counter[Operation] = Counter()
        self._injected: Counter[tuple[Operation, Fault]] = Counter()
        self._upstream_errors = 0
        self._request_ids = 0
        self.recent: deque[tuple[Operation, Fault, str]] = deque(maxlen=RECENT_INJECTIONS)
        """The latest faults injected: operation, fault and object key (newest last)."""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, the endpoint clients use."""
        if self._server is None:
            raise RuntimeError("FaultProxy has not been started")
        return f"http://{LOOPBACK_HOST}:{self._server.server_address[1]}"

    @property
    def stats(self) -> ProxyStats:
        """A snapshot of the counts so far."""
        with self._lock:
            return ProxyStats(
                forwarded=dict(self._forwarded),
                injected=dict(self._injected),
                upstream_errors=self._upstream_errors,
            )

    def start(self) -> Self:
        """Listen on a free loopback port and serve in a background thread; a no-op if up."""
        if self._server is not None:
            return self
        self._server = _Server(self)
        with self._lock:
            self._rules_set_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="fault-proxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut the open connections; safe to call more than once."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.cut_all()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def set_rules(self, rules: Iterable[FaultRule]) -> None:
        """Replace the rules; their time windows count from now."""
        with self._lock:
            self._rules = tuple(rules)
            self._rules_set_at = time.monotonic()

    def reset_stats(self) -> None:
        """Zero the counts."""
        with self._lock:
            self._forwarded.clear()
            self._injected.clear()
            self._upstream_errors = 0
            self.recent.clear()

    # -- called by the request handlers --------------------------------------------------

    def _plan(self, method: str, target: str, header_names: Iterable[str]) -> _Plan:
        operation = classify(method, target, header_names)
        key = _object_key(target)
        with self._lock:
            elapsed = time.monotonic() - self._rules_set_at
            occurrence = self._occurrences[(operation, key)]
            self._occurrences[(operation, key)] += 1
            draws = random.Random(f"{self._seed}/{operation}/{key}/{occurrence}")
            for rule in self._rules:
                if not rule.matches(operation, key, elapsed):
                    continue
                if rule.rate >= 1.0 or draws.random() < rule.rate:
                    self._injected[(operation, rule.fault)] += 1
                    self.recent.append((operation, rule.fault, key))
                    return _Plan(operation, rule)
        return _Plan(operation, None)

    def _count_forwarded(self, operation: Operation) -> None:
        with self._lock:
            self._forwarded[operation] += 1

    def _count_upstream_error(self) -> None:
        with self._lock:
            self._upstream_errors += 1

    def _next_request_id(self) -> str:
        with self._lock:
            self._request_ids += 1
            return f"FAULTPROXY{self._request_ids:010d}"
