"""The Lambda assets: what pyproject.toml says each function installs, what each asset
holds, and what it is built for.

Assets are the project's wheel installed by pip with each function's extra, at the versions
of the function's lock file, for the Lambda platform (the package index must be reachable the
first time; later runs reuse ``.cdk-assets``). That they run on their own:
test_bundled_code_runs.py.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import tomllib
import zipfile
from collections.abc import Iterator
from email.parser import HeaderParser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra.bundling import (
    ARCHITECTURES,
    FUNCTIONS,
    PYPROJECT,
    PYTHON_VERSION,
    REPO_ROOT,
    SRC_DIR,
    BundleError,
    build_asset,
    project_wheel,
)
from tests.support.distributions import (
    PROJECT,
    PROJECT_NAME,
    SSH_BINARIES,
    declared_installs,
    dist_infos,
)

PACKAGE = "mastodon_s3_sync"
MIB = 1024 * 1024
MAX_UNPACKED_MIB = {"copier": 25, "enumerator": 50}
"""Sane ceilings, well under Lambda's 250 MB (botocore's trimmed models are ~2 MiB)."""
ELF_MACHINES = {"x86_64": 62, "arm64": 183}  # e_machine: EM_X86_64, EM_AARCH64
BOTH_NEED = {"aws-lambda-powertools", "boto3", "pydantic", "python-dotenv"}
DATABASE_AND_SSH = {"pg8000", "paramiko"}
NOT_BUNDLED = ("tests", "functions", "infra", "moto", "tqdm", "pytest", "mypy", "ruff")


def target_environment(architecture: str, extra: str = "") -> dict[str, str]:
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
        "extra": extra,
    }


def files_under(root: Path) -> Iterator[Path]:
    """Every file below ``root``."""
    return (path for path in root.rglob("*") if path.is_file())


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


def package_files(root: Path) -> dict[str, bytes]:
    """The package's files below ``root`` (``src/`` or an asset), without bytecode."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in files_under(root / PACKAGE)
        if "__pycache__" not in path.parts
    }


def holding_the_project_wheel(cache_dir: Path) -> Path:
    """``cache_dir`` with a copy of the project's wheel from the default cache, so that a test
    building an asset there builds no wheel (test_the_project_wheel... builds one)."""
    wheel = project_wheel()
    shutil.copytree(wheel.parent, cache_dir / wheel.parent.name)
    return cache_dir


def test_pyproject_says_each_requirement_once_and_what_each_function_installs() -> None:
    # given every requirement pyproject.toml declares, but its extras' references to itself
    extras = PROJECT["optional-dependencies"]
    specs = [*PROJECT["dependencies"], *(spec for specs in extras.values() for spec in specs)]
    names = [canonicalize_name(Requirement(spec).name) for spec in specs]
    named = [name for name in names if name != PROJECT_NAME]

    # then each distribution is named once, and each extra installs what its users need
    assert len(named) == len(set(named)), sorted(name for name in named if named.count(name) > 1)
    assert set(FUNCTIONS) <= set(extras)
    copier, enumerator = declared_installs("copier"), declared_installs("enumerator")
    assert copier & enumerator >= BOTH_NEED
    assert not (DATABASE_AND_SSH | SSH_BINARIES) & copier
    assert enumerator >= DATABASE_AND_SSH
    assert declared_installs("cli") >= DATABASE_AND_SSH | {"tqdm"}
    # the development install (make setup) installs everything any extra does
    assert set().union(*map(declared_installs, extras)) <= declared_installs("dev")


def test_the_project_wheel_holds_the_package_and_its_build_leaves_no_trace(
    tmp_path: Path,
) -> None:
    # given the package's sources (read before the build, which takes seconds, as the build
    # reads them), and the editable install's metadata, which an in-place build would rewrite
    source = package_files(SRC_DIR)
    egg_info = SRC_DIR / f"{PROJECT_NAME.replace('-', '_')}.egg-info"
    stamps = sorted((path.name, path.stat().st_mtime_ns) for path in egg_info.glob("*"))

    # when the wheel is built from scratch
    wheel = project_wheel(tmp_path)

    # then it holds the package's sources as they are and the extras of the functions
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        packaged = {name: archive.read(name) for name in names if name.startswith(f"{PACKAGE}/")}
        [metadata] = [archive.read(name) for name in names if name.endswith(".dist-info/METADATA")]
    assert sorted(packaged) == sorted(source)
    assert [name for name in packaged if packaged[name] != source[name]] == []
    headers = HeaderParser().parsestr(metadata.decode())
    assert headers["Name"] == PROJECT["name"]
    assert set(FUNCTIONS) <= set(headers.get_all("Provides-Extra") or [])
    # and the repository got no build output
    assert not (REPO_ROOT / "build").exists()
    assert sorted((path.name, path.stat().st_mtime_ns) for path in egg_info.glob("*")) == stamps
    assert project_wheel(tmp_path) == wheel  # and it is built once


