"""Turn the raw measurements in benchmarks/results/*.json into benchmarks/RESULTS.md.

    .venv/bin/python -m benchmarks.report

Reads copy_suite.json (``make bench``) and, when present, enumeration.json
(``make bench-enumeration``); computes medians, spread, ratios, the cost model and the
goals of issue 16, and writes one markdown page. proxy_cost.json (``benchmarks.proxy_cost``)
adds the delay proxy's own cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks import cost_model
from benchmarks.summary import (
    DELAY_MODE,
    DIRECT_MODE,
    Summary,
    breakdown,
    counted_requests,
    summarize,
)

HERE = Path(__file__).parent
RESULTS_MD = HERE / "RESULTS.md"
RESULTS = HERE / "results"
OURS = "mastodon-s3-sync run"
RCLONE = ("rclone copy --files-from", "rclone copy --files-from -M")
BOTO3 = "boto3 loop (original tool)"
SERVER_SIDE = "mastodon-s3-sync run (server-side)"
S5CMD_COPY = "s5cmd cp --metadata-directive COPY"
GET_LEG, PUT_LEG = "s5cmd download leg (GET)", "s5cmd upload leg (PUT)"
FAR_MODE = "delay-80ms"
MODE_TITLES = {
    DIRECT_MODE: "servers reached directly",
    DELAY_MODE: "30 ms added to every request",
    FAR_MODE: "80 ms added to every request (a cross-continent migration)",
}
DELAY_MODES = (DELAY_MODE, FAR_MODE)
OURS_DEFAULTS_PREFIX = "mastodon-s3-sync run (defaults"
RCLONE_DEFAULTS = "rclone copy (defaults: --transfers 4)"
MB_PER_MIB = 1.048576

Summaries = Mapping[tuple[str, str, str], Summary]


def _speedup(summary: Summary, reference: Summary | None) -> str:
    """``1.23x``: objects/s of ``summary`` over ``reference``'s; ``-`` without one."""
    if reference is None:
        return "-"
    return f"{summary.objects_per_second / reference.objects_per_second:.2f}x"


def _rate(summary: Summary) -> str:
    low, high = summary.rate_range
    return f"{summary.objects_per_second:,.0f} ({low:,.0f}-{high:,.0f})"


def _requests(summaries: Summaries, scenario: str, tool: str, scale: float = 1.0) -> str:
    counted = counted_requests(summaries, scenario, tool)
    if counted is None or counted.requests is None:
        return "-"
    return breakdown(counted.requests, counted.objects, scale)


def _tools(summaries: Summaries, scenario: str, mode: str) -> list[str]:
    return [tool for (s, m, tool) in summaries if s == scenario and m == mode]


