"""Fan-out costs: enumeration into a queue, and the copier handler's CPU per object.

1. Enumeration of a generated media_attachments table (default 1,000,000 rows) into an
   in-memory sink (our own cost alone) and into SQS on a local moto_server.
2. The copier Lambda handler, called directly with SQS events, copying small objects
   between two local moto_server processes: CPU seconds of this process per object.

    .venv/bin/python -m benchmarks.fanout_throughput [--rows 1000000] [--objects 2000]

Writes benchmarks/results/fanout_throughput.md. Only loopback traffic.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

import functions.copier.handler as copier_handler
from mastodon_s3_sync.demo.loader import insert_rows
from mastodon_s3_sync.demo.media import create_bucket, seed_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.s3servers import MotoS3Server
from mastodon_s3_sync.demo.schema import SchemaVersion, create_schema
from mastodon_s3_sync.demo.seed import generate_rows
from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.transport.enumeration import Cursor, enumerate_to_queue
from mastodon_s3_sync.transport.messages import MessagePacker
from mastodon_s3_sync.transport.sqs import SqsSink, make_sqs_client
from tests.events.factory import FakeLambdaContext, sqs_event_for_bodies

RESULTS = Path(__file__).parent / "results" / "fanout_throughput.md"
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class CountingSink:
    """An in-memory queue: counts bodies and their bytes."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def send(self, body: str) -> None:
        self.messages += 1
        self.bytes += len(body.encode())

    def flush(self) -> None:
        """Nothing is buffered."""


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def enumerate_once(
    catalog: Catalog, sink: CountingSink | SqsSink, rows: int | None = None
) -> tuple[float, float, int]:
    """(seconds, CPU seconds, objects) of one enumeration of media_attachments."""
    cursor = Cursor((RecordType.MEDIA_ATTACHMENTS,), rows_left=rows)
    started, cpu_started = time.perf_counter(), cpu()
    result = enumerate_to_queue(catalog, sink, cursor, CatalogFilter(), "bench")
    objects = result.counts[RecordType.MEDIA_ATTACHMENTS].objects
    return time.perf_counter() - started, cpu() - cpu_started, objects


def copier_cpu_per_object(objects: int) -> tuple[float, float, int]:
    """(CPU ms per object, objects/s, objects) for the copier handler on moto."""
    with MotoS3Server() as source, MotoS3Server() as destination:
        create_bucket(source.client(), "src")
        create_bucket(destination.client(), "dst")
        refs = [
            ObjectRef(RecordType.MEDIA_ATTACHMENTS, n, "file", "original", f"m/{n:09d}/o.png")
            for n in range(objects)
        ]
        seed_bucket(source.client(), "src", refs)
        for side, server, bucket in (
            ("SOURCE", source, "src"),
            ("DESTINATION", destination, "dst"),
        ):
            os.environ[f"MSS_{side}_BUCKET"] = bucket
            os.environ[f"MSS_{side}_ENDPOINT_URL"] = server.endpoint_url
            os.environ[f"MSS_{side}_REGION"] = "us-east-1"
            os.environ[f"MSS_{side}_ADDRESSING_STYLE"] = "path"
        os.environ.update(POWERTOOLS_METRICS_NAMESPACE="Bench", POWERTOOLS_LOG_LEVEL="ERROR")
        packer = MessagePacker("bench", RecordType.MEDIA_ATTACHMENTS)
        bodies = [body for ref in refs if (body := packer.add(ref)) is not None]
        bodies += [body for body in [packer.flush()] if body is not None]
        copier_handler.runtime.cache_clear()
        started, cpu_started = time.perf_counter(), cpu()
        for start in range(0, len(bodies), 10):
            event = sqs_event_for_bodies(bodies[start : start + 10])
            response = copier_handler.handler(event, FakeLambdaContext().as_lambda_context())
            assert not response["batchItemFailures"], response
        seconds, spent = time.perf_counter() - started, cpu() - cpu_started
    return spent / objects * 1000, objects / seconds, objects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--sqs-rows",
        type=int,
        default=100_000,
        help="rows sent to moto_server's SQS, which is single-threaded and far slower than us",
    )
    parser.add_argument("--objects", type=int, default=2000)
    args = parser.parse_args()
    os.environ.update(MOTO_CREDENTIALS)  # moto checks no credentials; boto3 wants some
    lines = [
        "# Fan-out: enumeration into a queue, copier handler CPU",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; PostgreSQL and moto_server on loopback.",
        "",
    ]
    with LocalPostgres() as cluster:
        cluster.create_database("bench")
        conn = cluster.connect("bench")
        create_schema(conn, SchemaVersion.CURRENT)
        insert_rows(
            conn,
            "media_attachments",
            generate_rows("media_attachments", args.rows, seed=1),
            SchemaVersion.CURRENT,
        )
        conn.run("VACUUM ANALYZE media_attachments")
        catalog = Catalog(conn, page_size=5000)
        memory = CountingSink()
        seconds, spent, objects = enumerate_once(catalog, memory)
        lines += [
            f"Enumeration of {args.rows:,} media_attachments rows ({objects:,} objects):",
            "",
            "| sink | seconds | objects/s | CPU s of this process |",
            "| --- | ---: | ---: | ---: |",
            f"| in memory | {seconds:.1f} | {objects / seconds:,.0f} | {spent:.1f} |",
        ]
        print(lines[-1], flush=True)
        with MotoS3Server() as moto:
            sqs = make_sqs_client(moto.endpoint_url, "us-east-1")
            queue_url = sqs.create_queue(QueueName="bench")["QueueUrl"]
            sink = SqsSink(sqs, queue_url)
            sqs_seconds, sqs_spent, sqs_objects = enumerate_once(catalog, sink, args.sqs_rows)
            sink.close()
        lines.append(
            f"| SQS on moto_server (first {args.sqs_rows:,} rows, {sqs_objects:,} objects) | "
            f"{sqs_seconds:.1f} | {sqs_objects / sqs_seconds:,.0f} | {sqs_spent:.1f} |"
        )
        print(lines[-1], flush=True)
        lines += [
            "",
            f"Messages: {memory.messages:,}; on average {objects / memory.messages:.1f} objects "
            f"and {memory.bytes / memory.messages / 1024:.1f} KiB per message.",
        ]
    per_object, rate, copied = copier_cpu_per_object(args.objects)
    lines += [
        "",
        f"Copier handler, {copied:,} small objects (1-40 KiB) between two moto_server "
        f"processes, 16 threads: **{per_object:.1f} ms CPU per object** in the handler's "
        f"process ({rate:,.0f} objects/s; moto is the bottleneck).",
    ]
    print(lines[-1])
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
