"""The Lambda assets: what they hold, what they are built for, and that they run on their own.

Assets are built with pip for the Lambda platform (PyPI must be reachable the first time;
later runs reuse ``.cdk-assets``). The last tests run the bundled handlers in a Python
that sees only the asset and the standard library, as the Lambda runtime would: the
copier against two moto S3 servers on localhost.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import re
import shutil
import subprocess
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra.bundling import (
    ARCHITECTURES,
    CORE_PACKAGE,
    DISTRIBUTIONS,
    FUNCTIONS,
    PYPROJECT,
    PYTHON_VERSION,
    REPO_ROOT,
    BundleError,
    build_asset,
    requirements,
    sources,
)
from mastodon_s3_sync.demo.media import create_bucket, seed_bucket
from mastodon_s3_sync.demo.s3servers import REGION, MotoS3Server
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType, objects_for_row
from mastodon_s3_sync.transport.messages import MessagePacker
from tests.events.factory import FakeLambdaContext, sqs_event_for_bodies

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
MAX_UNPACKED_MIB = {"copier": 60, "enumerator": 90}
"""Sane ceilings, well under Lambda's 250 MB: botocore is most of either asset."""
ELF_MACHINES = {"x86_64": 62, "arm64": 183}  # e_machine: EM_X86_64, EM_AARCH64
CLI_ONLY_MODULES = (
    *("cli", "__main__", "demo", "sandbox", "plan", "progress", "report", "verify"),
    *("operations", "ops_cli", "config_check"),
)
NOT_BUNDLED = ("tests", "functions", "infra", "moto", "tqdm", "pytest", "mypy", "ruff")
RUN_ID = "20261127T061500Z-b0b0b0"
HANDLER_SECONDS = 120


def target_environment(architecture: str) -> dict[str, str]:
    """Marker values of the python3.12 runtime (pip evaluates markers for this machine)."""
    return {
        "python_version": PYTHON_VERSION,
        "python_full_version": f"{PYTHON_VERSION}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_machine": {"arm64": "aarch64", "x86_64": "x86_64"}[architecture],
        "platform_system": "Linux",
        "sys_platform": "linux",
        "os_name": "posix",
        "extra": "",
    }


def files_under(root: Path) -> Iterator[Path]:
    """Every file below ``root``."""
    return (path for path in root.rglob("*") if path.is_file())


def dist_infos(asset: Path) -> dict[str, Path]:
    """Installed distributions of an asset: canonical name -> dist-info directory."""
    return {
        canonicalize_name(path.name.removesuffix(".dist-info").rpartition("-")[0]): path
        for path in asset.glob("*.dist-info")
    }


def wheel_tag_fits(tag: str, architecture: str) -> bool:
    """Whether a wheel tag (``py3-none-any``, ``cp311-abi3-manylinux_2_34_aarch64`` ...)
    loads in CPython 3.12 on Amazon Linux 2023 (glibc 2.34) for ``architecture``."""
    interpreter, abi, platform = tag.split("-")
    machine = {"arm64": "aarch64", "x86_64": "x86_64"}[architecture]
    glibc = re.fullmatch(rf"manylinux_2_(\d+)_{machine}", platform)
    platform_fits = (
        platform == "any"
        or (glibc is not None and int(glibc.group(1)) <= 34)
        or platform in {f"manylinux{year}_{machine}" for year in ("1", "2010", "2014")}
    )
    python = re.fullmatch(r"cp3(\d+)", interpreter)
    interpreter_fits = interpreter.startswith("py3") or (
        python is not None
        and (int(python.group(1)) == 12 or (abi == "abi3" and int(python.group(1)) <= 12))
    )
    return platform_fits and interpreter_fits and abi in {"none", "abi3", "cp312"}


def elf_machine(path: Path) -> int:
    """The e_machine field of a little-endian ELF file."""
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    assert header[5] == 1, f"{path}: not little-endian"
    return int.from_bytes(header[18:20], "little")


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


def test_requirement_specs_are_pyprojects() -> None:
    # given what pyproject.toml declares for the core and the Lambda handlers
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    declared = {*project["dependencies"], *project["optional-dependencies"]["lambda"]}

    for function in FUNCTIONS:
        # when
        specs = requirements(function)

        # then every spec is pyproject's own, one per distribution the function names
        assert set(specs) <= declared
        assert [canonicalize_name(Requirement(spec).name) for spec in specs] == [
            canonicalize_name(name) for name in DISTRIBUTIONS[function]
        ]
        assert not {"tqdm", "moto"} & {Requirement(spec).name for spec in specs}
    assert set(requirements("copier")) < set(requirements("enumerator"))
    assert {Requirement(spec).name for spec in requirements("enumerator")} - {
        Requirement(spec).name for spec in requirements("copier")
    } == {"paramiko"}


