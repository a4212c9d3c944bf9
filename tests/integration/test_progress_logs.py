"""What the admin sees during a run off a terminal, and what the event log keeps.

Plain progress lines (``--progress-every``) carry an overall total that never goes down,
from the database's estimate to the exact count; ``--log-format json`` writes one JSON
object per line: the preflight, the estimate, each type, each object at ``-v``, the totals.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from tests.support.migration import Migration
from tests.support.processes import run_cli

pytestmark = pytest.mark.integration

OVERALL = re.compile(r"^all: ([\d,]+)/([\d,]+) objects \((counted|estimated)\)")


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_progress_totals_never_decrease_and_json_logs_parse(
    migration: Migration,
    tmp_path: Path,
) -> None:
    # given
    log = tmp_path / "run.jsonl"
    # when run off a terminal, a progress line every 20 ms, every event logged in JSON
    done = run_cli(
        "run",
        "--config",
        str(migration.config(tmp_path)),
        "--workers",
        "2",
        "--progress-every",
        "0.02",
        "-v",
        "--log-file",
        str(log),
        "--log-format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    # then the overall lines: several, done and total never down, the last one exact
    overall = [OVERALL.match(line) for line in done.stderr.splitlines()]
    figures = [(number(m[1]), number(m[2]), m[3]) for m in overall if m]
    assert len(figures) >= 3, done.stderr
    for (done_before, total_before, _), (done_after, total_after, _) in itertools.pairwise(figures):
        assert total_after >= total_before, figures
        assert done_after >= done_before, figures
    objects = len(migration.refs)
    assert figures[-1] == (objects, objects, "counted"), figures[-1]
    assert all(done <= total for done, total, _ in figures)
    # and the log parses line by line, with an event per object and the totals
    events = [json.loads(line) for line in log.read_text().splitlines()]
    names = [entry["event"] for entry in events]
    assert events[0] == {**events[0], "event": "phase", "phase": "preflight"}
    assert names.index("preflight") < names.index("estimate")
    assert names[-1] == "totals"
    assert {"estimate", "type_started", "progress"} <= set(names)
    assert names.count("object") == objects
    totals = events[-1]
    assert totals["copied"] + totals["missing"] == objects
    assert totals["failed"] == 0
    assert all("time" in entry and "level" in entry for entry in events)


def test_quiet_prints_no_progress(
    small_migration: Migration,
    tmp_path: Path,
) -> None:
    done = run_cli(
        "run", "--config", str(small_migration.config(tmp_path)), "-q", "--progress-every", "0.02"
    )
    assert done.returncode == 0, done.stderr
    assert not any(OVERALL.match(line) for line in done.stderr.splitlines())
    assert not any(line.startswith("preflight (") for line in done.stderr.splitlines())
    assert "copied" in done.stderr  # the closing table stays


def indices(lines: list[str], *starts: str) -> list[int]:
    """Where the first line with each start is, in the order given."""
    return [next(i for i, line in enumerate(lines) if line.startswith(s)) for s in starts]


def test_a_status_line_for_each_slow_phase_in_order(
    small_migration: Migration,
    tmp_path: Path,
) -> None:
    # given
    config, log = str(small_migration.config(tmp_path)), tmp_path / "events.jsonl"
    logs = ("--log-file", str(log), "--log-format", "json")
    # when run, then verify, off a terminal
    ran = run_cli("run", "--config", config, *logs)
    verified = run_cli("verify", "--config", config, *logs)
    # then each says what it is waiting for before it waits, in order
    assert ran.returncode == 0, ran.stderr
    run_lines = ran.stderr.splitlines()
    at = indices(
        run_lines,
        "preflight: checking",
        "connecting to the database…",
        "preflight (",
        "listing the source and the destination…",
        "all: ",
    )
    assert at == sorted(at), run_lines
    assert verified.returncode == 0, verified.stderr
    verify_lines = verified.stderr.splitlines()
    at = indices(
        verify_lines,
        "preflight: checking",
        "connecting to the database…",
        "preflight (",
        "listing the source and the destination…",
        "accounts: ",
        "comparing headers and ACL of",
        "verify: OK",
    )
    assert at == sorted(at), verify_lines
    # and the log has the same phases as events, in the same order, for each command
    phases = [e["phase"] for e in map(json.loads, log.read_text().splitlines()) if "phase" in e]
    command = ["preflight", "connecting", "listing"]
    assert phases == [*command, *command, "sampling"], phases


def test_quiet_verify_prints_only_its_closing_summary(
    small_migration: Migration,
    tmp_path: Path,
) -> None:
    # given a finished copy
    config = str(small_migration.config(tmp_path))
    assert run_cli("run", "--config", config, "-q").returncode == 0
    # when
    done = run_cli("verify", "--config", config, "-q")
    # then no phase, preflight or per-type line: the closing summary, its verdict last
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("objects referenced:"), lines
    assert lines[-1] == "verify: OK", lines
    chatter = ("preflight", "connecting", "listing", "comparing", "accounts: ")
    assert not [line for line in lines if line.startswith(chatter)], lines
