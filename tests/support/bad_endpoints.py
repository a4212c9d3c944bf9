"""Endpoints on 127.0.0.1 that are not what a setting expects: what a typo points the tool at.

A port that answers bytes no protocol knows, one that accepts and never answers, a TLS
server whose certificate nobody trusts, an S3 endpoint of another region, and a port
nothing listens on. Each serves from a daemon thread of the test process while its
``with`` block lasts.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOOPBACK = "127.0.0.1"
OTHER_REGION = "eu-west-1"
GARBAGE = b"\x00\x01\x02 no protocol speaks this \xff\xfe\r\n\r\n"


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def raw_listener(answer: bytes | None) -> Iterator[int]:
    """A TCP port that answers each connection's first bytes with ``answer`` and hangs
    up, or (``None``) accepts and never answers. Yields the port."""
    server = socket.create_server((LOOPBACK, 0))
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):  # the server socket closed: done
            while True:
                conn, _ = server.accept()
                if answer is None:
                    held.append(conn)  # open and silent until the test ends
                    continue
                with conn, contextlib.suppress(OSError):
                    conn.settimeout(5)
                    conn.recv(65536)
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, name="raw-listener", daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        _stop_accepting(server)
        for conn in held:
            conn.close()
        thread.join(5)


@contextlib.contextmanager
def untrusted_tls(work_dir: Path) -> Iterator[int]:
    """A TLS server with a self-signed certificate for 127.0.0.1 (trusted by no CA
    bundle); it completes handshakes and answers nothing. Yields the port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*_self_signed(work_dir))
    server = socket.create_server((LOOPBACK, 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                # The client gives up during the handshake: an SSLError here is expected.
                with conn, contextlib.suppress(OSError):
                    conn.settimeout(5)
                    context.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=serve, name="untrusted-tls", daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        _stop_accepting(server)
        thread.join(5)


def _stop_accepting(server: socket.socket) -> None:
    """Wake the thread blocked in ``accept`` (closing alone does not), then close."""
    with contextlib.suppress(OSError):
        server.shutdown(socket.SHUT_RDWR)
    server.close()


def _self_signed(work_dir: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mastodon-s3-sync test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = work_dir / "untrusted.pem", work_dir / "untrusted.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _OtherRegion(http.server.BaseHTTPRequestHandler):
    """What S3 answers on one region's endpoint for a bucket of another: 301 with the
    bucket's region in ``x-amz-bucket-region`` (HeadBucket has no body)."""

    def do_HEAD(self) -> None:
        self.send_response(301)
        self.send_header("x-amz-bucket-region", OTHER_REGION)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the tool's output, not the server's."""


@contextlib.contextmanager
def other_region_s3() -> Iterator[int]:
    """An S3 endpoint where every bucket lives in :data:`OTHER_REGION`. Yields the port."""
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _OtherRegion)
    thread = threading.Thread(target=server.serve_forever, name="other-region", daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