def test_unknown_function_or_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="function must be one of"):
        build_asset("worker", "arm64")
    with pytest.raises(ValueError, match="architecture must be one of"):
        build_asset("copier", "aarch64")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_asset_holds_the_handler_and_the_project_with_its_extra_only(
    function: str, architecture: str
) -> None:
    # given the package's sources (read before the build, which takes seconds, as it reads them)
    source = package_files(SRC_DIR)

    # when
    asset = build_asset(function, architecture)

    # then the handler at the top, the package as in src/, and the extra's distributions
    assert asset.is_relative_to(REPO_ROOT / ".cdk-assets")
    assert asset.name.startswith(f"{function}-{architecture}-")
    assert (asset / "handler.py").read_bytes() == (
        REPO_ROOT / "functions" / function / "handler.py"
    ).read_bytes()
    bundled = package_files(asset)
    assert sorted(bundled) == sorted(source)
    assert [name for name in bundled if bundled[name] != source[name]] == []
    installed = set(dist_infos(asset))
    top = {path.name for path in asset.iterdir()}
    assert {PROJECT_NAME, *BOTH_NEED, "botocore", "tomli-w"} <= installed
    assert {"handler.py", PACKAGE, "aws_lambda_powertools", "boto3", "pydantic"} <= top
    assert not top & set(NOT_BUNDLED)
    assert not any(asset.rglob("__pycache__"))
    assert not any(asset.glob("*.dist-info/RECORD"))
    assert not (asset / "bin").exists()
    ssh_modules = {"paramiko", "cryptography", "bcrypt", "nacl"}
    if function == "enumerator":
        assert installed >= DATABASE_AND_SSH | SSH_BINARIES
        assert {"pg8000", *ssh_modules} <= top
    else:
        assert not (DATABASE_AND_SSH | SSH_BINARIES) & installed
        assert not ({"pg8000", "scramp", *ssh_modules}) & top


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
    # given an asset (pip evaluated markers on this machine's Python, for the runtime's)
    asset = build_asset(function, architecture)
    installed = dist_infos(asset)

    # then what the project with the function's extra requires on python3.12 and the
    # architecture is there, and so is what that requires, and so on
    pending: list[tuple[str, frozenset[str]]] = [(PROJECT_NAME, frozenset({function}))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        assert name in installed, (name, extras)
        metadata = (installed[name] / "METADATA").read_text(encoding="utf-8")
        for line in HeaderParser().parsestr(metadata).get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(
                marker.evaluate(target_environment(architecture, extra)) for extra in ("", *extras)
            ):
                required = canonicalize_name(requirement.name)
                pending.append((required, frozenset(requirement.extras)))
    names = {name for name, _extras in seen}
    assert names >= BOTH_NEED
    assert names == set(installed)  # and nothing else


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
    # given a built asset (asked for twice: the sources may change while it builds)
    build_asset("copier", "x86_64")
    first = build_asset("copier", "x86_64")
    identity = (first.stat().st_ino, (first / "handler.py").stat().st_mtime_ns)

    # when it is asked for again
    again = build_asset("copier", "x86_64")

    # then it is the same directory, not rebuilt
    assert again == first
    assert (again.stat().st_ino, (again / "handler.py").stat().st_mtime_ns) == identity


def test_an_older_build_goes_once_unused(tmp_path: Path) -> None:
    # given older builds: of the copier for arm64, one unused for an hour and one in use
    # (by a synth of other sources, say); of the enumerator, one unused for an hour
    unused, in_use = tmp_path / "copier-arm64-0000", tmp_path / "copier-arm64-1111"
    other_function = tmp_path / "enumerator-arm64-0000"
    for build in (unused, in_use, other_function):
        (build / "handler.py").parent.mkdir(parents=True)
    an_hour_ago = time.time() - 3600
    for build in (unused, other_function):
        os.utime(build, (an_hour_ago, an_hour_ago))

    # when the copier for arm64 is built
    asset = build_asset("copier", "arm64", cache_dir=holding_the_project_wheel(tmp_path))

    # then only the unused older build of the same function and architecture is gone
    wheel = project_wheel(tmp_path)
    expected = [".gitignore", asset.name, in_use.name, other_function.name, wheel.parent.name]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(expected)


def test_a_dependency_pip_cannot_install_is_named_and_no_asset_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a constraint no release of boto3 meets (as when a release has no wheel for Lambda)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("boto3<1\n", encoding="utf-8")
    monkeypatch.setenv("PIP_CONSTRAINT", str(constraints))
    cache = holding_the_project_wheel(tmp_path / "cache")

    # when
    with pytest.raises(BundleError) as raised:
        build_asset("copier", "arm64", cache_dir=cache)

    # then the error says what pip could not install, from which lock, and what to do; and
    # only the wheel is kept
    message = str(raised.value)
    assert re.search(r"could not install \S+/mastodon_s3_sync-[^/]+\.whl\[copier\]", message)
    assert "from infra/lambda-requirements/copier.txt" in message
    assert "run `make lock-lambda`" in message
    assert "boto3==" in message  # what pip said: the lock's pin
    assert [path.name.partition("-")[0] for path in sorted(cache.iterdir())] == [
        ".gitignore",
        "wheel",
    ]


def test_without_a_package_index_the_error_says_so_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given pip may use no package index (the wheel's build backend comes from one)
    monkeypatch.setenv("PIP_NO_INDEX", "1")

    # when
    with pytest.raises(BundleError) as raised:
        build_asset("copier", "arm64", cache_dir=tmp_path)

    # then the error says the index must be reachable and what was not found there, and
    # nothing half-built is left
    message = str(raised.value)
    assert "could not build the project's wheel" in message
    assert "must be reachable" in message
    build_backend = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["build-system"]
    assert any(f"(no release satisfies {spec})" in message for spec in build_backend["requires"])
    assert sorted(path.name for path in tmp_path.iterdir()) == [".gitignore"]
