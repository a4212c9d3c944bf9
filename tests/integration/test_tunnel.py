"""The SSH tunnel against a real OpenSSH server, to the test PostgreSQL cluster."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import paramiko
import pg8000.exceptions
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mastodon_s3_sync.config.settings import DatabaseSettings
from mastodon_s3_sync.demo.loader import insert_rows
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.seed import generate_rows
from mastodon_s3_sync.errors import DatabaseError, SettingsError
from mastodon_s3_sync.mastodon.database import connect
from mastodon_s3_sync.mastodon.tunnel import open_tunnel, parse_host_key
from tests.support.mastodon_db import MastodonDb
from tests.support.migration import Migration
from tests.support.processes import run_cli
from tests.support.sshd import LocalSshd

pytestmark = pytest.mark.integration

NUMBERED_ROWS = "SELECT pg_backend_pid(), n FROM generate_series(1, 50000) AS n"


@pytest.fixture(scope="module")
def sshd() -> Iterator[LocalSshd]:
    """An OpenSSH bastion on 127.0.0.1 for this module."""
    with LocalSshd() as server:
        yield server


def through(postgres: LocalPostgres, address: tuple[str, int]) -> DatabaseSettings:
    host, port = address
    return DatabaseSettings(
        name="postgres", user=postgres.user, password=postgres.password, host=host, port=port
    )


def private_text(key: paramiko.PKey) -> str:
    text = io.StringIO()
    key.write_private_key(text)
    return text.getvalue()


def public_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_select_through_the_tunnel(sshd: LocalSshd, postgres: LocalPostgres) -> None:
    with open_tunnel(sshd.ssh_settings(), postgres.host, postgres.port) as address:
        conn = connect(through(postgres, address))
        try:
            assert conn.run("SELECT 1") == [[1]]
        finally:
            conn.close()

    assert address[0] == "127.0.0.1"


def test_two_connections_at_once(sshd: LocalSshd, postgres: LocalPostgres) -> None:
    with open_tunnel(sshd.ssh_settings(), postgres.host, postgres.port) as address:
        conns = [connect(through(postgres, address)) for _ in range(2)]
        try:
            # when: both stream rows at the same time
            with ThreadPoolExecutor(max_workers=2) as pool:
                results = list(pool.map(lambda conn: conn.run(NUMBERED_ROWS), conns))
        finally:
            for conn in conns:
                conn.close()

    # then: each got all of its rows, from its own server process
    backends = [{pid for pid, _ in rows} for rows in results]
    assert len(backends[0]) == len(backends[1]) == 1
    assert backends[0] != backends[1]
    assert [[n for _, n in rows] for rows in results] == [list(range(1, 50_001))] * 2


@pytest.mark.parametrize(
    "make_key",
    [paramiko.ECDSAKey.generate, lambda: paramiko.RSAKey.generate(2048)],
    ids=["ecdsa", "rsa"],
)
def test_ecdsa_and_rsa_client_keys(
    sshd: LocalSshd, postgres: LocalPostgres, make_key: Callable[[], paramiko.PKey]
) -> None:
    # given: a key of another type that the bastion knows
    key = make_key()
    sshd.authorize(public_line(key))
    settings = replace(sshd.ssh_settings(), private_key=private_text(key))

    # when
    with open_tunnel(settings, postgres.host, postgres.port) as address:
        conn = connect(through(postgres, address))
        try:
            rows = conn.run("SELECT 1")
        finally:
            conn.close()

    # then
    assert rows == [[1]]


def test_unknown_client_key_is_refused(sshd: LocalSshd, postgres: LocalPostgres) -> None:
    wrong_key = private_text(paramiko.ECDSAKey.generate())
    settings = replace(sshd.ssh_settings(), private_key=wrong_key)

    with (
        pytest.raises(DatabaseError, match="refused the key") as raised,
        open_tunnel(settings, postgres.host, postgres.port),
    ):
        pass

    message = str(raised.value)
    assert "[bastion] private_key_file" in message
    assert wrong_key not in message
    assert "PRIVATE KEY" not in message
    assert "\n" not in message


def other_ed25519_key() -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


@pytest.mark.parametrize(
    "wrong_host_key",
    [other_ed25519_key, lambda: public_line(paramiko.ECDSAKey.generate())],
    ids=["same-type", "type-the-server-lacks"],
)
def test_wrong_host_key_is_refused(
    sshd: LocalSshd, postgres: LocalPostgres, wrong_host_key: Callable[[], str]
) -> None:
    settings = replace(sshd.ssh_settings(), host_key=wrong_host_key())
    presented = parse_host_key(sshd.host_key_line)

    with (
        pytest.raises(SettingsError, match=r"is not \[bastion\] host_key") as raised,
        open_tunnel(settings, postgres.host, postgres.port),
    ):
        pass

    assert presented.fingerprint in str(raised.value)


@pytest.mark.parametrize("host_key", [None, other_ed25519_key()], ids=["unset", "wrong"])
def test_insecure_skip_host_key_accepts_any_key(
    sshd: LocalSshd, postgres: LocalPostgres, host_key: str | None
) -> None:
    settings = replace(sshd.ssh_settings(), host_key=host_key, insecure_skip_host_key=True)

    with open_tunnel(settings, postgres.host, postgres.port) as address:
        conn = connect(through(postgres, address))
        try:
            assert conn.run("SELECT 1") == [[1]]
        finally:
            conn.close()


def test_no_threads_are_left_behind(sshd: LocalSshd, postgres: LocalPostgres) -> None:
    # given: threads of other fixtures (servers, pools) that are not ours to judge
    before = set(threading.enumerate())

    # when: the tunnel closes while a connection through it is still open
    with open_tunnel(sshd.ssh_settings(), postgres.host, postgres.port) as address:
        conn = connect(through(postgres, address))
        assert conn.run("SELECT 1") == [[1]]
        during = {thread.name for thread in set(threading.enumerate()) - before}
    left = set(threading.enumerate()) - before
    with contextlib.suppress(pg8000.exceptions.InterfaceError, OSError):
        conn.close()

    # then
    assert any(name.startswith("ssh-tunnel-") for name in during)
    assert left == set()


def test_unreachable_bastion_fails_fast(sshd: LocalSshd, postgres: LocalPostgres) -> None:
    settings = replace(sshd.ssh_settings(), port=closed_port())
    started = time.monotonic()

    with (
        pytest.raises(DatabaseError, match=r"^cannot reach the SSH bastion at .*and port"),
        open_tunnel(settings, postgres.host, postgres.port),
    ):
        pass

    assert time.monotonic() - started < 5


def test_bastion_port_that_is_not_ssh(sshd: LocalSshd, postgres: LocalPostgres) -> None:
    # given: the "bastion" is PostgreSQL itself, which does not speak SSH
    settings = replace(sshd.ssh_settings(), host=postgres.host, port=postgres.port)
    started = time.monotonic()

    with (
        pytest.raises(DatabaseError, match=r"^SSH handshake with the bastion at .* failed"),
        open_tunnel(settings, postgres.host, postgres.port),
    ):
        pass

    assert time.monotonic() - started < 15


def test_closed_database_port_behind_the_bastion(sshd: LocalSshd) -> None:
    port = closed_port()

    with (
        pytest.raises(DatabaseError, match=rf"cannot connect to 127\.0\.0\.1:{port} ") as raised,
        open_tunnel(sshd.ssh_settings(), "127.0.0.1", port),
    ):
        pass

    assert "[database] host and port" in str(raised.value)


def test_plan_reads_the_database_through_the_bastion(
    sshd: LocalSshd, mastodon_db: Callable[..., object], tmp_path: Path
) -> None:
    # given a config whose [bastion] section leads to the database
    db = mastodon_db()
    assert isinstance(db, MastodonDb)
    insert_rows(db.conn, "custom_emojis", generate_rows("custom_emojis", 20, seed=3))
    key_file = tmp_path / "bastion-key"
    key_file.write_text(sshd.client_private_key)
    config = tmp_path / "sync.toml"
    config.write_text(
        f'[database]\nurl = "{db.url}"\n\n[bastion]\nhost = "{sshd.host}"\nport = {sshd.port}\n'
        f'user = "{sshd.user}"\nprivate_key_file = "bastion-key"\n'
        f'host_key = "{sshd.host_key_line}"\n'
    )
    # when
    result = run_cli("plan", "--config", str(config))
    # then
    assert result.returncode == 0, result.stderr
    assert "custom_emojis/images/" in result.stdout
    assert sshd.client_private_key.splitlines()[1] not in result.stderr


def test_run_through_the_bastion_says_so_before_connecting(
    sshd: LocalSshd,
    migration: Migration,
    tmp_path: Path,
) -> None:
    # given a migration whose database is reached through the bastion
    (tmp_path / "bastion-key").write_text(sshd.client_private_key)
    config = migration.config(tmp_path)
    config.write_text(
        config.read_text()
        + f'\n[bastion]\nhost = "{sshd.host}"\nport = {sshd.port}\nuser = "{sshd.user}"\n'
        f'private_key_file = "bastion-key"\nhost_key = "{sshd.host_key_line}"\n'
    )
    # when
    result = run_cli("run", "--config", str(config))
    # then the line names the bastion, and comes before the preflight's summary
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    connecting = f"connecting to the database through the SSH bastion {sshd.user}@{sshd.host}:"
    [at] = [n for n, line in enumerate(lines) if line.startswith(connecting)]
    assert at < next(n for n, line in enumerate(lines) if line.startswith("preflight (")), lines
