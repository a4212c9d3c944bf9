"""``missing``: the keys both functions logged as missing or failed, read back from their logs.

moto's Logs Insights has no ``filter``: the queries go through botocore's Stubber, and the
rows it answers hold the log lines the functions really print.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

import functions.copier.handler as copier_handler
import functions.enumerator.handler as enumerator_handler
from mastodon_s3_sync.cli import main
from mastodon_s3_sync.contract import DATABASE_URL, object_log_message
from mastodon_s3_sync.copying.results import CopyResult
from mastodon_s3_sync.demo.s3servers import REGION
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.ops.missing import LoggedKey, logged_keys
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.transport.lambda_copier import report
from mastodon_s3_sync.transport.messages import CopyMessage
from tests.events.factory import FakeLambdaContext
from tests.support.lambda_output import CurrentStdout
from tests.support.mastodon_db import MastodonDbFactory, insert_unsafe_media
from tests.support.stack_fixture import NO_WAIT, Deployed, Functions

pytestmark = pytest.mark.integration

UNSAFE_KEY = "media_attachments/files/100/000/000/000/000/original/../../etc/passwd.png"
"""The original's key of ``insert_unsafe_media``'s attachment: the enumerator refuses it."""


def insights_rows(lines: list[dict[str, Any]], at: str) -> list[list[dict[str, str]]]:
    """GetQueryResults rows for ``fields @timestamp, key, outcome, reason`` over these lines."""
    return [
        [
            {"field": "@timestamp", "value": at},
            *({"field": name, "value": line[name]} for name in ("key", "outcome", "reason")),
            {"field": "@ptr", "value": f"ptr{index}"},
        ]
        for index, line in enumerate(lines)
    ]


@pytest.fixture
def copier_log_lines(functions: Functions) -> list[dict[str, Any]]:
    """The copier's own ``object missing`` / ``object failed`` log lines."""
    refs = [
        ObjectRef(RecordType.MEDIA_ATTACHMENTS, n, "file", "original", key)
        for n, key in enumerate(["media_attachments/files/b.png", "media_attachments/files/a.png"])
    ]
    results = [
        CopyResult(refs[0], Outcome.MISSING, reason="not at the source under any key"),
        CopyResult(refs[1], Outcome.FAILED, reason="SlowDown:\nPlease reduce\tyour rate"),
    ]
    message = CopyMessage("r", RecordType.MEDIA_ATTACHMENTS, tuple(refs))
    report(message, results, copier_handler.logger)
    lines = functions.output.logs("object missing") + functions.output.logs("object failed")
    assert len(lines) == 2
    return lines


