"""Soak: a long ``run`` through 10% faults on both sides, SIGKILLed twice, resumed, verified.

A Mastodon mix of small objects (benchmarks/dataset.py's size classes divided by
:data:`SCALE`, plus a few videos kept above the multipart threshold so a kill can land in
a multipart upload) sits in one ``rclone serve s3`` server, described by a real Mastodon
database. A :class:`FaultProxy` in front of each server faults 10% of the object requests
(503 SlowDown, 500, 400 RequestTimeout, reset and truncated bodies). ``mastodon-s3-sync run``
is SIGKILLed when about 30% and 60% of the objects have reached the destination, resumed
each time, and the last run goes to the end. Then, against the servers directly:
``verify --full``, every object's bytes compared on disk with what was seeded (lost,
corrupt, unasked-for), and ListMultipartUploads (open uploads). The copier's RSS is read
from /proc every second. Figures go to benchmarks/results/soak.json.

    .venv/bin/python -m benchmarks.soak [--objects 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.dataset import MIB, Dataset, DatasetObject, Row, body, mastodon_mix, seed_database
from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import AclMode, CopySettings
from mastodon_s3_sync.demo.media import content_type_for, create_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.s3servers import RcloneS3Server
from mastodon_s3_sync.mastodon.layout import RecordType, objects_for_row
from tests.support.faultproxy import MULTIPART_OPERATIONS, FaultProxy, Operation, mixed_faults

RESULTS_JSON = Path(__file__).parent / "results" / "soak.json"
SCALE = 100
"""Every size class of the mix divided by this: originals 2-30 KB, previews 100-600 bytes."""
LARGE_VIDEOS = 12
LARGE_BYTES = (6 * MIB, 8 * MIB)
"""Sizes of the videos kept large: two 5 MiB parts each."""
COPY = CopySettings(
    acl=AclMode.NONE,  # rclone keeps no ACLs (GetObjectAcl answers 500)
    workers=16,
    multipart_threshold_bytes=5 * MIB,
    part_size_bytes=5 * MIB,
)
FAULT_RATE = 0.10
# Every object operation; HeadBucket is left alone (a run refused at start-up is another test).
FAULTED = (
    Operation.GET,
    Operation.HEAD,
    Operation.PUT,
    Operation.LIST,
    Operation.DELETE,
    *MULTIPART_OPERATIONS,
)
KILL_AT = (0.30, 0.60)
"""Share of the objects written at the destination when a run is SIGKILLed."""
EXTRA_RUNS = 2
"""Resumes allowed after the last killed one, should a run end with objects failed."""
RUN_TIMEOUT_S = 3 * 3600
VERIFY_TIMEOUT_S = 3600
RSS_INTERVAL_S = 1.0
FLAT_RATIO = 1.25
"""RSS is called flat when no run's last quarter peaks above this times its first half."""
BUCKET = "media"


