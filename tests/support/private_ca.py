"""A private certificate authority made at test time, and a TLS front for a local server.

Self-hosted S3 (MinIO and the like) often serves a certificate signed by the owner's own
CA, trusted by no default bundle. :func:`tls_front` terminates TLS on 127.0.0.1 with a
certificate such a CA signed and relays the plain bytes to a local server (moto_server),
so a client succeeds only when it is given that CA.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOOPBACK = "127.0.0.1"
CHUNK = 256 * 1024


@dataclass(frozen=True)
class TlsFront:
    """The TLS port, and the PEM file of the CA that signed its certificate."""

    port: int
    ca_file: Path

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return f"https://{LOOPBACK}:{self.port}"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_private_ca(work_dir: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 it signed: (CA PEM, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = _name("mastodon-s3-sync test CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(_name(LOOPBACK))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (
        work_dir / name for name in ("ca.pem", "server.pem", "server.key")
    )
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


@contextlib.contextmanager
def tls_front(work_dir: Path, upstream_port: int) -> Iterator[TlsFront]:
    """TLS on a loopback port, relayed in plain bytes to ``upstream_port``."""
    ca_file, cert_file, key_file = make_private_ca(work_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = socket.create_server((LOOPBACK, 0))
    open_sockets: list[socket.socket] = []

    def relay(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(CHUNK):
                target.sendall(data)
        for each in (source, target):
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)

    def handle(conn: socket.socket) -> None:
        try:
            secure = context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):  # a client that does not trust us hangs up here
            conn.close()
            return
        upstream = socket.create_connection((LOOPBACK, upstream_port))
        open_sockets.extend((secure, upstream))
        threading.Thread(target=relay, args=(upstream, secure), daemon=True).start()
        relay(secure, upstream)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, name="tls-front", daemon=True)
    thread.start()
    try:
        yield TlsFront(int(server.getsockname()[1]), ca_file)
    finally:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)
        server.close()
        for each in open_sockets:
            with contextlib.suppress(OSError):
                each.close()
        thread.join(5)
