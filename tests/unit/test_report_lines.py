"""The closing lines say what is true: counts in the right number, the report only if asked."""

from __future__ import annotations

import contextlib

from mastodon_s3_sync.cli.report import OutcomeLog, format_totals, plural
from mastodon_s3_sync.copying.results import CopyResult
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.outcomes import Outcome, RunTotals


def test_plural() -> None:
    assert plural(1, "problem") == "1 problem"
    assert plural(2, "problem") == "2 problems"
    assert plural(1200, "problem") == "1,200 problems"


def test_missing_keys_point_at_the_report_only_when_there_is_one() -> None:
    ref = ObjectRef(RecordType.ACCOUNTS, 1, "avatar", "original", "accounts/avatars/a.png")
    result = CopyResult(ref, Outcome.MISSING, reason="at the source under no key")
    totals = RunTotals()
    totals.add(RecordType.ACCOUNTS, result)
    with contextlib.closing(OutcomeLog()) as log:
        log.record(result)
        with_report = format_totals(totals, log, 1.0, reported=True)
        without = format_totals(totals, log, 1.0, reported=False)
    assert "missing (1; all of them in --report):" in with_report
    assert "missing (1; --report FILE lists them all):" in without
