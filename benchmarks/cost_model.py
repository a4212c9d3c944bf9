"""What the serverless mode costs per 1 million objects, from measured figures and list prices.

Inputs are the suite's measurements (benchmarks/results/copy_suite.json): the copier
Lambda handler's requests per object (counted by the delay proxies), its wall time per
object as one warm instance with 30 ms per request, its CPU per object, and the queue
messages the enumerator makes of the dataset. Prices are AWS's public list prices for
us-east-1 (S3 Standard, Lambda on arm64 as the stack deploys it, SQS standard queues),
without free tiers and without data transfer, which every tool pays alike per GB.

    .venv/bin/python -m benchmarks.cost_model    # prints the section; report.py embeds it
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.summary import DELAY_MODE, DIRECT_MODE, Summary, summarize
from mastodon_s3_sync.config.stack import DEFAULT_BATCH_SIZE, DEFAULT_COPIER_MEMORY_MB

RESULTS = Path(__file__).parent / "results"
MILLION = 1_000_000

PRICES_CHECKED = "2026-11-27"
S3_PUT_CLASS_PER_1000 = 0.005
"""PUT, COPY, POST and LIST requests, S3 Standard, us-east-1."""
S3_GET_CLASS_PER_1000 = 0.0004
"""GET, HEAD and all other requests (GetObjectAcl included)."""
LAMBDA_ARM64_PER_GB_SECOND = 0.0000133334
LAMBDA_X86_PER_GB_SECOND = 0.0000166667
LAMBDA_PER_REQUEST = 0.20 / MILLION
SQS_PER_REQUEST = 0.40 / MILLION
"""Standard queue; every 64 KiB chunk of a request's payload counts as one request."""
SQS_CHUNK_BYTES = 64 * 1024
SQS_SEND_BATCH = 10  # SendMessageBatch: the enumerator sends ten messages at a time
LAMBDA_FULL_VCPU_MB = 1769
"""Lambda gives one full vCPU at 1,769 MB; CPU share is proportional to memory."""
ENUMERATOR_MEMORY_MB = 1024  # infra/stack.py ENUMERATOR_MEMORY_MB

PUT_CLASS = frozenset(
    {"put", "copy", "list", "create_multipart", "upload_part", "complete_multipart"}
)
FREE = frozenset({"delete", "abort_multipart"})

# AWS Data Transfer Hub, implementation guide, "Cost", Example 2 (as of April 2023):
# 1 TB of 10 KB files (~107,400,000 files), us-west-2 -> cn-north-1.
DTH_FILES = 107_400_000
DTH_COSTS = {
    "Amazon S3 requests (~2 GET + 1 PUT per file)": 622.34,
    "Amazon DynamoDB (~2 writes per file)": 268.25,
    "Amazon SQS (~2 requests per file)": 85.92,
    "Amazon EC2 (t4g.micro, ~3,000 h)": 25.20,
    "Others (CloudWatch, Secrets Manager, ...)": 20.00,
}
DTH_TRANSFER_OUT = 92.16
DTH_SOURCE = (
    "AWS Data Transfer Hub implementation guide, section *Cost*, Example 2 "
    "(github.com/aws-solutions/data-transfer-hub, docs/en-base/plan-deployment/cost.md)"
)


