"""start / status / redrive / missing against a stack "deployed" in moto_server.

moto implements CloudFormation (the stack and its outputs, from a template with the same
outputs as infra/stack.py), SQS queues and CloudWatch GetMetricData, so those are real.
Its Lambda runs functions in Docker, or, configured without, answers invoke without
recording the payload: the CLI's ``start`` runs against that, and the exact payloads are
checked with botocore's Stubber. SQS message move tasks and Logs Insights queries (moto
has none, or no ``filter``) go through the Stubber too, with responses shaped as the AWS
API reference shows them. The metrics and log lines the
stubs and moto serve are the ones the handlers really print (EMF and Powertools JSON).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from aws_lambda_powertools.metrics import MetricUnit
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

import functions.copier.handler as copier_handler
import functions.enumerator.handler as enumerator_handler
from mastodon_s3_sync.cli import main
from mastodon_s3_sync.contract import METRICS_NAMESPACE, RUN_STARTED_MESSAGE
from mastodon_s3_sync.copying.results import CopyResult
from mastodon_s3_sync.demo.s3servers import LOOPBACK_HOST, REGION, MotoS3Server
from mastodon_s3_sync.errors import SettingsError, SyncError
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.ops.operations import (
    LATEST_RUN_QUERY,
    MOVE_TASK_LISTINGS,
    AwsClients,
    LoggedKey,
    MoveTask,
    Operations,
    RedriveRefused,
    StackOutputs,
    StatusSnapshot,
    TypeCounts,
    find_stack,
    make_clients,
    run_start,
)
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.transport import lambda_metrics
from mastodon_s3_sync.transport.enumeration import EnumerationResult, TypeCount, refusal
from mastodon_s3_sync.transport.lambda_edge import enumerator_response, parse_enumerator_event
from mastodon_s3_sync.transport.messages import CopyMessage
from tests.integration.test_copier_handler import CurrentStdout, Output

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

pytestmark = pytest.mark.integration

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
OUTPUT_NAMES = (
    "EnumeratorFunctionName",
    "CopierFunctionName",
    "EnumeratorLogGroupName",
    "CopierLogGroupName",
    "CopyQueueUrl",
    "CopyQueueArn",
    "DeadLetterQueueUrl",
    "DeadLetterQueueArn",
    "DashboardUrl",
)


def template(outputs: tuple[str, ...] = OUTPUT_NAMES) -> str:
    """The resources behind infra/stack.py's outputs that moto can create, and the outputs."""
    values: dict[str, Any] = {
        "EnumeratorFunctionName": "MastodonS3Sync-Enumerator-1A2B3C",
        "CopierFunctionName": "MastodonS3Sync-Copier-4D5E6F",
        "EnumeratorLogGroupName": {"Ref": "EnumeratorLogs"},
        "CopierLogGroupName": {"Ref": "CopierLogs"},
        "CopyQueueUrl": {"Ref": "CopyQueue"},
        "CopyQueueArn": {"Fn::GetAtt": ["CopyQueue", "Arn"]},
        "DeadLetterQueueUrl": {"Ref": "DeadLetterQueue"},
        "DeadLetterQueueArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "DashboardUrl": "https://us-east-1.console.aws.amazon.com/cloudwatch/home?"
        "region=us-east-1#dashboards:name=Dashboard-1",
    }
    return json.dumps(
        {
            "Resources": {
                "DeadLetterQueue": {"Type": "AWS::SQS::Queue"},
                "CopyQueue": {
                    "Type": "AWS::SQS::Queue",
                    "Properties": {
                        "RedrivePolicy": {
                            "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
                            "maxReceiveCount": 5,
                        }
                    },
                },
                "EnumeratorLogs": {"Type": "AWS::Logs::LogGroup"},
                "CopierLogs": {"Type": "AWS::Logs::LogGroup"},
            },
            "Outputs": {name: {"Value": values[name]} for name in outputs},
        }
    )


