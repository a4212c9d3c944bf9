"""TLS to PostgreSQL: refused in plain text when required, verified against the right CA."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mastodon_s3_sync.config.settings import DatabaseSettings
from mastodon_s3_sync.config.values import parse_database_url
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.errors import DatabaseError, SettingsError
from mastodon_s3_sync.mastodon.database import connect

pytestmark = pytest.mark.integration


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, made with openssl."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[LocalPostgres, Path, Path]]:
    """Its own cluster with ssl = on (the shared one stays plain); yields it, its CA, another."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory = Path(tempfile.mkdtemp(prefix="mastodon-s3-sync-tls-"))
    directory.chmod(0o755)  # the server may run as the postgres OS user
    try:
        cert, key = self_signed(directory, "server")
        other_ca, _ = self_signed(directory, "someone-else")
        if os.geteuid() == 0:
            server_user = pwd.getpwnam("postgres")
            for path in (cert, key):
                os.chown(path, server_user.pw_uid, server_user.pw_gid)
        key.chmod(0o600)
        with LocalPostgres() as cluster:
            admin = cluster.connect()
            try:
                admin.run(f"ALTER SYSTEM SET ssl_cert_file = '{cert}'")
                admin.run(f"ALTER SYSTEM SET ssl_key_file = '{key}'")
                admin.run("ALTER SYSTEM SET ssl = on")
                admin.run("SELECT pg_reload_conf()")
            finally:
                admin.close()
            yield cluster, cert, other_ca
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def settings_of(cluster: LocalPostgres, **changes: object) -> DatabaseSettings:
    return replace(parse_database_url(cluster.url()), **changes)  # type: ignore[arg-type]


def tls_in_use(settings: DatabaseSettings) -> bool:
    conn = connect(settings)
    try:
        rows = conn.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        conn.close()
    return bool(rows and rows[0][0])


def test_require_refuses_a_server_without_tls(postgres: LocalPostgres) -> None:
    with pytest.raises(DatabaseError, match="does not offer TLS, and sslmode is require") as raised:
        connect(settings_of(postgres, sslmode="require"))
    assert postgres.password not in str(raised.value)


def test_disable_is_plain_text(postgres: LocalPostgres) -> None:
    assert tls_in_use(settings_of(postgres, sslmode="disable")) is False


def test_require_encrypts(tls_server: tuple[LocalPostgres, Path, Path]) -> None:
    cluster, _, _ = tls_server
    assert tls_in_use(settings_of(cluster, sslmode="require")) is True
    assert tls_in_use(settings_of(cluster, sslmode="disable")) is False


def test_verify_full_with_the_right_ca(tls_server: tuple[LocalPostgres, Path, Path]) -> None:
    cluster, ca, _ = tls_server
    settings = settings_of(cluster, sslmode="verify-full", sslrootcert=str(ca))
    assert tls_in_use(settings) is True


@pytest.mark.parametrize("sslmode", ["verify-full", "verify-ca", "require"])
def test_a_wrong_ca_fails(tls_server: tuple[LocalPostgres, Path, Path], sslmode: str) -> None:
    cluster, _, other_ca = tls_server
    # require with a root certificate checks the CA, as libpq does
    settings = settings_of(cluster, sslmode=sslmode, sslrootcert=str(other_ca))
    with pytest.raises(DatabaseError, match=r"failed verification .*sslrootcert"):
        connect(settings)


def test_verify_full_checks_the_name(tls_server: tuple[LocalPostgres, Path, Path]) -> None:
    cluster, ca, _ = tls_server
    settings = settings_of(cluster, sslmode="verify-full", sslrootcert=str(ca))
    with pytest.raises(DatabaseError, match=r"check that it names db\.example"):
        connect(settings, server_name="db.example")
    # verify-ca trusts the CA and ignores the name
    assert tls_in_use(replace(settings, sslmode="verify-ca")) is True


def test_unreadable_root_certificate(tls_server: tuple[LocalPostgres, Path, Path]) -> None:
    cluster, _, _ = tls_server
    with pytest.raises(SettingsError, match=r"\[database\] sslrootcert: cannot read"):
        connect(settings_of(cluster, sslmode="verify-full", sslrootcert="/nonexistent.pem"))