@dataclass(frozen=True)
class Estimate:
    """Usage and cost of copying 1 million objects of one dataset with the stack."""

    label: str
    s3_requests: Mapping[str, float]
    """Requests per 1M objects by S3 operation."""
    cpu_ms_per_object: float
    wall_ms_per_object: float
    objects_per_message: float
    bytes_per_message: float
    enumerator_objects_per_second: float | None

    @property
    def put_class_requests(self) -> float:
        """PUT/COPY/POST/LIST requests per 1M objects."""
        return sum(n for op, n in self.s3_requests.items() if op in PUT_CLASS)

    @property
    def get_class_requests(self) -> float:
        """GET/HEAD/other requests per 1M objects (DELETE and abort are free)."""
        return sum(
            n for op, n in self.s3_requests.items() if op not in PUT_CLASS and op not in FREE
        )

    @property
    def billed_ms_per_object(self) -> float:
        """Copier duration per object: the measured wall time, or the CPU floor if higher.

        The CPU was measured on this machine's cores; a 1,024 MB function has 1024/1769
        of one vCPU.
        """
        cpu_share = DEFAULT_COPIER_MEMORY_MB / LAMBDA_FULL_VCPU_MB
        return max(self.wall_ms_per_object, self.cpu_ms_per_object / cpu_share)

    @property
    def copier_gb_seconds(self) -> float:
        """Copier GB-seconds per 1M objects."""
        return DEFAULT_COPIER_MEMORY_MB / 1024 * self.billed_ms_per_object / 1000 * MILLION

    @property
    def enumerator_gb_seconds(self) -> float:
        """Enumerator GB-seconds per 1M objects (CPU-bound; scaled to its vCPU share)."""
        if not self.enumerator_objects_per_second:
            return 0.0
        cpu_share = ENUMERATOR_MEMORY_MB / LAMBDA_FULL_VCPU_MB
        seconds = MILLION / self.enumerator_objects_per_second / cpu_share
        return ENUMERATOR_MEMORY_MB / 1024 * seconds

    @property
    def messages(self) -> float:
        """Queue messages (and copier invocations, one message each) per 1M objects."""
        return MILLION / self.objects_per_message

    @property
    def lambda_requests(self) -> float:
        """Copier invocations per 1M objects (batch size 1); the enumerator adds a handful."""
        return self.messages / DEFAULT_BATCH_SIZE

    @property
    def sqs_requests(self) -> float:
        """Billed SQS requests per 1M objects: send and receive in 64 KiB chunks, delete."""
        chunks_per_batch = math.ceil(SQS_SEND_BATCH * self.bytes_per_message / SQS_CHUNK_BYTES)
        sends = self.messages / SQS_SEND_BATCH * chunks_per_batch
        receives = sends  # the event source mapping receives up to ten at a time
        deletes = self.messages / DEFAULT_BATCH_SIZE
        return sends + receives + deletes

    def costs(self) -> dict[str, float]:
        """Dollars per 1M objects by line item."""
        return {
            "S3 PUT/COPY/LIST requests": self.put_class_requests / 1000 * S3_PUT_CLASS_PER_1000,
            "S3 GET/HEAD requests": self.get_class_requests / 1000 * S3_GET_CLASS_PER_1000,
            "Lambda duration (arm64)": (self.copier_gb_seconds + self.enumerator_gb_seconds)
            * LAMBDA_ARM64_PER_GB_SECOND,
            "Lambda requests": self.lambda_requests * LAMBDA_PER_REQUEST,
            "SQS requests": self.sqs_requests * SQS_PER_REQUEST,
        }


def estimates(suite: Mapping[str, Any], enumeration: Mapping[str, Any] | None) -> list[Estimate]:
    """One estimate per dataset the copier handler ran on."""
    summaries = summarize(suite["records"])
    enumerator_rate = None
    if enumeration is not None:
        largest = max(enumeration["results"], key=lambda result: result["rows"])
        enumerator_rate = statistics.median(
            run["objects"] / run["seconds"] for run in largest["runs"]
        )
    found = []
    for label, meta in (
        ("Mastodon mix", suite["dataset"]),
        ("10 KiB objects", suite["small_dataset"]),
    ):
        delayed = summaries.get(("lambda-copier", DELAY_MODE, label))
        direct = summaries.get(("lambda-copier", DIRECT_MODE, label))
        if delayed is None or direct is None or delayed.requests is None:
            continue
        found.append(
            Estimate(
                label=label,
                s3_requests={
                    op: n / delayed.objects * MILLION for op, n in delayed.requests.items()
                },
                cpu_ms_per_object=_per_object_ms(direct, "handler_cpu_seconds"),
                wall_ms_per_object=_per_object_ms(delayed, "handler_seconds"),
                objects_per_message=meta["objects"] / meta["messages"],
                bytes_per_message=meta["message_bytes"] / meta["messages"],
                enumerator_objects_per_second=enumerator_rate,
            )
        )
    return found


def _per_object_ms(summary: Summary, name: str) -> float:
    return summary.extra[name] / summary.objects * 1000


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.1 else f"${value:,.3f}"