@dataclass(frozen=True)
class Deployed:
    """A stack in moto, clients for it, and its outputs as the operations read them."""

    server: MotoS3Server
    clients: AwsClients
    stack: StackOutputs

    def operations(self) -> Operations:
        return Operations(self.clients, self.stack, poll_seconds=0)

    def cli(self, *args: str) -> list[str]:
        return [
            *args,
            "--stack",
            self.stack.stack_name,
            "--region",
            REGION,
            "--aws-endpoint-url",
            self.server.endpoint_url,
        ]


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    """Keys for the emulator, for the whole module (the clients are built once)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def clients(moto_servers: tuple[MotoS3Server, MotoS3Server], aws_env: None) -> AwsClients:
    return make_clients(REGION, None, moto_servers[0].endpoint_url)


@contextlib.contextmanager
def deploy(server: MotoS3Server, clients: AwsClients) -> Iterator[Deployed]:
    """A fresh stack: fresh queues and log groups."""
    name = f"Ops-{uuid.uuid4().hex[:10]}"
    clients.cloudformation.create_stack(StackName=name, TemplateBody=template())
    yield Deployed(server, clients, find_stack(clients.cloudformation, name))
    clients.cloudformation.delete_stack(StackName=name)


@pytest.fixture
def deployed(
    moto_servers: tuple[MotoS3Server, MotoS3Server], clients: AwsClients
) -> Iterator[Deployed]:
    with deploy(moto_servers[0], clients) as stack:
        yield stack


def moto_api(server: MotoS3Server, path: str, body: object) -> None:
    """POST to moto_server's own API (its configuration, canned answers)."""
    connection = http.client.HTTPConnection(LOOPBACK_HOST, server.port, timeout=10)
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        assert connection.getresponse().status < 300
    finally:
        connection.close()


@pytest.fixture(scope="module")
def docker_free_server(aws_env: None) -> Iterator[tuple[MotoS3Server, AwsClients]]:
    """A moto_server of its own whose Lambda runs no code (no Docker): invoke just answers."""
    with MotoS3Server() as server:
        moto_api(server, "/moto-api/config", {"lambda": {"use_docker": False}})
        yield server, make_clients(REGION, None, server.endpoint_url)


@pytest.fixture
def deployed_with_function(
    docker_free_server: tuple[MotoS3Server, AwsClients],
) -> Iterator[Deployed]:
    """A stack whose enumerator function exists (in moto's Lambda)."""
    server, clients = docker_free_server
    with deploy(server, clients) as stack:
        session = boto3.session.Session(region_name=REGION)
        iam = session.client("iam", endpoint_url=server.endpoint_url)
        role = iam.create_role(
            RoleName=f"{stack.stack.stack_name}-enumerator",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
        clients.lambda_.create_function(
            FunctionName=stack.stack.enumerator_function,
            Runtime="python3.12",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": code.getvalue()},
        )
        yield stack
        clients.lambda_.delete_function(FunctionName=stack.stack.enumerator_function)


def streaming(payload: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(payload), len(payload))


# -- the stack -----------------------------------------------------------------------


def test_the_stack_is_found_by_its_outputs(deployed: Deployed) -> None:
    stack = deployed.stack
    assert stack.enumerator_function == "MastodonS3Sync-Enumerator-1A2B3C"
    assert stack.stack_name.startswith("Ops-")
    assert stack.copier_log_group.startswith(f"{stack.stack_name}-CopierLogs")
    assert stack.dead_letter_queue_arn.endswith(stack.dead_letter_queue_url.rsplit("/", 1)[1])
    # the queue URL reaches the stack's queue
    sqs = deployed.clients.sqs
    sqs.send_message(QueueUrl=stack.copy_queue_url, MessageBody="{}")
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.copy_queue_url, AttributeNames=["ApproximateNumberOfMessages", "QueueArn"]
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "1", "QueueArn": stack.copy_queue_arn}


def test_a_missing_stack_or_output_names_the_stack_flag(deployed: Deployed) -> None:
    cloudformation = deployed.clients.cloudformation
    with pytest.raises(SettingsError, match=r"^--stack NoSuchStack: Stack with id NoSuchStack"):
        find_stack(cloudformation, "NoSuchStack")
    name = f"Ops-{uuid.uuid4().hex[:10]}"
    cloudformation.create_stack(StackName=name, TemplateBody=template(OUTPUT_NAMES[:4]))
    try:
        with pytest.raises(SettingsError) as raised:
            find_stack(cloudformation, name)
    finally:
        cloudformation.delete_stack(StackName=name)
    assert str(raised.value).startswith(
        f"--stack {name}: the stack (CREATE_COMPLETE) has no output CopyQueueUrl, CopyQueueArn, "
        "DeadLetterQueueUrl, DeadLetterQueueArn, DashboardUrl"
    )


