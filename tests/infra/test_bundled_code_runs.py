"""The installed code runs on its own, in a Python that sees nothing else.

The CLI from the project's wheel with its ``cli`` extra, on this machine's Python; each
bundled handler from its Lambda asset, on CPython 3.12 (the runtime's version), without
site-packages or the repository: the copier copies between two moto S3 servers on localhost,
and each handler's AWS clients (of the services botocore's trimmed data keeps) answer there.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.bundling import FUNCTIONS, PYTHON_VERSION, REPO_ROOT, build_asset, project_wheel
from mastodon_s3_sync.contract import OUTCOME_METRICS
from mastodon_s3_sync.demo.media import create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import REGION, MotoS3Server
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType, objects_for_row
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.transport.messages import MessagePacker
from tests.events.factory import FakeLambdaContext, sqs_event_for_bodies

PACKAGE = "mastodon_s3_sync"
HANDLER_IMPORTS = ("handler", PACKAGE, "boto3", "botocore", "aws_lambda_powertools")
"""Modules every bundled handler imports, which must come from its asset."""
RUN_ID = "20261127T061500Z-b0b0b0"
HANDLER_SECONDS = 120
PIP_INSTALL = (sys.executable, "-m", "pip", "install", "--no-compile", "--no-input")


def python_312() -> str | None:
    """A CPython 3.12 interpreter on this machine, if there is one (the runtime's version)."""
    pyenv = Path.home() / ".pyenv" / "versions"
    candidates = [
        *sorted(glob.glob(str(pyenv / f"{PYTHON_VERSION}.*" / "bin" / "python3")), reverse=True),
        *filter(None, [shutil.which(f"python{PYTHON_VERSION}")]),
    ]
    wanted = tuple(int(part) for part in PYTHON_VERSION.split("."))
    for candidate in candidates:
        # pyenv's shims exist even where they cannot run: ask the interpreter itself
        probe = subprocess.run(
            [candidate, "-S", "-c", f"import sys; sys.exit(sys.version_info[:2] != {wanted})"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return candidate
    return None


CLI_IMPORTS = f"""
import importlib, json, pkgutil, sys
import {PACKAGE}
names = [
    module.name
    for module in pkgutil.walk_packages({PACKAGE}.__path__, "{PACKAGE}.")
    if module.name != "{PACKAGE}.__main__"  # runs the command when imported
]
missing = {{}}
for name in names:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing[name] = error.name
files = {{name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())}}
with open(sys.argv[1], "w") as file:
    json.dump({{"modules": names, "missing": missing, "files": files, "sys_path": sys.path}}, file)
"""
CLI_ROOMS = ("cli", "ops", "demo")
"""The rooms of the command line (the edges for people), whose modules must all import."""


def test_the_cli_extra_installs_a_working_command(tmp_path: Path) -> None:
    # given the project installed with its `cli` extra alone, for this machine's Python
    target = tmp_path / "site"
    install = subprocess.run(
        [*PIP_INSTALL, "--target", str(target), f"{project_wheel()}[cli]"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-4000:]
    isolated = [sys.executable, "-B", "-S", "-s", "-P"]
    environment = {"PYTHONPATH": str(target), "HOME": str(tmp_path), "LANG": "C.UTF-8"}

    # when a Python that sees only that imports every module, then runs the command
    imported = subprocess.run(
        [*isolated, "-c", CLI_IMPORTS, str(tmp_path / "result.json")],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    command = subprocess.run(
        [*isolated, "-m", PACKAGE, "--help"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )

    # then the modules import from what was installed; only the Lambda functions' helpers
    # miss something (Powertools, the `lambda` extra), and none of the command's rooms
    assert imported.returncode == 0, imported.stderr[-4000:]
    result = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    modules, missing = result["modules"], result["missing"]
    assert {f"{PACKAGE}.cli", f"{PACKAGE}.mastodon.tunnel", f"{PACKAGE}.demo"} <= set(modules)
    assert set(missing.values()) <= {"aws_lambda_powertools"}, missing
    assert [name for name in missing if name.split(".")[1] in CLI_ROOMS] == []
    # and the command answers
    assert_imported_only_from(result, target, (PACKAGE, "pg8000", "paramiko", "tqdm", "dotenv"))
    assert command.returncode == 0, command.stderr[-4000:]
    assert command.stdout.startswith("usage:")


# Runs in a Python that imports only the standard library and PYTHONPATH (the asset): no
# site-packages (-S, -s), no current directory (-P), and writes no bytecode into the
# asset (-B). argv: request file, result file. The request's code, if any, runs with the
# imported handler in scope and leaves what it found in `called`.
DRIVER = """
import json, sys, time
request_path, result_path = sys.argv[1:3]
with open(request_path) as file:
    request = json.load(file)


class Context:
    def __init__(self, fields, remaining_ms):
        self.__dict__.update(fields)
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


import handler

result = {}
for module in request["imports"]:
    __import__(module)
if request["event"] is not None:
    context = Context(request["context"], request["remaining_ms"])
    result["response"] = handler.handler(request["event"], context)
if request["code"] is not None:
    namespace = {"handler": handler}
    exec(request["code"], namespace)
    result["called"] = namespace["called"]
result["sys_path"] = sys.path
result["files"] = {
    name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())
}
with open(result_path, "w") as file:
    json.dump(result, file)
"""


def run_bundled(
    python: str,
    asset: Path,
    work_dir: Path,
    environment: dict[str, str],
    event: dict[str, Any] | None = None,
    imports: tuple[str, ...] = (),
    code: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Import the asset's handler (and ``imports``), call it with ``event`` if given, run
    ``code`` if given; the driver's result and what the handler printed."""
    context = FakeLambdaContext()
    fields = {
        field.name: getattr(context, field.name)
        for field in dataclasses.fields(context)
        if field.name != "deadline"
    }
    request = {
        "event": event,
        "context": fields,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "imports": list(imports),
        "code": code,
    }
    request_path, result_path = work_dir / "request.json", work_dir / "result.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    done = subprocess.run(
        [python, "-B", "-S", "-s", "-P", "-c", DRIVER, str(request_path), str(result_path)],
        env={
            "PYTHONPATH": str(asset),
            "LAMBDA_TASK_ROOT": str(asset),
            "_HANDLER": "handler.handler",
            "HOME": str(work_dir),
            "LANG": "C.UTF-8",
            "AWS_CONFIG_FILE": str(work_dir / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(work_dir / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            **environment,
        },
        cwd=work_dir,
        capture_output=True,
        text=True,
        timeout=HANDLER_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    return result, done.stdout


def assert_imported_only_from(
    result: dict[str, Any], root: Path, expected: tuple[str, ...]
) -> None:
    """Every imported module came from ``root`` or the standard library, and the
    ``expected`` ones from ``root``."""
    assert result["sys_path"][0] == str(root)
    assert not [entry for entry in result["sys_path"] if "site-packages" in entry]
    for name in expected:
        assert Path(result["files"][name]).is_relative_to(root), name
    for name, file in result["files"].items():
        if file is None or Path(file).is_relative_to(root):
            continue
        assert not Path(file).is_relative_to(REPO_ROOT), (name, file)
        assert "site-packages" not in Path(file).parts, (name, file)


@pytest.fixture(scope="module")
def providers() -> Iterator[tuple[MotoS3Server, MotoS3Server]]:
    """Two moto S3 servers: the source provider and the destination provider."""
    with MotoS3Server() as source, MotoS3Server() as destination:
        yield source, destination


def test_bundled_copier_copies_with_nothing_but_its_asset(
    providers: tuple[MotoS3Server, MotoS3Server], tmp_path: Path
) -> None:
    # given the x86_64 copier asset, this machine's CPython 3.12 (the runtime's version, which
    # loads pydantic-core's binary wheel), objects at the source, and a message naming them
    python = python_312()
    if python is None:
        pytest.skip(f"no CPython {PYTHON_VERSION} on this machine")
    asset = build_asset("copier", "x86_64")
    source, destination = providers
    source_client, destination_client = source.client(), destination.client()
    source_bucket, destination_bucket = (f"bundle-{side}-{uuid.uuid4().hex[:8]}" for side in "sd")
    create_bucket(source_client, source_bucket)
    create_bucket(destination_client, destination_bucket)
    rows = [
        {
            "id": 110_000_000_000_000_001 + n,
            "file_file_name": f"{n:016x}.png",
            "file_content_type": "image/png",
            "file_file_size": 4096,
            "remote_url": None,
        }
        for n in range(2)
    ]
    refs: list[ObjectRef] = [
        ref for row in rows for ref in objects_for_row(RecordType.MEDIA_ATTACHMENTS, row)
    ]
    manifest = seed_bucket(source_client, source_bucket, refs)
    packer = MessagePacker(RUN_ID, RecordType.MEDIA_ATTACHMENTS)
    assert all(packer.add(ref) is None for ref in refs)
    body = packer.flush()
    assert body is not None
    environment = {"MSS_COPIER_THREADS": "4"}
    for side, server, bucket in (
        ("SOURCE", source, source_bucket),
        ("DESTINATION", destination, destination_bucket),
    ):
        environment |= {
            f"MSS_{side}_BUCKET": bucket,
            f"MSS_{side}_ENDPOINT_URL": server.endpoint_url,
            f"MSS_{side}_REGION": REGION,
            f"MSS_{side}_ADDRESSING_STYLE": "path",
        }
    environment |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": "mastodon-s3-sync-copier",
        "POWERTOOLS_SERVICE_NAME": "copier",
        "POWERTOOLS_METRICS_NAMESPACE": "MastodonS3SyncBundleTest",
    }

    # when the bundled handler gets the SQS event
    result, printed = run_bundled(
        python, asset, tmp_path, environment, event=sqs_event_for_bodies([body])
    )

    # then everything is copied, by code that came from the asset alone
    assert result["response"] == {"batchItemFailures": []}
    assert_imported_only_from(result, asset, HANDLER_IMPORTS)
    for ref in refs:
        seeded = manifest.for_ref(ref)
        assert seeded is not None
        copied = destination_client.get_object(Bucket=destination_bucket, Key=seeded.key)
        assert hashlib.md5(copied["Body"].read(), usedforsecurity=False).hexdigest() == seeded.md5
    assert f'"{OUTCOME_METRICS[Outcome.COPIED]}"' in printed  # Powertools' EMF metrics
    assert not any(asset.rglob("__pycache__"))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_bundled_handler_imports_under_the_runtime_python(function: str, tmp_path: Path) -> None:
    # given the x86_64 asset, and this machine's CPython 3.12 (the runtime's version), which
    # loads the enumerator's binary wheels (cryptography, bcrypt, PyNaCl and cffi)
    python = python_312()
    if python is None:
        pytest.skip(f"no CPython {PYTHON_VERSION} on this machine")
    asset = build_asset(function, "x86_64")
    imports: tuple[str, ...] = ()
    if function == "enumerator":  # the database, and the SSH tunnel to it
        imports = ("pg8000.native", "paramiko", "nacl.bindings")
        imports += (f"{PACKAGE}.mastodon.database", f"{PACKAGE}.mastodon.tunnel")

    # when
    result, _printed = run_bundled(python, asset, tmp_path, {"AWS_REGION": REGION}, imports=imports)

    # then
    assert_imported_only_from(result, asset, (*HANDLER_IMPORTS, *imports))
    assert not any(asset.rglob("__pycache__"))


# Run in the bundled handler's Python: each service the function calls, through the
# handler's own code where it has some (read_secret, clients), and one it never calls.
SERVICE_CALLS = """
import os
import boto3, botocore.exceptions
called = {"secret": handler.read_secret(os.environ["TEST_SECRET_ARN"])}
if hasattr(handler, "clients"):
    clients = handler.clients()
    queue_url = os.environ["TEST_QUEUE_URL"]
    sent = clients.sqs.send_message(QueueUrl=queue_url, MessageBody="{}")
    called["sent"] = sent["MessageId"]
    called["functions"] = clients.functions.list_functions()["Functions"]
try:
    boto3.client("ec2")
except botocore.exceptions.UnknownServiceError as error:
    called["ec2"] = type(error).__name__
"""


@pytest.mark.parametrize("function", FUNCTIONS)
def test_bundled_handler_calls_its_services_from_the_trimmed_asset(
    function: str, providers: tuple[MotoS3Server, MotoS3Server], tmp_path: Path
) -> None:
    # given the x86_64 asset, CPython 3.12, and a moto server (every AWS service on one port)
    # holding a secret and a queue
    python = python_312()
    if python is None:
        pytest.skip(f"no CPython {PYTHON_VERSION} on this machine")
    asset = build_asset(function, "x86_64")
    server, _destination = providers
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    name = f"bundle-{uuid.uuid4().hex[:8]}"
    secrets = session.client("secretsmanager", endpoint_url=server.endpoint_url)
    secret = secrets.create_secret(Name=name, SecretString='{"password": "p"}')
    queue = session.client("sqs", endpoint_url=server.endpoint_url).create_queue(QueueName=name)
    environment = {
        "AWS_ENDPOINT_URL": server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "TEST_SECRET_ARN": secret["ARN"],
        "TEST_QUEUE_URL": queue["QueueUrl"],
    }

    # when the handler's code calls them
    result, _printed = run_bundled(python, asset, tmp_path, environment, code=SERVICE_CALLS)

    # then Secrets Manager answers both, SQS and Lambda the enumerator; EC2's model is gone
    called = result["called"]
    assert called["secret"] == {"password": "p"}
    assert called["ec2"] == "UnknownServiceError"
    if function == "enumerator":
        assert called["sent"]
        assert called["functions"] == []
    else:
        assert "sent" not in called
    assert_imported_only_from(result, asset, HANDLER_IMPORTS)
