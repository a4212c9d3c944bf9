"""Medians and spread of the suite's raw records, grouped by scenario, mode and tool."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DELAY_MODE = "delay-30ms"
DIRECT_MODE = "direct"
OPERATION_ORDER = ("head", "get", "put", "copy", "list", "acl", "bucket")
OPERATION_NAMES = {
    "head": "HEAD",
    "get": "GET",
    "put": "PUT",
    "copy": "COPY",
    "list": "LIST",
    "acl": "GetObjectAcl",
    "bucket": "bucket",
    "create_multipart": "CreateMultipart",
    "upload_part": "UploadPart",
    "complete_multipart": "CompleteMultipart",
}


@dataclass(frozen=True)
class Summary:
    """Several runs of one tool in one scenario and mode."""

    runs: int
    objects: int
    bytes: int
    seconds: float
    fastest: float
    slowest: float
    cpu_seconds: float
    peak_rss_mib: float
    requests: Mapping[str, float] | None
    extra: Mapping[str, float]

    @property
    def objects_per_second(self) -> float:
        """Objects over the median wall time."""
        return self.objects / self.seconds

    @property
    def rate_range(self) -> tuple[float, float]:
        """Objects/s of the slowest and the fastest run."""
        return self.objects / self.slowest, self.objects / self.fastest

    @property
    def megabytes_per_second(self) -> float:
        """MB (10^6 bytes) over the median wall time."""
        return self.bytes / 1e6 / self.seconds

    @property
    def cpu_per_thousand(self) -> float:
        """CPU seconds of the tool's process per 1,000 objects (median run)."""
        return self.cpu_seconds / self.objects * 1000

    def requests_per_object(self) -> float | None:
        """All counted requests over the objects (median run), if counted."""
        if self.requests is None:
            return None
        return sum(self.requests.values()) / self.objects


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], Summary]:
    """(scenario, mode, tool) -> summary of its runs."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for record in records:
        key = (record["scenario"], record["mode"], record["tool"])
        groups.setdefault(key, []).append(record)
    summaries = {}
    for key, runs in groups.items():
        seconds = [r["seconds"] for r in runs]
        counted = [r["requests"] for r in runs if r["requests"] is not None]
        requests = None
        if counted:
            operations = sorted({op for counts in counted for op in counts})
            requests = {
                op: statistics.median(counts.get(op, 0) for counts in counted) for op in operations
            }
        extras = sorted({name for r in runs for name in r.get("extra", {})})
        summaries[key] = Summary(
            runs=len(runs),
            objects=runs[0]["objects"],
            bytes=runs[0]["bytes"],
            seconds=statistics.median(seconds),
            fastest=min(seconds),
            slowest=max(seconds),
            cpu_seconds=statistics.median(r["cpu_seconds"] for r in runs),
            peak_rss_mib=max(r["peak_rss_mib"] for r in runs),
            requests=requests,
            extra={name: statistics.median(r["extra"][name] for r in runs) for name in extras},
        )
    return summaries


def counted_requests(
    summaries: Mapping[tuple[str, str, str], Summary], scenario: str, tool: str
) -> Summary | None:
    """The run with counted requests (through the delay proxies) of a scenario and tool."""
    return summaries.get((scenario, DELAY_MODE, tool))


def breakdown(requests: Mapping[str, float], per: float, scale: float = 1.0) -> str:
    """``3.00 (HEAD 1.00, GET 1.00, PUT 1.00)`` per object (times ``scale``)."""
    total = sum(requests.values()) / per * scale
    order = [op for op in OPERATION_ORDER if requests.get(op)]
    order += sorted(op for op in requests if op not in OPERATION_ORDER and requests[op])
    parts = ", ".join(
        f"{OPERATION_NAMES.get(op, op)} {_number(requests[op] / per * scale)}" for op in order
    )
    return f"{total:.3f} ({parts})" if total < 100 else f"{total:,.0f} ({parts})"


def _number(value: float) -> str:
    """Two decimals, or two significant digits for small values (0.0037)."""
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"