def section(suite: Mapping[str, Any], enumeration: Mapping[str, Any] | None) -> list[str]:
    """The cost model's part of RESULTS.md."""
    found = estimates(suite, enumeration)
    if not found:
        return ["The copier handler scenario has not run; no cost model."]
    lines = [
        f"Prices: AWS public list prices, us-east-1, checked {PRICES_CHECKED}, without free "
        f"tiers: S3 Standard ${S3_PUT_CLASS_PER_1000} per 1,000 PUT/COPY/POST/LIST and "
        f"${S3_GET_CLASS_PER_1000} per 1,000 GET/HEAD (and other) requests; Lambda "
        f"${LAMBDA_ARM64_PER_GB_SECOND:.10f} per GB-s on arm64 "
        f"(x86: ${LAMBDA_X86_PER_GB_SECOND:.10f}) "
        f"and $0.20 per 1M requests; SQS standard $0.40 per 1M requests, each 64 KiB chunk "
        "of a payload counting as one. Data transfer is left out: it is the same per GB "
        "for every tool (e.g. $0.09/GB out of AWS to the internet).",
        "",
        "Model: the stack's defaults (copier 1,024 MB on arm64, one message per invocation, "
        f"{suite['default_workers']} threads). Requests per object are those the copier "
        "handler made on the benchmark (counted by the proxies); the billed duration per "
        "object is the handler's measured wall time as one warm instance with 30 ms per "
        "request (or its CPU time scaled to 1024/1769 of a vCPU, if higher); the "
        "enumerator's duration is "
        "the measured enumeration rate scaled the same way. SQS: the enumerator sends ten "
        "messages per SendMessageBatch; the event source mapping receives the same chunks "
        "and deletes each message; idle long polls (a few per minute per queue, not per "
        "object) are left out. Copying ACLs (the default on AWS; the benchmark used "
        "`--acl none`) adds one GetObjectAcl per object: +$0.40 per 1M objects.",
        "",
        "| per 1M objects | " + " | ".join(e.label for e in found) + " |",
        "| --- |" + " ---: |" * len(found),
    ]
    rows: list[tuple[str, list[str]]] = [
        ("S3 requests, PUT class", [f"{e.put_class_requests:,.0f}" for e in found]),
        ("S3 requests, GET class", [f"{e.get_class_requests:,.0f}" for e in found]),
        ("objects per message", [f"{e.objects_per_message:.1f}" for e in found]),
        ("copier invocations", [f"{e.lambda_requests:,.0f}" for e in found]),
        ("copier CPU ms per object (measured)", [f"{e.cpu_ms_per_object:.2f}" for e in found]),
        (
            "copier wall ms per object, one instance (measured)",
            [f"{e.wall_ms_per_object:.2f}" for e in found],
        ),
        (
            "Lambda GB-seconds (copier + enumerator)",
            [f"{e.copier_gb_seconds + e.enumerator_gb_seconds:,.0f}" for e in found],
        ),
        ("SQS billed requests", [f"{e.sqs_requests:,.0f}" for e in found]),
    ]
    costs = [e.costs() for e in found]
    rows += [(f"**{item}**", [_money(c[item]) for c in costs]) for item in costs[0]]
    rows.append(("**total**", [f"**{_money(sum(c.values()))}**" for c in costs]))
    lines += [f"| {name} | " + " | ".join(values) + " |" for name, values in rows]
    dth_total = sum(DTH_COSTS.values())
    small = next((e for e in found if e.label == "10 KiB objects"), None)
    lines += [
        "",
        "Next to AWS Data Transfer Hub's published cost for 10 KB objects: "
        f"${dth_total + DTH_TRANSFER_OUT:,.2f} for ~{DTH_FILES / MILLION:.1f}M files, of which "
        f"${DTH_TRANSFER_OUT} is data transfer out. Source: {DTH_SOURCE}. Per 1M files "
        "without data transfer:",
        "",
        "| per 1M 10 KB objects | Data Transfer Hub (published) | mastodon-s3-sync (model) |",
        "| --- | ---: | ---: |",
    ]
    for item, dollars in DTH_COSTS.items():
        lines.append(f"| {item} | {_money(dollars / DTH_FILES * MILLION)} | |")
    if small is not None:
        for item, dollars in small.costs().items():
            lines.append(f"| {item} | | {_money(dollars)} |")
        lines.append(
            f"| **total** | **{_money(dth_total / DTH_FILES * MILLION)}** | "
            f"**{_money(sum(small.costs().values()))}** |"
        )
    floor = (S3_GET_CLASS_PER_1000 + S3_PUT_CLASS_PER_1000) * 1000
    lines += [
        "",
        f"S3 requests are the floor for any copier: one GET and one PUT cost ${floor:.2f} per "
        "1M objects. Beyond them the copier made "
        + "; ".join(
            f"{e.s3_requests.get('list', 0):,.0f} LIST and "
            f"{e.s3_requests.get('head', 0):,.0f} HEAD requests per 1M objects ({e.label})"
            for e in found
        )
        + ". No DynamoDB table and no always-on instance are involved.",
    ]
    return lines


def main() -> None:
    suite = json.loads((RESULTS / "copy_suite.json").read_text())
    enumeration_path = RESULTS / "enumeration.json"
    enumeration = json.loads(enumeration_path.read_text()) if enumeration_path.exists() else None
    print("\n".join(section(suite, enumeration)))


if __name__ == "__main__":
    main()