def test_core_modules_are_those_the_handlers_import() -> None:
    copier, enumerator = sources("copier"), sources("enumerator")

    for found in (copier, enumerator):
        modules = {name.removesuffix(".py").split("/")[1] for name in found.files if "/" in name}
        assert {"copier", "fanout", "serverless", "catalog", "database", "s3"} <= modules
        assert not modules & set(CLI_ONLY_MODULES)
    # the SSH tunnel (paramiko) only where a database is opened
    assert f"{CORE_PACKAGE}/tunnel.py" in enumerator.files
    assert f"{CORE_PACKAGE}/tunnel.py" not in copier.files
    assert copier.third_party == {"aws_lambda_powertools", "boto3", "botocore", "pg8000", "urllib3"}
    assert enumerator.third_party == copier.third_party | {"paramiko"}


def test_unknown_function_or_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="function must be one of"):
        build_asset("worker", "arm64")
    with pytest.raises(ValueError, match="architecture must be one of"):
        build_asset("copier", "aarch64")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_asset_holds_the_handler_the_core_and_the_dependencies_only(
    function: str, architecture: str
) -> None:
    # when
    asset = build_asset(function, architecture)

    # then the handler at the top, exactly the core modules it imports, and the wheels
    assert asset.is_relative_to(REPO_ROOT / ".cdk-assets")
    assert asset.name.startswith(f"{function}-{architecture}-")
    assert (asset / "handler.py").read_bytes() == (
        REPO_ROOT / "functions" / function / "handler.py"
    ).read_bytes()
    core = {path.relative_to(asset).as_posix() for path in files_under(asset / CORE_PACKAGE)}
    assert core == set(sources(function).files) - {"handler.py"}
    top = {path.name for path in asset.iterdir()}
    assert {"handler.py", CORE_PACKAGE, "aws_lambda_powertools", "boto3", "botocore"} <= top
    assert {"pg8000", "urllib3"} <= top
    assert not top & set(NOT_BUNDLED)
    assert not (asset / CORE_PACKAGE / "sandbox").exists()
    assert not any(asset.rglob("__pycache__"))
    assert not any(asset.glob("*.dist-info/RECORD"))
    assert not (asset / "bin").exists()
    if function == "enumerator":
        assert {"paramiko", "cryptography", "nacl", "bcrypt"} <= top
    else:
        assert not {"paramiko", "cryptography", "nacl", "bcrypt"} & top


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_asset_is_built_for_the_lambda_platform(function: str, architecture: str) -> None:
    # when
    asset = build_asset(function, architecture)

    # then every wheel fits python3.12 on the architecture, and so does every binary
    for name, dist_info in dist_infos(asset).items():
        wheel = HeaderParser().parsestr((dist_info / "WHEEL").read_text(encoding="utf-8"))
        tags = wheel.get_all("Tag") or []
        assert any(wheel_tag_fits(tag, architecture) for tag in tags), (name, tags)
    binaries = [path for path in files_under(asset) if ".so" in path.suffixes]
    machines = {path.relative_to(asset).as_posix(): elf_machine(path) for path in binaries}
    assert set(machines.values()) == {ELF_MACHINES[architecture]}, machines
    # the settings model's validator core is the one binary wheel both functions have
    assert any(asset.glob("pydantic_core/*.so"))
    if function == "copier":
        assert {path.relative_to(asset).parts[0] for path in binaries} == {"pydantic_core"}
        return
    assert any(path.name.startswith("_rust") for path in asset.glob("cryptography/**/*.so"))
    assert any(asset.glob("nacl/*.so"))
    assert any(asset.glob("bcrypt/*.so"))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_dependency_the_runtime_needs_is_installed(function: str, architecture: str) -> None:
    # given an asset (pip evaluated its dependencies' markers on this machine's Python)
    asset = build_asset(function, architecture)
    installed = dist_infos(asset)
    environment = target_environment(architecture)

    # then each dependency required on python3.12 and the architecture is there too
    for name, dist_info in installed.items():
        metadata = HeaderParser().parsestr((dist_info / "METADATA").read_text(encoding="utf-8"))
        for line in metadata.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                assert canonicalize_name(requirement.name) in installed, (name, line)


