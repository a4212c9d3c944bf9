"""``start``: one enumerator invocation per type, with the payloads the enumerator accepts.

moto's Lambda keeps no payload, so the exact payloads go through botocore's Stubber; the
command itself runs against moto's Lambda configured to run no code.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from mastodon_s3_sync.cli import main
from mastodon_s3_sync.demo.s3servers import REGION
from mastodon_s3_sync.errors import SettingsError, SyncError
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.ops.runs import run_start
from mastodon_s3_sync.ops.start import start_run
from mastodon_s3_sync.transport.enumeration import EnumerationResult, TypeCount
from mastodon_s3_sync.transport.lambda_edge import enumerator_response, parse_enumerator_event
from tests.support.stack_fixture import Deployed, moto_api, streaming

pytestmark = pytest.mark.integration


def test_start_invokes_the_enumerator_once_per_type(deployed: Deployed) -> None:
    # given the enumerator's Invoke stubbed, and the payloads captured as sent
    lambda_ = deployed.clients.lambda_
    sent: list[dict[str, Any]] = []
    lambda_.meta.events.register(
        "provide-client-params.lambda.Invoke",
        lambda params, **_: sent.append(json.loads(params["Payload"])),
    )
    now = datetime(2026, 11, 27, 6, 15, 42, tzinfo=UTC)
    with Stubber(lambda_) as stub:
        for _ in RecordType:
            stub.add_response(
                "invoke",
                {"StatusCode": 202, "Payload": streaming(b"")},
                {
                    "FunctionName": deployed.stack.enumerator_function,
                    "InvocationType": "Event",
                    "Payload": ANY,
                },
            )
        # when
        started = start_run(lambda_, deployed.stack, ["all"], now, since="36h")
        stub.assert_no_pending_responses()

    # then one asynchronous invocation per type, one run id, the same absolute since
    assert started.run_id.startswith("20261127T061542Z-")
    assert sent == [
        {
            "type": [str(record_type)],
            "run_id": started.run_id,
            "skip_remote_cache": False,
            "dry_run": False,
            "async": True,  # a failure raises: retried, then kept for start --resume
            "since": "2026-11-25T18:15:42+00:00",
        }
        for record_type in RecordType
    ]
    assert list(started.events) == sent
    # and the enumerator accepts each, at any later time, selecting from the same moment
    later = now + timedelta(hours=2)
    for payload, record_type in zip(sent, RecordType, strict=True):
        request = parse_enumerator_event(payload, later)
        assert request.cursor.types == (record_type,)
        assert request.filter.since == datetime(2026, 11, 25, 18, 15, 42)
        assert request.run_id == started.run_id


def test_start_checks_the_event_before_invoking(deployed: Deployed) -> None:
    lambda_, stack = deployed.clients.lambda_, deployed.stack
    with Stubber(lambda_):  # any call would fail: no response is queued
        with pytest.raises(SettingsError, match="start: unknown type 'statuses'"):
            start_run(lambda_, stack, ["accounts", "statuses"], datetime.now(UTC))
        with pytest.raises(SettingsError, match="start: since: 'yesterday' is neither"):
            start_run(lambda_, stack, ["all"], datetime.now(UTC), since="yesterday")


def test_a_dry_run_waits_for_the_counts(deployed: Deployed) -> None:
    counted = EnumerationResult(
        "20261127T061542Z-c0ffee", {RecordType.CUSTOM_EMOJIS: TypeCount(3, 6, 1, 1234)}
    )
    answer = enumerator_response(counted, dry_run=True, continued=False)
    lambda_, stack = deployed.clients.lambda_, deployed.stack
    with Stubber(lambda_) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 200, "Payload": streaming(json.dumps(answer).encode())},
            {
                "FunctionName": deployed.stack.enumerator_function,
                "InvocationType": "RequestResponse",
                "Payload": ANY,
            },
        )
        started = start_run(lambda_, stack, ["custom_emojis"], datetime.now(UTC), dry_run=True)
        crash = {"errorMessage": "out of memory", "errorType": "Runtime.ExitError"}
        stub.add_response(
            "invoke",
            {
                "StatusCode": 200,
                "FunctionError": "Unhandled",
                "Payload": streaming(json.dumps(crash).encode()),
            },
        )
        with pytest.raises(SyncError, match="enumerator failed for accounts: out of memory"):
            start_run(lambda_, stack, ["accounts"], datetime.now(UTC), dry_run=True)
    assert started.events[0]["dry_run"] is True
    assert started.events[0]["async"] is False  # it waits for the answer
    assert started.dry_run_answers == (answer,)


def test_start_command_prints_the_run_and_how_to_follow_it(
    deployed_with_function: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed = deployed_with_function
    assert main(deployed.cli("start", "all", "--since", "2026-11-01T01:00:00+01:00")) == 0
    lines = capsys.readouterr().out.splitlines()
    every_type = ", ".join(RecordType)
    match = re.fullmatch(
        rf"run (\S+) started: enumerating {every_type}, changed since 2026-11-01T00:00:00\+00:00",
        lines[0],
    )
    assert match is not None, lines[0]
    run_start(match.group(1))
    assert lines[1:] == [
        f"follow it: mastodon-s3-sync status --run-id {match.group(1)} --stack "
        f"{deployed.stack.stack_name} --watch",
        f"dashboard: {deployed.stack.dashboard_url}",
    ]


def test_start_command_dry_run_prints_the_counts(
    deployed_with_function: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    # given the enumerator's answer to a dry run, queued in moto's Lambda
    counted = EnumerationResult("r", {RecordType.CUSTOM_EMOJIS: TypeCount(1_234, 2_468, 25, 0)})
    answer = enumerator_response(counted, dry_run=True, continued=False)
    moto_api(
        deployed_with_function.server,
        "/moto-api/static/lambda-simple/response",
        {"results": [json.dumps(answer)], "region": REGION},
    )
    assert main(deployed_with_function.cli("start", "custom_emojis", "--dry-run")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"dry run \S+ \(custom_emojis\): nothing sent", lines[0]), lines[0]
    assert lines[1:] == ["  custom_emojis: 1,234 rows, 2,468 objects"]