def test_the_cli_reports_a_missing_stack_with_exit_2(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    args = deployed.cli("status", "--run-id", "20261127T061500Z-3f9a1c")
    args[args.index(deployed.stack.stack_name)] = "NotDeployed"
    assert main(args) == 2
    assert capsys.readouterr().err.startswith("mastodon-s3-sync: error: --stack NotDeployed: ")


# -- start ---------------------------------------------------------------------------


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
        started = deployed.operations().start(["all"], now, since="36h")
        stub.assert_no_pending_responses()

    # then one asynchronous invocation per type, one run id, the same absolute since
    assert started.run_id.startswith("20261127T061542Z-")
    assert sent == [
        {
            "type": [str(record_type)],
            "run_id": started.run_id,
            "skip_remote_cache": False,
            "dry_run": False,
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
    operations = deployed.operations()
    with Stubber(deployed.clients.lambda_):  # any call would fail: no response is queued
        with pytest.raises(SettingsError, match="start: unknown type 'statuses'"):
            operations.start(["accounts", "statuses"], datetime.now(UTC))
        with pytest.raises(SettingsError, match="start: since: 'yesterday' is neither"):
            operations.start(["all"], datetime.now(UTC), since="yesterday")


def test_a_dry_run_waits_for_the_counts(deployed: Deployed) -> None:
    counted = EnumerationResult(
        "20261127T061542Z-c0ffee", {RecordType.CUSTOM_EMOJIS: TypeCount(3, 6, 1, 1234)}
    )
    answer = enumerator_response(counted, dry_run=True, continued=False)
    with Stubber(deployed.clients.lambda_) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 200, "Payload": streaming(json.dumps(answer).encode())},
            {
                "FunctionName": deployed.stack.enumerator_function,
                "InvocationType": "RequestResponse",
                "Payload": ANY,
            },
        )
        started = deployed.operations().start(["custom_emojis"], datetime.now(UTC), dry_run=True)
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
            deployed.operations().start(["accounts"], datetime.now(UTC), dry_run=True)
    assert started.events[0]["dry_run"] is True
    assert started.dry_run_answers == (answer,)


def test_start_command_prints_the_run_and_how_to_follow_it(
    deployed_with_function: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed = deployed_with_function
    assert main(deployed.cli("start", "all", "--since", "2026-11-01T01:00:00+01:00")) == 0
    lines = capsys.readouterr().out.splitlines()
    match = re.fullmatch(
        r"run (\S+) started: enumerating accounts, media_attachments, custom_emojis, "
        r"preview_cards, changed since 2026-11-01T00:00:00\+00:00",
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


# -- status --------------------------------------------------------------------------


def ingest(cloudwatch: CloudWatchClient, documents: list[dict[str, Any]], at: datetime) -> None:
    """What CloudWatch does with the EMF documents in a function's log, here dated ``at``."""
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    value = document[metric["Name"]]
                    cloudwatch.put_metric_data(
                        Namespace=directive["Namespace"],
                        MetricData=[
                            {
                                "MetricName": metric["Name"],
                                "Dimensions": [
                                    {"Name": name, "Value": document[name]} for name in dimensions
                                ],
                                "Values": value if isinstance(value, list) else [value],
                                "Unit": metric["Unit"],
                                "Timestamp": at,
                            }
                        ],
                    )


class Functions:
    """The handlers' metric emitters, as the deployed functions run them."""

    def __init__(
        self, output: Output, cloudwatch: CloudWatchClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.output = output
        self.cloudwatch = cloudwatch
        self.monkeypatch = monkeypatch

    def _ingest(self, at: datetime) -> None:
        documents = [doc for doc in self.output.read() if "_aws" in doc]
        self.output.documents.clear()
        ingest(self.cloudwatch, documents, at)

    def enumerated(self, service: str, at: datetime, counts: Mapping[RecordType, int]) -> None:
        """The enumerator's end-of-invocation metric (functions/enumerator/handler.py)."""
        self.monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", service)
        for record_type, objects in counts.items():
            lambda_metrics.emit(record_type, {"ObjectsEnumerated": (objects, MetricUnit.Count)})
        self._ingest(at)

    def copied(
        self, service: str, at: datetime, record_type: RecordType, outcomes: Mapping[Outcome, int]
    ) -> None:
        """The copier's per-message report of these outcomes."""
        self.monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", service)
        results = [
            CopyResult(ObjectRef(record_type, n, "file", "original", f"k/{n}"), outcome)
            for outcome, count in outcomes.items()
            for n in range(count)
        ]
        message = CopyMessage("20261127T061500Z-c0ffee", record_type, ())
        copier_handler.report(message, results)
        self._ingest(at)


@pytest.fixture
def functions(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Functions:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)
    monkeypatch.setattr(copier_handler.logger.registered_handler, "stream", CurrentStdout())
    return Functions(Output(capsys), deployed.clients.cloudwatch, monkeypatch)


@dataclass(frozen=True)
class Run:
    run_id: str
    now: datetime


@pytest.fixture
def run_in_progress(deployed: Deployed, functions: Functions) -> Run:
    """A run 20 minutes old: its metrics, the queues, and noise it must not count."""
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    started = now - timedelta(minutes=20)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-c0ffee"
    stack = deployed.stack.stack_name
    accounts, media = RecordType.ACCOUNTS, RecordType.MEDIA_ATTACHMENTS
    functions.enumerated(stack, now - timedelta(minutes=18), {accounts: 100, media: 1000})
    functions.copied(stack, now - timedelta(minutes=15), accounts, {Outcome.COPIED: 60})
    functions.copied(stack, now - timedelta(minutes=15), media, {Outcome.COPIED: 500})
    # the last five complete minutes: 120 + 30 + 3 objects done, 2 failed
    functions.copied(stack, now - timedelta(minutes=4), media, {Outcome.COPIED: 120})
    functions.copied(stack, now - timedelta(minutes=3), accounts, {Outcome.SKIPPED: 30})
    functions.copied(
        stack, now - timedelta(minutes=3), media, {Outcome.MISSING: 3, Outcome.FAILED: 2}
    )
    # not this run: before it began, and another stack's
    functions.copied(stack, now - timedelta(minutes=30), accounts, {Outcome.COPIED: 999})
    functions.enumerated("OtherStack", now - timedelta(minutes=10), {accounts: 5000})
    sqs = deployed.clients.sqs
    for n in range(3):
        sqs.send_message(QueueUrl=deployed.stack.copy_queue_url, MessageBody=f"{n}")
    sqs.receive_message(QueueUrl=deployed.stack.copy_queue_url, MaxNumberOfMessages=1)
    for n in range(2):
        sqs.send_message(QueueUrl=deployed.stack.dead_letter_queue_url, MessageBody=f"{n}")
    return Run(run_id, now)


def test_status_counts_the_runs_metrics_and_the_queues(
    deployed: Deployed, run_in_progress: Run
) -> None:
    snapshot = deployed.operations().status(run_in_progress.run_id, run_in_progress.now)
    assert snapshot == StatusSnapshot(
        stack_name=deployed.stack.stack_name,
        run_id=run_in_progress.run_id,
        started=run_in_progress.now - timedelta(minutes=20),
        taken=run_in_progress.now,
        counts={
            RecordType.ACCOUNTS: TypeCounts(enumerated=100, copied=60, skipped=30),
            RecordType.MEDIA_ATTACHMENTS: TypeCounts(1000, 620, 0, 3, 2),
            RecordType.CUSTOM_EMOJIS: TypeCounts(),
            RecordType.PREVIEW_CARDS: TypeCounts(),
        },
        queue_visible=2,
        queue_in_flight=1,
        dead_letters=2,
        rate=(120 + 30 + 3) / 300,
    )
    assert snapshot.eta_seconds == pytest.approx((10 + 377) / (153 / 300))


def test_status_command_prints_the_table(
    deployed: Deployed, run_in_progress: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(deployed.cli("status", "--run-id", run_in_progress.run_id)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        f"run {run_in_progress.run_id} on stack {deployed.stack.stack_name}: started "
    )
    assert lines[3:8:4] == [
        "accounts                 100         60         30          0          0         10",
        "all                    1,100        680         30          3          2        387",
    ]
    assert lines[9:11] == [
        "copy queue: 2 messages waiting, 1 in flight",
        "dead-letter queue: 2 messages (their keys: missing --failed; then: redrive)",
    ]


def test_status_without_a_run_id_follows_the_latest_run(deployed: Deployed) -> None:
    now = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    with Stubber(deployed.clients.logs) as stub:
        stub.add_response(
            "start_query",
            {"queryId": "12ab3456-12ab-123a-789e-1234567890ab"},
            {
                "logGroupNames": [deployed.stack.enumerator_log_group],
                "startTime": int((now - timedelta(days=14)).timestamp()),
                "endTime": int(now.timestamp()),
                "queryString": (
                    'filter message = "enumeration started" and ispresent(run_id)\n'
                    "| stats min(@timestamp) as started by run_id\n"
                    "| sort started desc\n"
                    "| limit 1"
                ),
            },
        )
        stub.add_response("get_query_results", {"status": "Running", "results": []})

        def latest(run_id: str) -> dict[str, Any]:
            """A stats query's answer: its fields only, no @ptr."""
            return {
                "status": "Complete",
                "results": [
                    [
                        {"field": "run_id", "value": run_id},
                        {"field": "started", "value": "2026-11-27 06:40:02.123"},
                    ]
                ],
                "statistics": {"recordsMatched": 3.0, "recordsScanned": 40.0},
            }

        stub.add_response("get_query_results", latest("20261127T064000Z-0a1b2c"))
        assert deployed.operations().latest_run_id(now) == "20261127T064000Z-0a1b2c"
        stub.add_response("start_query", {"queryId": "2"})
        stub.add_response("get_query_results", {"status": "Complete", "results": []})
        with pytest.raises(SettingsError, match=r"^the enumerator's log: no run in the last 14"):
            deployed.operations().latest_run_id(now)
        # a run started before the enumerator checked run ids: the log is named, not --run-id
        stub.add_response("start_query", {"queryId": "3"})
        stub.add_response("get_query_results", latest("my-run"))
        with pytest.raises(SettingsError) as raised:
            deployed.operations().latest_run_id(now)
    assert str(raised.value) == (
        "the enumerator's log: its latest run id 'my-run' holds no start time "
        "(like 20261127T061500Z-3f9a1c); pass --run-id of the run to follow"
    )
    assert LATEST_RUN_QUERY.startswith(f"filter message = {json.dumps(RUN_STARTED_MESSAGE)}")


def test_status_watch_redraws_until_ctrl_c(deployed: Deployed, run_in_progress: Run) -> None:
    # given status --watch 1 writing to a pipe (not a terminal)
    command = [sys.executable, "-m", "mastodon_s3_sync"]
    args = deployed.cli("status", "--run-id", run_in_progress.run_id, "--watch", "1")
    process = subprocess.Popen(
        [*command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **AWS_ENV},
    )
    assert process.stdout is not None
    headers = 0
    deadline = time.monotonic() + 60
    while headers < 2 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        headers += line.startswith(f"run {run_in_progress.run_id}")
    # when interrupted
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    # then two plain blocks at least, no screen control, and exit status 0
    assert headers == 2
    assert process.returncode == 0, err
    assert "\x1b[" not in out


# -- redrive -------------------------------------------------------------------------


STARTED_MS = 1795760100000
EARLIER_MS = STARTED_MS - 86_400_000


def move_task(
    status: str, moved: int, to_move: int, started: int = STARTED_MS, **extra: Any
) -> dict[str, Any]:
    return {
        "Status": status,
        "SourceArn": "set below",
        "ApproximateNumberOfMessagesMoved": moved,
        "ApproximateNumberOfMessagesToMove": to_move,
        "StartedTimestamp": started,
        **extra,
    }


def test_redrive_moves_the_dlq_back_and_follows_the_task(deployed: Deployed) -> None:
    stack = deployed.stack
    source = {"SourceArn": stack.dead_letter_queue_arn}
    handle = "eyJ0YXNrSWQiOiJkYzE2OWUwNC0wZTU1LTQ0ZDItYWE5MC1jMDgwY2ExZjM2ZjciLCJzb3VyY2VBcm4i"
    with Stubber(deployed.clients.sqs) as stub:
        stub.add_response(
            "get_queue_attributes",
            {"Attributes": {"ApproximateNumberOfMessages": "3"}},
            {"QueueUrl": stack.dead_letter_queue_url, "AttributeNames": ANY},
        )
        earlier = move_task("COMPLETED", 7, 7, EARLIER_MS) | source
        stub.add_response(
            "list_message_move_tasks", {"Results": [earlier]}, {**source, "MaxResults": 10}
        )
        stub.add_response(
            "start_message_move_task",
            {"TaskHandle": handle},
            {**source, "DestinationArn": stack.copy_queue_arn},
        )
        # SQS lists the new task only after a moment: first nothing, then the earlier one
        for listed in ([], [earlier]):
            stub.add_response(
                "list_message_move_tasks", {"Results": listed}, {**source, "MaxResults": 1}
            )
        for status, moved in (("RUNNING", 0), ("RUNNING", 2), ("COMPLETED", 3)):
            running = {"TaskHandle": handle} if status == "RUNNING" else {}
            stub.add_response(
                "list_message_move_tasks",
                {"Results": [move_task(status, moved, 3) | source | running]},
                {**source, "MaxResults": 1},
            )
        seen: list[MoveTask] = []
        done = deployed.operations().redrive(seen.append)
        stub.assert_no_pending_responses()
    assert [(task.status, task.moved, task.to_move) for task in seen] == [
        ("RUNNING", 0, 3),
        ("RUNNING", 2, 3),
        ("COMPLETED", 3, 3),
    ]
    assert done == seen[-1]


def test_redrive_refuses_an_empty_dlq(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(deployed.cli("redrive")) == 1
    assert capsys.readouterr().err == (
        "mastodon-s3-sync: error: the dead-letter queue is empty: nothing to redrive\n"
    )


def test_redrive_refuses_while_a_task_runs_and_reports_a_failed_one(deployed: Deployed) -> None:
    source = {"SourceArn": deployed.stack.dead_letter_queue_arn}
    waiting = {"Attributes": {"ApproximateNumberOfMessages": "40"}}
    with Stubber(deployed.clients.sqs) as stub:
        stub.add_response("get_queue_attributes", waiting)
        stub.add_response(
            "list_message_move_tasks",
            {"Results": [move_task("RUNNING", 10, 50) | source | {"TaskHandle": "abc"}]},
        )
        with pytest.raises(RedriveRefused, match=r"already running \(10 of 50 messages moved\)"):
            deployed.operations().redrive(lambda task: None)

        stub.add_response("get_queue_attributes", waiting)
        stub.add_response("list_message_move_tasks", {"Results": []})
        stub.add_response("start_message_move_task", {"TaskHandle": "abc"})
        failure = "AWS.SimpleQueueService.NonExistentQueue"
        stub.add_response(
            "list_message_move_tasks",
            {"Results": [move_task("FAILED", 12, 40, FailureReason=failure) | source]},
        )
        with pytest.raises(SyncError, match=f"redrive failed after 12 messages: {failure}"):
            deployed.operations().redrive(lambda task: None)
        stub.assert_no_pending_responses()


def test_redrive_gives_up_clearly_when_its_task_is_never_listed(deployed: Deployed) -> None:
    source = {"SourceArn": deployed.stack.dead_letter_queue_arn}
    earlier = move_task("COMPLETED", 7, 7, EARLIER_MS) | source
    with Stubber(deployed.clients.sqs) as stub:
        stub.add_response(
            "get_queue_attributes", {"Attributes": {"ApproximateNumberOfMessages": "4"}}
        )
        stub.add_response("list_message_move_tasks", {"Results": [earlier]})
        stub.add_response("start_message_move_task", {"TaskHandle": "abc"})
        for _ in range(MOVE_TASK_LISTINGS):
            stub.add_response("list_message_move_tasks", {"Results": [earlier]})
        with pytest.raises(SyncError) as raised:
            deployed.operations().redrive(lambda task: None)
        stub.assert_no_pending_responses()
    assert str(raised.value) == (
        "the redrive was started, but SQS listed no new move task for the dead-letter queue "
        f"in {MOVE_TASK_LISTINGS} tries; follow it with: aws sqs list-message-move-tasks "
        f"--source-arn {deployed.stack.dead_letter_queue_arn}"
    )


# -- missing -------------------------------------------------------------------------


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
    copier_handler.report(CopyMessage("r", RecordType.MEDIA_ATTACHMENTS, tuple(refs)), results)
    lines = functions.output.logs("object missing") + functions.output.logs("object failed")
    assert len(lines) == 2
    return lines


@pytest.fixture
def enumerator_refused_line(functions: Functions) -> dict[str, Any]:
    """The enumerator's log line for a key it refused to send."""
    functions.monkeypatch.setattr(
        enumerator_handler.logger.registered_handler, "stream", CurrentStdout()
    )
    ref = ObjectRef(RecordType.ACCOUNTS, 3, "avatar", "original", "accounts/avatars/../x.png")
    reason = refusal(ref)
    assert reason is not None
    enumerator_handler.log_refused(ref, reason)
    (line,) = [line for line in functions.output.logs("object failed") if line["key"] == ref.key]
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
        found = deployed.operations().logged_keys(
            begin, end, run_id=run_id, outcomes=(Outcome.MISSING, Outcome.FAILED)
        )
    # one line per key, its latest outcome, sorted by key, reasons on one line
    assert found.keys == [
        LoggedKey(
            "accounts/avatars/../x.png",
            "failed",
            "refused key 'accounts/avatars/../x.png': has a . or .. path segment",
        ),
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
        found = deployed.operations().logged_keys(begin, end, max_rows=3)
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