def test_assets_stay_small(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sizes: dict[str, tuple[int, int]] = {}
    for function in FUNCTIONS:
        for architecture in ARCHITECTURES:
            asset = build_asset(function, architecture)
            archive = tmp_path / f"{asset.name}.zip"
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
                for path in sorted(files_under(asset)):
                    bundle.write(path, path.relative_to(asset).as_posix())
            unpacked = sum(path.stat().st_size for path in files_under(asset))
            sizes[f"{function}-{architecture}"] = (unpacked, archive.stat().st_size)
            archive.unlink()
    with capsys.disabled():
        print()
        for name, (unpacked, zipped) in sizes.items():
            print(f"asset {name}: {unpacked / MIB:.1f} MiB unpacked, {zipped / MIB:.1f} MiB zipped")
    for name, (unpacked, _zipped) in sizes.items():
        function = name.partition("-")[0]
        assert unpacked < MAX_UNPACKED_MIB[function] * MIB, name


def test_a_built_asset_is_reused() -> None:
    # given a built asset
    first = build_asset("copier", "x86_64")
    stamp = first.stat().st_mtime_ns

    # when it is asked for again
    again = build_asset("copier", "x86_64")

    # then it is the same directory, untouched
    assert again == first
    assert again.stat().st_mtime_ns == stamp


def test_pip_failure_names_the_requirement_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a requirement no release satisfies
    monkeypatch.setattr("infra.bundling.requirements", lambda _function: ("boto3>=999",))

    # when
    with pytest.raises(BundleError) as raised:
        build_asset("copier", "arm64", cache_dir=tmp_path)

    # then the error says which requirement, and that the index must be reachable
    message = str(raised.value)
    assert "boto3>=999" in message
    assert "must be reachable" in message
    assert sorted(path.name for path in tmp_path.iterdir()) == [".gitignore"]


# Runs in a Python that imports only the standard library and PYTHONPATH (the asset): no
# site-packages (-S, -s), no current directory (-P), and writes no bytecode into the
# asset (-B). argv: request file, result file.
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
) -> tuple[dict[str, Any], str]:
    """Import the asset's handler (and ``imports``), call it with ``event`` if given;
    the driver's result and what the handler printed."""
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


def assert_only_the_asset_was_used(result: dict[str, Any], asset: Path) -> None:
    """Every imported module came from the asset or the standard library."""
    assert result["sys_path"][0] == str(asset)
    assert not [entry for entry in result["sys_path"] if "site-packages" in entry]
    for name in ("handler", CORE_PACKAGE, "boto3", "botocore", "aws_lambda_powertools"):
        assert Path(result["files"][name]).is_relative_to(asset), name
    for name, file in result["files"].items():
        if file is None or Path(file).is_relative_to(asset):
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
    assert_only_the_asset_was_used(result, asset)
    for ref in refs:
        seeded = manifest.for_ref(ref)
        assert seeded is not None
        copied = destination_client.get_object(Bucket=destination_bucket, Key=seeded.key)
        assert hashlib.md5(copied["Body"].read(), usedforsecurity=False).hexdigest() == seeded.md5
    assert '"ObjectsCopied"' in printed  # Powertools' EMF metrics
    assert not any(asset.rglob("__pycache__"))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_bundled_handler_imports_under_the_runtime_python(function: str, tmp_path: Path) -> None:
    # given the x86_64 asset, and this machine's CPython 3.12 (the runtime's version), which
    # loads the enumerator's binary wheels (cryptography, bcrypt, PyNaCl and cffi)
    python = python_312()
    if python is None:
        pytest.skip(f"no CPython {PYTHON_VERSION} on this machine")
    asset = build_asset(function, "x86_64")
    imports = (
        ("paramiko", "nacl.bindings", f"{CORE_PACKAGE}.tunnel") if function == "enumerator" else ()
    )

    # when
    result, _printed = run_bundled(python, asset, tmp_path, {"AWS_REGION": REGION}, imports=imports)

    # then
    assert_only_the_asset_was_used(result, asset)
    assert not any(asset.rglob("__pycache__"))
    for module in imports:
        assert Path(result["files"][module]).is_relative_to(asset), module