@pytest.fixture
def enumerator_refused_line(
    functions: Functions, mastodon_db: MastodonDbFactory, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The enumerator's log line for a key it refused to send: its dry run over a database
    whose one media attachment makes an original's key with ``..`` segments."""
    db = mastodon_db()
    insert_unsafe_media(db)
    monkeypatch.setattr(enumerator_handler.logger.registered_handler, "stream", CurrentStdout())
    monkeypatch.setenv(DATABASE_URL, db.url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)  # its clients are built, if unused
    printed = len(functions.output.read())
    enumerator_handler.clients.cache_clear()
    try:
        answer = enumerator_handler.handler(
            {"type": "media_attachments", "dry_run": True}, FakeLambdaContext().as_lambda_context()
        )
    finally:
        enumerator_handler.clients.cache_clear()
    assert answer["ok"], answer
    failed = object_log_message(Outcome.FAILED)
    (line,) = [line for line in functions.output.read()[printed:] if line.get("message") == failed]
    return line


def test_missing_lists_the_keys_both_functions_logged(
    deployed: Deployed,
    copier_log_lines: list[dict[str, Any]],
    enumerator_refused_line: dict[str, Any],
) -> None:
    run_id = "20261127T061500Z-3f9a1c"
    begin, end = datetime(2026, 11, 27, 6, 15, tzinfo=UTC), datetime(2026, 11, 27, 9, tzinfo=UTC)
    missing_line, failed_line = copier_log_lines
    earlier_failure = {**missing_line, "outcome": "failed", "reason": "timeout"}
    with Stubber(deployed.clients.logs) as stub:
        stub.add_response(
            "start_query",
            {"queryId": "q1"},
            {
                "logGroupNames": [
                    deployed.stack.copier_log_group,
                    deployed.stack.enumerator_log_group,
                ],
                "startTime": 1795760100,
                "endTime": 1795770000,
                "queryString": (
                    "fields @timestamp, key, outcome, reason\n"
                    '| filter outcome in ["missing", "failed"] and run_id = "' + run_id + '"\n'
                    "| sort @timestamp asc\n"
                    "| limit 10000"
                ),
            },
        )
        stub.add_response("get_query_results", {"status": "Scheduled", "results": []})
        stub.add_response(
            "get_query_results",
            {
                "status": "Complete",
                "results": insights_rows(
                    [enumerator_refused_line, earlier_failure, missing_line, failed_line],
                    "2026-11-27 06:20:00.000",
                ),
            },
        )
        found = logged_keys(
            deployed.clients.logs,
            deployed.stack,
            begin,
            end,
            run_id=run_id,
            outcomes=(Outcome.MISSING, Outcome.FAILED),
            poll=NO_WAIT,
        )
    # one line per key, its latest outcome, sorted by key, reasons on one line
    assert found.keys == [
        LoggedKey(UNSAFE_KEY, "failed", f"refused key {UNSAFE_KEY!r}: has a . or .. path segment"),
        LoggedKey("media_attachments/files/a.png", "failed", "SlowDown: Please reduce your rate"),
        LoggedKey("media_attachments/files/b.png", "missing", "not at the source under any key"),
    ]
    assert found.complete


def test_missing_splits_a_window_that_fills_the_result_limit(
    deployed: Deployed, copier_log_lines: list[dict[str, Any]]
) -> None:
    begin = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    end = begin + timedelta(hours=2)
    line = copier_log_lines[0]
    rows = [{**line, "key": f"accounts/avatars/{n}.png"} for n in range(5)]
    log_groups = [deployed.stack.copier_log_group, deployed.stack.enumerator_log_group]
    query = {"logGroupNames": log_groups, "queryString": ANY}
    with Stubber(deployed.clients.logs) as stub:
        for (first, last), lines in (
            ((begin, end), rows[:3]),  # full: split in two
            ((begin, begin + timedelta(hours=1)), rows[:2]),
            ((begin + timedelta(hours=1), end), rows[2:5]),  # full again
            ((begin + timedelta(hours=1), begin + timedelta(minutes=90)), rows[2:4]),
            ((begin + timedelta(minutes=90), end), rows[4:]),
        ):
            window = {"startTime": int(first.timestamp()), "endTime": int(last.timestamp())}
            stub.add_response("start_query", {"queryId": "q"}, query | window)
            stub.add_response(
                "get_query_results",
                {"status": "Complete", "results": insights_rows(lines, "2026-11-27 06:30:00")},
            )
        found = logged_keys(
            deployed.clients.logs, deployed.stack, begin, end, max_rows=3, poll=NO_WAIT
        )
        stub.assert_no_pending_responses()
    assert [key.key for key in found.keys] == [f"accounts/avatars/{n}.png" for n in range(5)]
    assert (found.complete, found.queries) == (True, 5)


def test_missing_command_writes_the_keys_to_a_file(
    deployed: Deployed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # moto runs the query over the stack's empty copier log group: the wiring is what counts
    output = tmp_path / "missing.txt"
    args = deployed.cli("missing", "--since", "2h", "--output", str(output))
    assert main(args) == 0
    assert output.read_text() == ""
    assert capsys.readouterr().err.startswith("0 keys (missing) in the functions' logs, every")


def test_missing_command_refuses_an_output_it_cannot_write(
    deployed: Deployed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a directory that does not exist: refused before any query
    absent = tmp_path / "reports" / "missing.txt"
    assert main(deployed.cli("missing", "--since", "2h", "--output", str(absent))) == 2
    assert capsys.readouterr().err == (
        f"mastodon-s3-sync: error: --output {absent}: directory {str(absent.parent)!r} does "
        "not exist; create it or pass a file in an existing directory\n"
    )
    # a path that is a directory: refused when written
    assert main(deployed.cli("missing", "--since", "2h", "--output", str(tmp_path))) == 2
    assert capsys.readouterr().err.endswith(
        f"mastodon-s3-sync: error: --output {tmp_path}: cannot write it: Is a directory\n"
    )