def _scaled_row(row: Row) -> Row:
    """``row`` with its file sizes divided by :data:`SCALE`."""
    return {
        k: max(1, v // SCALE) if k.endswith("_file_size") and isinstance(v, int) else v
        for k, v in row.items()
    }


def scaled_mix(objects: int, seed: int = 0) -> Dataset:
    """The Mastodon mix with every size divided by :data:`SCALE`, a few videos kept large."""
    mix = mastodon_mix(objects, seed)
    derived = {obj.key: max(1, obj.size // SCALE) for obj in mix.objects}
    rows = {
        record_type: [_scaled_row(row) for row in table_rows]
        for record_type, table_rows in mix.rows.items()
    }
    videos = [
        row for row in rows[RecordType.MEDIA_ATTACHMENTS] if row["file_content_type"] == "video/mp4"
    ]
    for row in videos[:: max(1, len(videos) // LARGE_VIDEOS)][:LARGE_VIDEOS]:
        row["file_file_size"] = random.Random(f"large:{row['id']}").randrange(*LARGE_BYTES)
    scaled = []
    for record_type, table_rows in rows.items():
        for row in table_rows:
            for ref in objects_for_row(record_type, row):
                size = ref.expected_size if ref.expected_size is not None else derived[ref.key]
                scaled.append(DatasetObject(ref, size, content_type_for(ref)))
    return Dataset(rows, scaled)


def write_files(root: Path, dataset: Dataset) -> None:
    """Seed the bucket straight into rclone's directory (before it starts): no PUTs."""
    for obj in dataset.objects:
        path = root / BUCKET / obj.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body(obj.size, obj.key))


def files_under(directory: Path) -> int:
    """Files in a bucket's directory: objects at the destination, complete or not."""
    return sum(len(files) for _, _, files in os.walk(directory))


def compare_on_disk(root: Path, dataset: Dataset) -> dict[str, int]:
    """Each object's bytes at the destination against what was seeded; extra files too."""
    lost = corrupt = 0
    for obj in dataset.objects:
        path = root / BUCKET / obj.key
        if not path.is_file():
            lost += 1
        elif path.read_bytes() != body(obj.size, obj.key):
            corrupt += 1
    present = len(dataset.objects) - lost
    return {
        "lost": lost,
        "corrupt": corrupt,
        "unasked_for": files_under(root / BUCKET) - present,
    }


@dataclass
class RssSampler:
    """VmRSS of one process, read from /proc every :data:`RSS_INTERVAL_S` (in MiB)."""

    pid: int
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._sample, name="rss", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.samples.append(int(line.split()[1]) / 1024)
            self._stop.wait(RSS_INTERVAL_S)

    def stop(self) -> None:
        """Stop sampling (the process has ended)."""
        self._stop.set()
        self._thread.join()

    def quarters(self) -> list[float]:
        """Peak RSS in each quarter of the run's samples."""
        if not self.samples:
            return []
        size = math.ceil(len(self.samples) / 4)
        return [
            round(max(self.samples[i : i + size]), 1) for i in range(0, len(self.samples), size)
        ]


@dataclass
class RunRecord:
    """One ``run`` process: how it ended and what it left."""

    run: int
    killed_at_share: float | None
    exit_status: int
    seconds: float
    objects_at_destination_after: int
    open_uploads_after: int
    peak_rss_mib: float
    rss_quarter_peaks_mib: list[float]
    report: dict[str, Any] | None = None
    """The run's own --report counts (a SIGKILLed run writes none)."""


class Soak:
    """The servers, proxies and dataset of one soak, and its runs."""

    def __init__(
        self,
        dataset: Dataset,
        scratch: Path,
        database_url: str,
        servers: tuple[RcloneS3Server, RcloneS3Server],
        proxies: tuple[FaultProxy, FaultProxy],
    ) -> None:
        self.dataset = dataset
        self.scratch = scratch
        self.source, self.destination = servers
        self.proxies = proxies
        self.records: list[RunRecord] = []
        self.config = scratch / "sync.toml"
        self.config.write_text(
            config_toml(
                database_url,
                replace(self.source.bucket_settings(BUCKET), endpoint_url=proxies[0].url),
                replace(self.destination.bucket_settings(BUCKET), endpoint_url=proxies[1].url),
                COPY,
            )
        )
        self.direct_config = scratch / "direct.toml"
        self.direct_config.write_text(
            config_toml(
                database_url,
                self.source.bucket_settings(BUCKET),
                self.destination.bucket_settings(BUCKET),
                COPY,
            )
        )

    def destination_writes(self) -> int:
        """PUTs and completed multipart uploads that reached the destination server."""
        forwarded = self.proxies[1].stats.forwarded
        return forwarded.get(Operation.PUT, 0) + forwarded.get(Operation.COMPLETE_MULTIPART, 0)

    def open_uploads(self) -> int:
        """Multipart uploads open at the destination, asked of the server directly."""
        answer = self.destination.client().list_multipart_uploads(Bucket=BUCKET)
        return len(answer.get("Uploads", []))

    def run(self, kill_at: float | None) -> RunRecord:
        """One ``run``; SIGKILLed once ``kill_at`` of the objects were written, if given."""
        number = len(self.records) + 1
        report = self.scratch / f"run-{number}.json"
        log = self.scratch / f"run-{number}.log"
        command = [
            sys.executable,
            "-m",
            "mastodon_s3_sync",
            "run",
            "--config",
            str(self.config),
            "--report",
            str(report),
        ]
        target = None if kill_at is None else kill_at * len(self.dataset.objects)
        started = time.monotonic()
        with log.open("w") as stderr, child_process(command, stderr) as child:
            sampler = RssSampler(child.pid)
            try:
                while child.poll() is None:
                    if time.monotonic() - started > RUN_TIMEOUT_S:
                        raise RuntimeError(f"run {number} still going after {RUN_TIMEOUT_S} s")
                    if target is not None and self.destination_writes() >= target:
                        child.send_signal(signal.SIGKILL)
                        child.wait(timeout=30)
                        break
                    time.sleep(0.2)
            finally:
                sampler.stop()
        seconds = time.monotonic() - started
        if kill_at is None and not report.exists():
            raise RuntimeError(f"run {number} wrote no report:\n{tail(log)}")
        counts = None
        if kill_at is None:
            document = json.loads(report.read_text())
            counts = {k: v for k, v in document.items() if isinstance(v, int | float | bool)}
        record = RunRecord(
            number,
            kill_at,
            child.returncode,
            round(seconds, 1),
            files_under(self.destination.root_dir / BUCKET),
            self.open_uploads(),
            round(max(sampler.samples, default=0.0), 1),
            sampler.quarters(),
            counts,
        )
        self.records.append(record)
        print(
            f"run {number}: exit {record.exit_status} after {record.seconds:.0f} s, "
            f"{record.objects_at_destination_after:,} objects at the destination, "
            f"{record.open_uploads_after} uploads open, peak RSS {record.peak_rss_mib:.0f} MiB "
            f"(quarters {record.rss_quarter_peaks_mib})",
            flush=True,
        )
        return record

    def verify(self) -> dict[str, Any]:
        """``verify --full`` against the servers directly: the tool's own proof."""
        report = self.scratch / "verify.json"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "mastodon_s3_sync",
                "verify",
                "--config",
                str(self.direct_config),
                "--full",
                "--report",
                str(report),
            ],
            capture_output=True,
            text=True,
            timeout=VERIFY_TIMEOUT_S,
            check=False,
        )
        document = json.loads(report.read_text()) if report.exists() else {}
        counts = {k: v for k, v in document.items() if isinstance(v, int | float | bool)}
        print(result.stdout + result.stderr, flush=True)
        return {"exit_status": result.returncode, **counts}


@contextlib.contextmanager
def child_process(command: Sequence[str], stderr: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A child that never outlives the block (Ctrl-C, a timeout)."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log, for an error message."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def flat(records: Sequence[RunRecord]) -> bool:
    """Whether each run's last quarter peaks within :data:`FLAT_RATIO` of its first half.

    The first half, not the first quarter: a short run's first quarter is mostly imports.
    """
    return all(
        r.rss_quarter_peaks_mib[-1] <= FLAT_RATIO * max(r.rss_quarter_peaks_mib[:2])
        for r in records
        if r.rss_quarter_peaks_mib
    )


def proxy_figures(proxy: FaultProxy) -> dict[str, Any]:
    """Requests forwarded and faults injected by one proxy."""
    stats = proxy.stats
    return {
        "requests_forwarded": stats.total_forwarded,
        "faults_injected": stats.total_injected,
        "faults_by_kind": {str(k): v for k, v in sorted(stats.injected_by_fault().items())},
    }


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # SIGTERM stops the soak as Ctrl-C does (servers stopped, scratch removed), and so
    # does SIGINT even when started in the background (where shells ignore it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000, help="objects in the mix")
    parser.add_argument("--output", type=Path, default=RESULTS_JSON)
    args = parser.parse_args()
    started = time.monotonic()
    dataset = scaled_mix(args.objects)
    print(
        f"dataset: {len(dataset.objects):,} objects, {dataset.total_bytes / 1e6:.0f} MB "
        f"{dataset.counts_by_class()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch_name:
        scratch = Path(scratch_name)
        write_files(scratch / "source", dataset)
        (scratch / "destination" / BUCKET).mkdir(parents=True)
        with (
            LocalPostgres() as cluster,
            RcloneS3Server(root_dir=scratch / "source") as source,
            RcloneS3Server(root_dir=scratch / "destination") as destination,
            FaultProxy(
                source.endpoint_url, rules=mixed_faults(FAULT_RATE, FAULTED), seed=1
            ) as source_proxy,
            FaultProxy(
                destination.endpoint_url, rules=mixed_faults(FAULT_RATE, FAULTED), seed=2
            ) as destination_proxy,
        ):
            url = cluster.create_database("soak")
            with contextlib.closing(cluster.connect("soak")) as conn:
                seed_database(conn, dataset)
            create_bucket(destination.client(), BUCKET)
            print(f"seeded in {time.monotonic() - started:.0f} s", flush=True)
            soak = Soak(
                dataset, scratch, url, (source, destination), (source_proxy, destination_proxy)
            )
            for share in KILL_AT:
                soak.run(share)
            for _ in range(1 + EXTRA_RUNS):
                if soak.run(None).exit_status == 0:
                    break
            proxies = {
                "source": proxy_figures(source_proxy),
                "destination": proxy_figures(destination_proxy),
            }
            verify = soak.verify()
            on_disk = compare_on_disk(scratch / "destination", dataset)
            open_uploads = soak.open_uploads()
    elapsed = time.monotonic() - started
    runs = soak.records
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/soak.py", *sys.argv[1:]]),
        "elapsed_seconds": round(elapsed),
        "cpus": os.cpu_count(),
        "dataset": {
            "objects": len(dataset.objects),
            "bytes": dataset.total_bytes,
            "by_class": dataset.counts_by_class(),
            "size_scale": f"1/{SCALE}",
            "multipart_objects": sum(
                o.size >= COPY.multipart_threshold_bytes for o in dataset.objects
            ),
        },
        "copy": {k: str(v) if isinstance(v, AclMode) else v for k, v in asdict(COPY).items()},
        "fault_rate": FAULT_RATE,
        "faulted_operations": [str(op) for op in FAULTED],
        "proxies": proxies,
        "sigkills": sum(r.killed_at_share is not None for r in runs),
        "runs": [asdict(r) for r in runs],
        "run_seconds": round(sum(r.seconds for r in runs), 1),
        "verify": verify,
        "on_disk": on_disk,
        "open_uploads": open_uploads,
        "rss_flat": flat(runs),
    }
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    faults = sum(p["faults_injected"] for p in proxies.values())
    print(
        f"soak: {len(dataset.objects):,} objects, {faults:,} faults injected, "
        f"{document['sigkills']} SIGKILLs, {len(runs)} runs in {document['run_seconds']:.0f} s; "
        f"verify exit {verify['exit_status']}; lost {on_disk['lost']}, corrupt "
        f"{on_disk['corrupt']}, unasked-for {on_disk['unasked_for']}, open uploads "
        f"{open_uploads}; peak RSS per run {[r.peak_rss_mib for r in runs]} MiB "
        f"({'flat' if document['rss_flat'] else 'NOT flat'}); wrote {args.output} "
        f"after {elapsed / 60:.1f} min",
        flush=True,
    )


if __name__ == "__main__":
    main()