def header(suite: Mapping[str, Any], enumeration: Mapping[str, Any] | None) -> list[str]:
    """Title, how to reproduce, machine and versions, method, dataset."""
    machine = suite["machine"]
    dataset = suite["dataset"]
    classes = ", ".join(f"{name} {count:,}" for name, count in dataset["by_class"].items())
    minutes = suite["elapsed_seconds"] / 60
    lines = [
        "# Benchmarks",
        "",
        "Reproduce on this kind of machine (2 cores, everything on loopback):",
        "",
        "```",
        "make bench               # every copy scenario and the cost model, about 30 minutes",
        "make bench-enumeration   # plan --summary over 1M and 5M rows, about 17 minutes",
        "```",
        "",
        f"Each writes its raw measurements to `benchmarks/results/*.json` and renders this "
        f"page (`benchmarks/report.py`). This page: copy suite generated {suite['generated']} "
        f"by `{suite['command']}` in {minutes:.0f} min"
        + (
            f"; enumeration generated {enumeration['generated']} by `{enumeration['command']}` "
            f"in {enumeration['elapsed_seconds'] / 60:.0f} min."
            if enumeration is not None
            else "; enumeration not run yet."
        ),
        "",
        "| machine and versions | |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in machine.items()),
        "",
        "## Method",
        "",
        "- Two `rclone serve s3` servers on 127.0.0.1 stand for two providers (file-backed, "
        "credentials checked). Every scenario runs with the servers reached directly (the "
        "two cores are the limit: the servers take most of them, so each CPU millisecond and "
        "each request a tool spends per object shows) and through a delay proxy per server "
        "(`benchmarks/delay_proxy.py`, its own process: request heads parsed, bodies moved by "
        "`splice(2)`) adding 30 ms before every request, as between two providers over the "
        "internet; the copy scenarios also with 80 ms (a cross-continent migration; `run` and "
        "rclone only). The proxies also count requests by S3 operation; tools make the same "
        "requests without them, so request figures come from the 30 ms runs. *Load* is the "
        "machine's 1-minute load average as each run started (median): other work on the "
        "machine shows there.",
        f"- Concurrency {suite['concurrency']} for every tool (`--workers`, `--transfers` and "
        "`--checkers`, threads, `--numworkers`). Each tool is a child process timed by GNU "
        "time: wall time, its own CPU (user + system) and peak RSS; the servers and the "
        "proxies are not included in a tool's CPU. "
        f"{suite['runs']} runs per tool and scenario, interleaved, the order rotated each run "
        "so machine noise and position hit all tools alike; tables give the median and, in "
        "parentheses, the range over the runs. Peak RSS is the highest of the runs.",
        "- Copies go into a fresh bucket each run; `run` uses `--acl none` (rclone serve s3 "
        "has no GetObjectAcl, and the peers copy no ACLs either). rclone gets the same key "
        "list that `run` enumerates from the database (`--files-from --no-traverse`); the "
        "boto3 loop (`benchmarks/boto3_loop.py`) is the original tool's approach: "
        "`get_object`, `read()`, `put_object` in 16 threads.",
        "",
        "## Dataset",
        "",
        f"{dataset['objects']:,} objects, {dataset['bytes'] / 1e9:.2f} GB, a deterministic "
        f"Mastodon-like mix by count ({classes}; `benchmarks/dataset.py`): previews 10-60 KB, "
        "avatars/headers/emoji 5-300 KB, image originals 0.2-3 MB, preview cards 10-200 KB, "
        "videos 5-40 MB, sizes log-uniform within each range, with Mastodon's Content-Type and "
        "Cache-Control. The rows are real Mastodon rows in PostgreSQL 15 (`accounts`, "
        "`media_attachments`, `custom_emojis`, `preview_cards`), loaded with COPY; the keys "
        "come from the product's layout rules.",
    ]
    return lines


def copy_section(summaries: Summaries) -> list[str]:
    """Cross-endpoint copy, one table per mode."""
    lines = ["", "## Cross-endpoint copy", ""]
    for mode, title in MODE_TITLES.items():
        tools = _tools(summaries, "copy", mode)
        if not tools:
            continue
        rclone_rates = [
            summaries[("copy", mode, t)].objects_per_second for t in RCLONE if t in tools
        ]
        machine = all("machine_cpu_seconds" in summaries[("copy", mode, t)].extra for t in tools)
        lines += [
            f"### {title}",
            "",
            "| tool | objects/s (slowest-fastest) | MB/s | vs best rclone | CPU s per 1,000 "
            "objects | "
            + ("all processes' CPU s per 1,000 objects | cores busy | " if machine else "")
            + "proxies' CPU s per 1,000 objects | load | peak RSS MiB | requests per object |",
            "| --- | ---: | ---: | ---: | ---: | "
            + ("---: | ---: | " if machine else "")
            + "---: | ---: | ---: | --- |",
        ]
        for tool in tools:
            summary = summaries[("copy", mode, tool)]
            ratio = (
                f"{summary.objects_per_second / max(rclone_rates):.2f}x" if rclone_rates else "-"
            )
            busy = summary.extra.get("machine_cpu_seconds", 0)
            everything = f"{busy / summary.objects * 1000:.2f} | {busy / summary.seconds:.2f} | "
            lines.append(
                f"| {tool} | {_rate(summary)} | {summary.megabytes_per_second:,.0f} | {ratio} | "
                f"{summary.cpu_per_thousand:.2f} | "
                + (everything if machine else "")
                + f"{_proxy_cpu(summary)} | {summary.extra.get('load_average', 0):.1f} | "
                f"{summary.peak_rss_mib:.0f} | {_requests(summaries, 'copy', tool)} |"
            )
        lines.append("")
    if any("machine_cpu_seconds" in summary.extra for summary in summaries.values()):
        lines += [
            "*All processes' CPU* is the whole machine's busy time during the run (the tool, "
            "both servers, the delay proxies and anything else running): what one object "
            "costs the two cores, requests the servers answer included. *Cores busy* is that "
            "time over the run's wall time (median runs): below 2, the run left CPU unused.",
            "",
        ]
    return lines


