"""A delay proxy that costs next to nothing per byte: the WAN regime's stand-in.

The benchmark's 30 and 80 ms scenarios put one of these in front of each S3 server. It waits
``delay`` seconds before forwarding each request (a round trip to a faraway provider) and
counts requests by S3 operation; everything else is bytes relayed by the kernel. It runs in
its own process (its CPU is its own, not the benchmark's), two threads per connection: one
reads each request's head (to classify and count it and to find where its body ends), the
other relays the answers. Bodies both ways move socket -> pipe -> socket with ``splice(2)``,
never copied through Python.

A request to ``/__stats`` (no S3 bucket name can start with ``_``) is answered by the proxy
itself: JSON with the counts and the process's own CPU seconds; ``/__stats?reset`` also zeroes
the counts.

    .venv/bin/python -m benchmarks.delay_proxy --upstream http://127.0.0.1:PORT --delay 0.03

prints ``listening http://127.0.0.1:PORT`` once ready; SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from tests.support.faultproxy import classify

PIPE_BYTES = 1024 * 1024
HEAD_READ = 64 * 1024
MAX_HEAD = 64 * 1024
STATS_PATH = b"/__stats"
LOOPBACK = "127.0.0.1"


class _Relay:
    """The proxy's state: where to forward, how long to wait, what it counted."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def serve(self, client: socket.socket) -> None:
        """One client connection: its own upstream connection, answers pumped back."""
        upstream: socket.socket | None = None
        pipe = _pipe()
        buffer = b""
        try:
            while True:
                head, buffer = _read_head(client, buffer)
                if head is None:
                    return
                method, target, headers = _parse_head(head)
                if target.startswith(STATS_PATH):
                    client.sendall(self._stats(reset=b"reset" in target))
                    continue
                operation = str(classify(method, target.decode("latin-1"), headers))
                with self.lock:
                    self.counts[operation] += 1
                if self.delay:
                    time.sleep(self.delay)
                if upstream is None:
                    upstream = socket.create_connection(self.upstream)
                    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
                upstream.sendall(head)
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    buffer = _relay_chunked(client, upstream, buffer)
                    continue
                length = int(headers.get("content-length") or 0)
                early, buffer = buffer[:length], buffer[length:]
                upstream.sendall(early)
                _splice_exactly(client, upstream, length - len(early), pipe)
        except OSError:
            return
        finally:
            if upstream is not None:
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_RDWR)
                upstream.close()
            client.close()
            for end in pipe:
                os.close(end)

    def _stats(self, *, reset: bool) -> bytes:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with self.lock:
            counts = dict(self.counts)
            if reset:
                self.counts.clear()
        body = json.dumps(
            {"forwarded": counts, "cpu_seconds": usage.ru_utime + usage.ru_stime}
        ).encode()
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
        )


def _pipe() -> tuple[int, int]:
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):  # a larger pipe: fewer splices per MB
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return read_end, write_end


def _read_head(client: socket.socket, buffer: bytes) -> tuple[bytes | None, bytes]:
    """The next request head and what was read after it; (None, b"") at the end."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        if len(buffer) > MAX_HEAD:
            raise ConnectionError("request head too long")
        data = client.recv(HEAD_READ)
        if not data:
            return None, b""
        buffer += data
    return buffer[: end + 4], buffer[end + 4 :]


def _parse_head(head: bytes) -> tuple[str, bytes, dict[str, str]]:
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].split(b" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return method.decode("latin-1"), target, headers


def _relay_chunked(client: socket.socket, upstream: socket.socket, buffer: bytes) -> bytes:
    """Forward a chunked body as it comes (rare: copied through Python); what follows it."""
    while True:
        line, buffer = _read_line(client, buffer)
        upstream.sendall(line)
        size = int(line.split(b";", 1)[0], 16)
        if size == 0:
            while line != b"\r\n":  # trailer fields, then the empty line
                line, buffer = _read_line(client, buffer)
                upstream.sendall(line)
            return buffer
        remaining = size + 2  # the chunk and its CRLF
        while remaining:
            if not buffer:
                buffer = client.recv(HEAD_READ)
                if not buffer:
                    raise ConnectionError("client closed the connection inside a chunk")
            part, buffer = buffer[:remaining], buffer[remaining:]
            upstream.sendall(part)
            remaining -= len(part)


def _read_line(client: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    while (end := buffer.find(b"\r\n")) < 0:
        data = client.recv(HEAD_READ)
        if not data:
            raise ConnectionError("client closed the connection inside a chunked body")
        buffer += data
    return buffer[: end + 2], buffer[end + 2 :]


def _splice_exactly(
    source: socket.socket, target: socket.socket, count: int, pipe: tuple[int, int]
) -> None:
    read_end, write_end = pipe
    while count > 0:
        moved = os.splice(source.fileno(), write_end, min(count, PIPE_BYTES))
        if not moved:
            raise ConnectionError("client closed the connection inside a request body")
        count -= moved
        while moved:
            moved -= os.splice(read_end, target.fileno(), moved)


def _pump(upstream: socket.socket, client: socket.socket) -> None:
    """Every byte the upstream server sends, back to the client, until it closes."""
    read_end, write_end = _pipe()
    try:
        while moved := os.splice(upstream.fileno(), write_end, PIPE_BYTES):
            while moved:
                moved -= os.splice(read_end, client.fileno(), moved)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)  # the server closed: so does the client's side
        os.close(read_end)
        os.close(write_end)


def _main(upstream: str, delay: float) -> None:
    parts = urlsplit(upstream)
    relay = _Relay((parts.hostname or LOOPBACK, parts.port or 80), delay)
    listener = socket.create_server((LOOPBACK, 0), backlog=256)
    print(f"listening http://{LOOPBACK}:{listener.getsockname()[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        client, _ = listener.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=relay.serve, args=(client,), daemon=True).start()


@dataclass
class ProxyStats:
    """Requests forwarded by operation and the proxy process's CPU so far."""

    forwarded: dict[str, int]
    cpu_seconds: float


class DelayProxy:
    """The proxy as a child process, for the benchmark: start, ask its stats, stop."""

    def __init__(self, upstream: str, delay: float) -> None:
        self._command = [
            sys.executable,
            "-m",
            "benchmarks.delay_proxy",
            "--upstream",
            upstream,
            "--delay",
            str(delay),
        ]
        self._child: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Self:
        self._child = subprocess.Popen(self._command, stdout=subprocess.PIPE, text=True)
        assert self._child.stdout is not None
        line = self._child.stdout.readline()
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"the delay proxy did not start: {line!r}")
        self.url = line.split()[1]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stats(self, *, reset: bool = False) -> ProxyStats:
        """The counts and CPU so far (``reset``: then zero the counts)."""
        connection = http.client.HTTPConnection(urlsplit(self.url).netloc, timeout=10)
        try:
            connection.request("GET", STATS_PATH.decode() + ("?reset" if reset else ""))
            data = json.loads(connection.getresponse().read())
        finally:
            connection.close()
        return ProxyStats(data["forwarded"], data["cpu_seconds"])

    def stop(self) -> None:
        """End the child (SIGTERM) and wait for it."""
        child, self._child = self._child, None
        if child is not None:
            child.terminate()
            child.wait(timeout=10)
            if child.stdout is not None:
                child.stdout.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="http://HOST:PORT of the S3 server")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each request")
    arguments = parser.parse_args()
    _main(arguments.upstream, arguments.delay)
