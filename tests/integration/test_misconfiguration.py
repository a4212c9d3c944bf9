"""Every misconfiguration is one line that names the setting to fix, never a traceback.

The table points each command that talks to a bucket, a queue or the database at
something real on 127.0.0.1 that is not what the setting expects: ``https://`` against a
plain-HTTP S3 server, a certificate nobody trusts, a port answering garbage, a port that
never answers, a proxy that is not there, a bucket of another region, a host name that does
not resolve, a queue that does not exist, ids beyond PostgreSQL's bigint. Bad settings exit
2; a database that cannot be reached or is no PostgreSQL exits 3, as documented.
The cases run as child processes, four at a time beside the ones that wait out a timeout
(those start first: they mostly wait).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

import functions.enumerator.handler as enumerator_handler
from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.demo.media import create_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.s3servers import MotoS3Server
from mastodon_s3_sync.demo.schema import SchemaVersion, create_schema
from mastodon_s3_sync.mastodon.database import MAX_BIGINT, MIN_BIGINT
from mastodon_s3_sync.transport.lambda_edge import EventError, parse_enumerator_event
from tests.events.factory import FakeLambdaContext
from tests.support.bad_endpoints import (
    GARBAGE,
    OTHER_REGION,
    closed_port,
    other_region_s3,
    raw_listener,
    untrusted_tls,
)
from tests.support.processes import CLI

pytestmark = pytest.mark.integration

PROG = "mastodon-s3-sync: error: "
S3_SECRET = "s3-secret-never-shown"
SQS_SECRET = "sqs-secret-never-shown"
DB_PASSWORD = "db-password-never-shown"
PROXY_PASSWORD = "proxy-password-never-shown"
TOO_BIG, TOO_SMALL = str(MAX_BIGINT + 1), str(MIN_BIGINT - 1)


@dataclass(frozen=True)
class Bench:
    """Good things and bad endpoints, for the cases to combine."""

    moto: MotoS3Server
    bucket: str
    queue_url: str
    database_url: str
    garbage: int
    silent: int
    tls: int
    other_region: int
    work: Path

    def url(self, port: int, scheme: str = "http") -> str:
        """The endpoint URL of a loopback port."""
        return f"{scheme}://127.0.0.1:{port}"

    def config(self, broken: str = "", endpoint: str = "", database_url: str = "") -> str:
        """A config file whose ``broken`` side ("source" or "destination") is at
        ``endpoint``; the other side is a bucket that answers."""
        good = replace(self.moto.bucket_settings(self.bucket), secret_access_key=S3_SECRET)
        sides = {"source": good, "destination": replace(good, bucket=f"{self.bucket}-copy")}
        if broken:
            sides[broken] = replace(sides[broken], endpoint_url=endpoint)
        path = self.work / f"{uuid.uuid4().hex}.toml"
        url = database_url or f"postgresql://mastodon:{DB_PASSWORD}@127.0.0.1:{closed_port()}/x"
        path.write_text(config_toml(url, sides["source"], sides["destination"]))
        return str(path)

    def queue(self, endpoint: str = "", queue_url: str = "") -> list[str]:
        """The queue flags of ``worker`` and ``enumerate``."""
        return [
            "--queue-url",
            queue_url or self.queue_url,
            "--sqs-endpoint-url",
            endpoint or self.moto.endpoint_url,
            "--region",
            "us-east-1",
        ]


@dataclass(frozen=True)
class Case:
    """A command line, what its one line must say, and its exit status."""

    command: Callable[[Bench], list[str]]
    says: tuple[str, ...]
    status: int = 2
    env: dict[str, str] = field(default_factory=dict)
    isolated_network: bool = False
    """Run in a network namespace of its own (nothing it sends can leave it)."""
    waits: bool = False
    """Waits out a timeout (5 or 15 s) on purpose: started first, it waits while others run."""


CASES: dict[str, Case] = {
    "run: https:// against a plain-HTTP S3 server": Case(
        lambda b: [
            "run",
            "--config",
            b.config("destination", b.moto.endpoint_url.replace("http:", "https:")),
        ],
        (
            "no TLS handshake with the destination endpoint https://",
            "write http:// in [destination] endpoint_url",
        ),
    ),
    "verify: a certificate nobody trusts": Case(
        lambda b: ["verify", "--config", b.config("source", b.url(b.tls, "https"))],
        (
            "TLS certificate of the source endpoint",
            "is not trusted",
            "AWS_CA_BUNDLE",
            "[source] endpoint_url",
        ),
    ),
    "orphans: an endpoint port that answers garbage": Case(
        lambda b: ["orphans", "--config", b.config("source", b.url(b.garbage))],
        ("closed the connection without an HTTP answer", "an S3 server", "[source] endpoint_url"),
    ),
    "worker: an endpoint port that never answers": Case(
        lambda b: ["worker", "--config", b.config("destination", b.url(b.silent)), *b.queue()],
        ("sent no answer within 5 s", "[destination] endpoint_url"),
        waits=True,
    ),
    "config check: nothing listens on the endpoint port": Case(
        lambda b: [
            "config",
            "check",
            "--config",
            b.config("destination", b.url(closed_port()), b.database_url),
        ],
        ("cannot reach the destination endpoint http://127.0.0.1:", "[destination] endpoint_url"),
    ),
    "config check: https:// against a plain-HTTP S3 server": Case(
        lambda b: [
            "config",
            "check",
            "--config",
            b.config("source", b.moto.endpoint_url.replace("http:", "https:"), b.database_url),
        ],
        ("no TLS handshake with the source endpoint", "[source] endpoint_url"),
    ),
    "run: HTTPS_PROXY is a closed port": Case(
        lambda b: ["run", "--config", b.config("destination", b.url(b.tls, "https"))],
        ("the proxy http://***:***@127.0.0.1:", "HTTPS_PROXY", "NO_PROXY"),
        env={"HTTPS_PROXY": f"http://me:{PROXY_PASSWORD}@127.0.0.1:{closed_port()}"},
    ),
    "verify: the bucket is in another region": Case(
        lambda b: ["verify", "--config", b.config("destination", b.url(b.other_region))],
        (
            f"is in region {OTHER_REGION}, not us-east-1",
            "[destination] region",
            "--destination-region",
        ),
    ),
    "run: the endpoint's host name does not resolve": Case(
        lambda b: ["run", "--config", b.config("source", "http://mastodon-media.invalid:9000")],
        (
            "the host name of the source endpoint http://mastodon-media.invalid:9000",
            "does not resolve; check [source] endpoint_url",
        ),
        isolated_network=True,
    ),
    "worker: the SQS endpoint answers garbage": Case(
        lambda b: ["worker", "--config", b.config(), *b.queue(endpoint=b.url(b.garbage))],
        ("the SQS endpoint", "closed the connection without an HTTP answer", "--sqs-endpoint-url"),
    ),
    "enumerate: the SQS endpoint never answers": Case(
        lambda b: [
            "enumerate",
            "--database-url",
            b.database_url,
            *b.queue(endpoint=b.url(b.silent)),
        ],
        ("the SQS endpoint", "sent no answer within 5 s", "--sqs-endpoint-url"),
        waits=True,
    ),
    "enumerate: no such queue": Case(
        lambda b: [
            "enumerate",
            "--database-url",
            b.database_url,
            *b.queue(queue_url=f"{b.queue_url}-gone"),
        ],
        ("no queue", "--queue-url"),
    ),
    "worker: no region for the queue": Case(
        lambda b: [
            "worker",
            "--config",
            b.config(),
            "--queue-url",
            b.queue_url,
            "--sqs-endpoint-url",
            b.moto.endpoint_url,
        ],
        ("no region for the queue", "--region"),
        env={"AWS_DEFAULT_REGION": "", "AWS_REGION": ""},
    ),
    "plan: the database port answers garbage": Case(
        lambda b: [
            "plan",
            "--database-url",
            f"postgresql://mastodon:{DB_PASSWORD}@127.0.0.1:{b.garbage}/x",
        ],
        ("not in PostgreSQL's protocol", "[database] host/port"),
        status=3,
    ),
    "run: the database port never answers": Case(
        lambda b: [
            "run",
            "--config",
            b.config(database_url=f"postgresql://mastodon:{DB_PASSWORD}@127.0.0.1:{b.silent}/x"),
        ],
        ("no answer from PostgreSQL", "within 15 s", "[database] host/port"),
        status=3,
        waits=True,
    ),
    "plan: --after-id beyond bigint": Case(
        lambda b: ["plan", "--database-url", b.database_url, "--after-id", TOO_BIG],
        (f"--after-id {TOO_BIG} is out of range", "PostgreSQL bigint"),
    ),
    "verify: --after-id below bigint": Case(
        lambda b: [
            "verify",
            "--config",
            b.config(database_url=b.database_url),
            "--after-id",
            TOO_SMALL,
        ],
        (f"--after-id {TOO_SMALL} is out of range", "PostgreSQL bigints"),
    ),
    "enumerate: --limit beyond bigint": Case(
        lambda b: ["enumerate", "--database-url", b.database_url, *b.queue(), "--limit", TOO_BIG],
        (f"--limit {TOO_BIG} is out of range",),
    ),
}


def _resolution_fails_without_traffic() -> bool:
    """Whether a name can fail to resolve here without a query reaching any resolver: the
    child gets a network namespace of its own (no route out of it), and names are looked up
    only in /etc/hosts and by DNS from the process itself (no nscd, no systemd-resolved
    over D-Bus, which would ask from outside the namespace)."""
    unshare = shutil.which("unshare")
    if unshare is None or Path("/var/run/nscd/socket").exists():
        return False
    hosts = [
        line.split()[1:]
        for line in Path("/etc/nsswitch.conf").read_text().splitlines()
        if line.startswith("hosts:")
    ]
    if not hosts or not set(hosts[0]) <= {"files", "dns", "myhostname"}:
        return False
    isolated = subprocess.run([unshare, "--net", "true"], capture_output=True, check=False)
    return isolated.returncode == 0


def _run(case: Case, bench: Bench) -> subprocess.CompletedProcess[str]:
    # A proxy from the machine's environment must not stand between us and 127.0.0.1.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SQS_SECRET, **case.env}
    env = {k: v for k, v in env.items() if v}
    command = [*CLI, *case.command(bench)]
    if case.isolated_network:
        # A fresh network namespace has no route anywhere: the resolver's query cannot
        # leave it, and the name fails to resolve without any traffic on the network.
        command = ["unshare", "--net", *command]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env, check=False
    )


@pytest.fixture(scope="module")
def outcomes(
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    postgres: LocalPostgres,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, subprocess.CompletedProcess[str] | None]]:
    """Every case run once (None: cannot run on this machine)."""
    moto = moto_servers[0]
    work = tmp_path_factory.mktemp("misconfiguration")
    database = f"mastodon_{uuid.uuid4().hex[:12]}"
    database_url = postgres.create_database(database)
    conn = postgres.connect(database)
    try:
        create_schema(conn, SchemaVersion.CURRENT)
    finally:
        conn.close()
    bucket = f"misconfiguration-{uuid.uuid4().hex[:8]}"
    create_bucket(moto.client(), bucket)
    create_bucket(moto.client(), f"{bucket}-copy")
    sqs = boto3.client(
        "sqs",
        endpoint_url=moto.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    queue_url = sqs.create_queue(QueueName=bucket)["QueueUrl"]
    isolation = _resolution_fails_without_traffic()
    with (
        raw_listener(GARBAGE) as garbage,
        raw_listener(None) as silent,
        untrusted_tls(work) as tls,
        other_region_s3() as other_region,
        ThreadPoolExecutor(4 + sum(case.waits for case in CASES.values())) as pool,
    ):
        bench = Bench(
            moto, bucket, queue_url, database_url, garbage, silent, tls, other_region, work
        )
        runs = {
            name: pool.submit(_run, case, bench)
            for name, case in sorted(CASES.items(), key=lambda item: not item[1].waits)
            if isolation or not case.isolated_network
        }
        yield {name: runs[name].result() if name in runs else None for name in CASES}
    postgres.drop_database(database)


@pytest.mark.parametrize("name", CASES)
def test_a_misconfiguration_is_one_line_naming_the_setting(
    name: str, outcomes: dict[str, subprocess.CompletedProcess[str] | None]
) -> None:
    case, result = CASES[name], outcomes[name]
    if result is None:
        pytest.skip("no way here to fail a name's resolution without sending a query")
    output = result.stdout + result.stderr
    assert result.returncode == case.status, output
    assert "Traceback" not in output
    if "config" in result.args and "check" in result.args:
        # config check prints every setting, then one line per check
        assert not result.stderr
        line = next(line for line in result.stdout.splitlines() if line.startswith("FAIL"))
    else:
        # one error line; before it, at most the status lines of the phases begun ("…")
        lines = result.stderr.strip().splitlines()
        *status, line = lines
        assert line.startswith(PROG), result.stderr
        assert all(earlier.endswith("…") for earlier in status), result.stderr
    for text in case.says:
        assert text in line, line
    for secret in (S3_SECRET, SQS_SECRET, DB_PASSWORD, PROXY_PASSWORD):
        assert secret not in output


def test_an_enumerator_event_with_an_id_beyond_bigint_is_refused_before_any_query() -> None:
    event = {"type": "accounts", "after_id": TOO_BIG}
    with pytest.raises(EventError) as refused:
        parse_enumerator_event(event, datetime.now(UTC))
    assert str(refused.value) == (
        f"after_id {TOO_BIG} is out of range: ids and row counts are PostgreSQL bigints, "
        f"from {MIN_BIGINT} to {MAX_BIGINT}"
    )
    answer = enumerator_handler.handler(event, FakeLambdaContext().as_lambda_context())
    assert answer == {"ok": False, "error": str(refused.value)}