def _proxy_cpu(summary: Summary) -> str:
    proxies = summary.extra.get("proxy_cpu_seconds")
    return "-" if proxies is None else f"{proxies / summary.objects * 1000:.2f}"


def defaults_section(summaries: Summaries) -> list[str]:
    """Each tool as it comes, over the delay proxies."""
    lines = [
        "## Defaults against defaults",
        "",
        "Each tool as a user runs it first: `run` with its default workers, `rclone copy` with "
        "its defaults (4 transfers, 8 checkers), and rclone as Mastodon migration guides set "
        "it (32 transfers and checkers); a mix a third the size of the main one.",
        "",
        "| tool | mode | objects/s (slowest-fastest) | vs rclone defaults | CPU s per 1,000 "
        "objects | load | peak RSS MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode in DELAY_MODES:
        reference = summaries.get(("defaults", mode, RCLONE_DEFAULTS))
        for tool in _tools(summaries, "defaults", mode):
            summary = summaries[("defaults", mode, tool)]
            ratio = _speedup(summary, reference)
            lines.append(
                f"| {tool} | {mode} | {_rate(summary)} | {ratio} | "
                f"{summary.cpu_per_thousand:.2f} | {summary.extra.get('load_average', 0):.1f} | "
                f"{summary.peak_rss_mib:.0f} |"
            )
    return [*lines, ""]


def proxy_section(proxies: Mapping[str, Any] | None) -> list[str]:
    """What a delay proxy costs (benchmarks/proxy_cost.py)."""
    if proxies is None:
        return []
    lines = [
        "## The delay proxy's cost",
        "",
        f"`benchmarks/proxy_cost.py`: {proxies['threads']} threads GET 1 KiB objects "
        f"({proxies['small_requests']:,} requests: the cost per request) and 1 MiB objects "
        f"({proxies['large_requests']:,}: the cost per MB beyond it) through each proxy from "
        "one `rclone serve s3`.",
        "",
        "| proxy | CPU ms per request | CPU ms per MB |",
        "| --- | ---: | ---: |",
    ]
    for name, figures in proxies["proxies"].items():
        lines.append(
            f"| {name} | {figures['cpu_ms_per_request']:.3f} | {figures['cpu_ms_per_mb']:.3f} |"
        )
    return [*lines, ""]


def rerun_section(summaries: Summaries) -> list[str]:
    """Everything already at the destination."""
    lines = [
        "## Re-run of a completed migration",
        "",
        "The same command again over the full destination bucket of the first copy run.",
        "",
        "| tool | mode | seconds per 1,000 objects (fastest-slowest) | CPU s per 1,000 objects "
        "| requests per 1,000 objects |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for mode in MODE_TITLES:
        for tool in _tools(summaries, "re-run", mode):
            summary = summaries[("re-run", mode, tool)]
            per = 1000 / summary.objects
            lines.append(
                f"| {tool} | {mode} | {summary.seconds * per:.2f} "
                f"({summary.fastest * per:.2f}-{summary.slowest * per:.2f}) | "
                f"{summary.cpu_per_thousand:.2f} | "
                f"{_requests(summaries, 're-run', tool, 1000)} |"
            )
    return [*lines, ""]


def same_endpoint_section(summaries: Summaries) -> list[str]:
    """Both buckets on one server: server-side copies."""
    lines = [
        "## Same endpoint (server-side copy)",
        "",
        "Both buckets on one server with the same credentials: `run` decides on CopyObject "
        "(`s3.same_endpoint_and_credentials`), s5cmd is given one `cp --metadata-directive "
        "COPY` per key (`s5cmd run`).",
        "",
        "| tool | mode | objects/s (slowest-fastest) | vs s5cmd | CPU s per 1,000 objects | "
        "peak RSS MiB | requests per object |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for mode in MODE_TITLES:
        reference = summaries.get(("same-endpoint", mode, S5CMD_COPY))
        for tool in _tools(summaries, "same-endpoint", mode):
            summary = summaries[("same-endpoint", mode, tool)]
            ratio = _speedup(summary, reference)
            lines.append(
                f"| {tool} | {mode} | {_rate(summary)} | {ratio} | "
                f"{summary.cpu_per_thousand:.2f} | {summary.peak_rss_mib:.0f} | "
                f"{_requests(summaries, 'same-endpoint', tool)} |"
            )
    return [*lines, ""]


def server_limit_section(summaries: Summaries) -> list[str]:
    """s5cmd's legs alone, and each copier as a fraction of them."""
    lines = [
        "## The servers' limit",
        "",
        "The same GETs and PUTs without copier logic: s5cmd downloads every object to tmpfs "
        "(GET leg), then uploads them to a fresh bucket (PUT leg), each leg alone. A copy "
        "cannot beat its slower leg; on two shared cores, where both servers compete for "
        "the same CPU, it may get no more than the legs back to back, 1 / (1/GET + 1/PUT). "
        "The last columns give each copier's objects/s as a share of the slower leg.",
        "",
        "| mode | GET leg objects/s (MB/s) | PUT leg objects/s (MB/s) | legs back to back "
        "objects/s | run | best rclone | boto3 loop |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode in MODE_TITLES:
        get, put = (summaries.get(("server-limit", mode, leg)) for leg in (GET_LEG, PUT_LEG))
        if get is None or put is None:
            continue
        bound = min(get.objects_per_second, put.objects_per_second)
        back_to_back = 1 / (1 / get.objects_per_second + 1 / put.objects_per_second)

        def share(tools: tuple[str, ...], mode: str = mode, bound: float = bound) -> str:
            rates = [
                summaries[("copy", mode, t)].objects_per_second
                for t in tools
                if ("copy", mode, t) in summaries
            ]
            return f"{max(rates) / bound:.0%}" if rates else "-"

        lines.append(
            f"| {mode} | {get.objects_per_second:,.0f} ({get.megabytes_per_second:,.0f}) | "
            f"{put.objects_per_second:,.0f} ({put.megabytes_per_second:,.0f}) | "
            f"{back_to_back:,.0f} | "
            f"{share((OURS,))} | {share(RCLONE)} | {share((BOTO3,))} |"
        )
    lines += [
        "",
        f"Requests per object: GET leg {_requests(summaries, 'server-limit', GET_LEG)}, "
        f"PUT leg {_requests(summaries, 'server-limit', PUT_LEG)}.",
        "",
    ]
    return lines


def large_object_section(summaries: Summaries) -> list[str]:
    """One 1 GiB object: memory."""
    tools = _tools(summaries, "large-object", DIRECT_MODE)
    if not tools:
        return []
    size = summaries[("large-object", DIRECT_MODE, tools[0])].bytes
    lines = [
        f"## One {size / 1024**2:,.0f} MiB object",
        "",
        "Direct, one run each: how much memory each tool needs for one large object.",
        "",
        "| tool | seconds | CPU s | peak RSS MiB (MB) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for tool in tools:
        summary = summaries[("large-object", DIRECT_MODE, tool)]
        lines.append(
            f"| {tool} | {summary.seconds:.1f} | {summary.cpu_seconds:.1f} | "
            f"{summary.peak_rss_mib:.0f} ({summary.peak_rss_mib * MB_PER_MIB:.0f}) |"
        )
    return [*lines, ""]


def enumeration_section(enumeration: Mapping[str, Any] | None) -> list[str]:
    """plan --summary over large tables."""
    lines = ["## Enumeration: `plan --summary` over media_attachments", ""]
    if enumeration is None:
        return [*lines, "Not run yet: `make bench-enumeration`.", ""]
    lines += [
        f"Realistic generated rows (`sandbox.seed`), page size {enumeration['page_size']}, "
        f"PostgreSQL on the same machine; {len(enumeration['results'][0]['runs'])} runs each.",
        "",
        "| rows | objects | seconds (fastest-slowest) | rows/s | objects/s | CPU s | "
        "peak RSS MiB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in enumeration["results"]:
        runs = result["runs"]
        seconds = [run["seconds"] for run in runs]
        median = statistics.median(seconds)
        objects = runs[0]["objects"]
        lines.append(
            f"| {result['rows']:,} | {objects:,} | {median:.1f} ({min(seconds):.1f}-"
            f"{max(seconds):.1f}) | {result['rows'] / median:,.0f} | {objects / median:,.0f} | "
            f"{statistics.median(run['cpu_seconds'] for run in runs):.1f} | "
            f"{max(run['peak_rss_mib'] for run in runs):.1f} |"
        )
    return [*lines, ""]


def lambda_section(summaries: Summaries, suite: Mapping[str, Any]) -> list[str]:
    """The copier handler as Lambda would run it."""
    lines = [
        "## Copier Lambda handler",
        "",
        "`functions/copier/handler.py` called as one warm Lambda instance would be "
        "(`benchmarks/lambda_copier.py`): one SQS message per invocation (the stack's batch "
        f"size), {suite['default_workers']} threads (the default), credentials from Secrets "
        "Manager on moto_server. Wall and CPU "
        "time cover the invocations only (not the imports and client set-up of the cold "
        "start).",
        "",
        "| dataset | mode | messages | handler wall ms per object | handler CPU ms per "
        "object | peak RSS MiB | requests per object |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for mode in MODE_TITLES:
        for label in _tools(summaries, "lambda-copier", mode):
            summary = summaries[("lambda-copier", mode, label)]
            per = 1000 / summary.objects
            lines.append(
                f"| {label} | {mode} | {summary.extra['invocations']:.0f} | "
                f"{summary.extra['handler_seconds'] * per:.2f} | "
                f"{summary.extra['handler_cpu_seconds'] * per:.2f} | "
                f"{summary.peak_rss_mib:.0f} | {_requests(summaries, 'lambda-copier', label)} |"
            )
    small = suite["small_dataset"]
    lines += [
        "",
        f"The 10 KiB dataset is {small['objects']:,} preview cards of exactly 10 KiB "
        "(the small-object extreme, as in Data Transfer Hub's cost example).",
        "",
    ]
    return lines


def targets_section(summaries: Summaries) -> list[str]:
    """Issue 16's goals, measured."""

    def rate(scenario: str, mode: str, tools: tuple[str, ...]) -> float | None:
        found = [summaries[(scenario, mode, t)] for t in tools if (scenario, mode, t) in summaries]
        return max(s.objects_per_second for s in found) if found else None

    def cpu(tools: tuple[str, ...]) -> float | None:
        found = [
            summaries[("copy", DIRECT_MODE, t)]
            for t in tools
            if ("copy", DIRECT_MODE, t) in summaries
        ]
        return min(s.cpu_per_thousand for s in found) if found else None

    rows: list[tuple[str, str, bool | None]] = []
    for mode, needed in ((DIRECT_MODE, 1.0), (DELAY_MODE, 1.5), (FAR_MODE, 1.5)):
        ours, rclone = rate("copy", mode, (OURS,)), rate("copy", mode, RCLONE)
        if ours is not None and rclone is not None:
            rows.append(
                (
                    f"{mode}: objects/s at least {needed}x the best rclone copy, equal concurrency",
                    f"{ours:,.0f} vs {rclone:,.0f}: {ours / rclone:.2f}x",
                    ours / rclone >= needed,
                )
            )
    ours_cpu, rclone_cpu = cpu((OURS,)), cpu(RCLONE)
    if ours_cpu is not None and rclone_cpu is not None:
        rows.append(
            (
                "CPU per object below rclone's (direct)",
                f"{ours_cpu:.2f} vs {rclone_cpu:.2f} s per 1,000 objects",
                ours_cpu < rclone_cpu,
            )
        )
    for mode in DELAY_MODES:
        tools = _tools(summaries, "defaults", mode)
        ours_default = next((t for t in tools if t.startswith(OURS_DEFAULTS_PREFIX)), None)
        theirs = rate("defaults", mode, (RCLONE_DEFAULTS,))
        mine = rate("defaults", mode, (ours_default,)) if ours_default else None
        if mine is not None and theirs is not None:
            rows.append(
                (
                    f"{mode}: defaults against rclone's defaults at least 3x",
                    f"{mine:,.0f} vs {theirs:,.0f}: {mine / theirs:.2f}x",
                    mine / theirs >= 3.0,
                )
            )
    fresh = counted_requests(summaries, "copy", OURS)
    if fresh is not None and (per_object := fresh.requests_per_object()) is not None:
        rows.append(
            ("a fresh copy: at most 3 requests per object", f"{per_object:.4f}", per_object <= 3)
        )
    rerun = counted_requests(summaries, "re-run", OURS)
    if rerun is not None and (per_object := rerun.requests_per_object()) is not None:
        fixed = rerun.extra.get("preflight_requests", 0.0)
        beyond = per_object - fixed / rerun.objects
        rows.append(
            (
                "a re-run of a complete migration: at most 0.005 requests per object "
                "(the preflight's fixed requests apart)",
                f"{beyond:.4f} ({per_object:.4f} with the preflight's {fixed:.0f} requests, "
                f"{rerun.objects:,} objects)",
                beyond <= 0.005,
            )
        )
    large = summaries.get(("large-object", DIRECT_MODE, OURS))
    if large is not None:
        megabytes = large.peak_rss_mib * MB_PER_MIB
        rows.append(
            (
                "peak RSS for the 1 GiB object at most 150 MB",
                f"{megabytes:.0f} MB",
                megabytes <= 150,
            )
        )
    lines = [
        "## Issue 16 goals",
        "",
        "| goal | measured | met |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {what} | {measured} | {'yes' if met else '**no**'} |" for what, measured, met in rows
    ]
    return [*lines, ""]


def render(
    suite: Mapping[str, Any],
    enumeration: Mapping[str, Any] | None,
    proxies: Mapping[str, Any] | None = None,
) -> str:
    """The whole page."""
    summaries = summarize(suite["records"])
    lines = header(suite, enumeration)
    lines += ["", *targets_section(summaries)]
    lines += copy_section(summaries)
    lines += defaults_section(summaries)
    lines += rerun_section(summaries)
    lines += same_endpoint_section(summaries)
    lines += server_limit_section(summaries)
    lines += large_object_section(summaries)
    lines += enumeration_section(enumeration)
    lines += lambda_section(summaries, suite)
    lines += proxy_section(proxies)
    lines += ["## Cost model of the serverless mode", "", *cost_model.section(suite, enumeration)]
    return "\n".join(lines).rstrip() + "\n"


def load(path: Path) -> dict[str, Any] | None:
    """A results document, or None when that benchmark has not run."""
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=RESULTS / "copy_suite.json")
    parser.add_argument("--enumeration", type=Path, default=RESULTS / "enumeration.json")
    parser.add_argument("--proxies", type=Path, default=RESULTS / "proxy_cost.json")
    parser.add_argument("--output", type=Path, default=RESULTS_MD)
    args = parser.parse_args()
    suite = load(args.suite)
    if suite is None:
        raise SystemExit(f"{args.suite} is missing: run make bench")
    args.output.write_text(render(suite, load(args.enumeration), load(args.proxies)))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
