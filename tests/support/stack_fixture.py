"""A stack "deployed" in moto_server, for the tests of start / status / redrive / missing.

moto implements CloudFormation (the stack and its outputs, from a template with the same
outputs as infra/stack.py), SQS queues and CloudWatch GetMetricData, so those are real.
Its Lambda runs functions in Docker, or, configured without, answers invoke without
recording the payload: the CLI's ``start`` runs against that, and the exact payloads are
checked with botocore's Stubber. SQS message move tasks and Logs Insights queries (moto
has none, or no ``filter``) go through the Stubber too, with responses shaped as the AWS
API reference shows them. The metrics and log lines the stubs and moto serve are the ones
the handlers really print (EMF and Powertools JSON): :class:`Functions` emits them.

A pytest plugin (``pytest_plugins`` in tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from aws_lambda_powertools.metrics import MetricUnit
from botocore.response import StreamingBody

import functions.copier.handler as copier_handler
from mastodon_s3_sync.contract import ENUMERATED_METRIC, METRICS_NAMESPACE
from mastodon_s3_sync.copying.results import CopyResult
from mastodon_s3_sync.demo.s3servers import LOOPBACK_HOST, REGION, MotoS3Server
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.ops.stack import AwsClients, Poll, StackOutputs, find_stack, make_clients
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.transport import lambda_metrics
from mastodon_s3_sync.transport.lambda_copier import report
from mastodon_s3_sync.transport.messages import CopyMessage
from tests.support.lambda_output import CurrentStdout, Output

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

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
"""The stand-in stack's outputs: real names (tests/infra checks them against the stack)."""
NO_WAIT = Poll(seconds=0)
"""The operations' polls, without the pause between two asks."""


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

    def cli(self, *args: str) -> list[str]:
        """The command line of an operations command on this stack."""
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
    """The operations' clients, on provider A's moto_server."""
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
    """A stack of this test's own."""
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
    """An Invoke response's ``Payload``."""
    return StreamingBody(io.BytesIO(payload), len(payload))


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
            lambda_metrics.emit(record_type, {ENUMERATED_METRIC: (objects, MetricUnit.Count)})
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
        report(message, results, copier_handler.logger)
        self._ingest(at)


@pytest.fixture
def functions(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Functions:
    """The deployed functions' metrics, landing in the stack's CloudWatch."""
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)
    monkeypatch.setattr(copier_handler.logger.registered_handler, "stream", CurrentStdout())
    return Functions(Output(capsys), deployed.clients.cloudwatch, monkeypatch)
