"""Lambda assets built without Docker: the project's wheel, installed with each function's extra.

Each function's asset is a directory holding ``handler.py`` at the top (Lambda handler
``handler.handler``) and what ``pip install 'mastodon-s3-sync[<function>]'`` installs, from
binary wheels for the Lambda platform (Python 3.12 on Amazon Linux 2023, arm64 or x86_64).
What a function needs is said once, by the extra of its name in ``pyproject.toml``: the
copier's brings neither a database driver nor SSH. The versions are those of the function's
lock file (``infra/lambda-requirements/<function>.txt``, written by ``make lock-lambda``:
see :mod:`infra.lambda_lock`), installed with ``--require-hashes``: an asset built today
and one built next year hold the same files. botocore's service models are trimmed to the
services the functions call (:data:`BOTOCORE_SERVICES`).

The project's wheel is built once per content of what it is built from (``pyproject.toml``,
the README, ``src/``), and each asset once per wheel, handler, platform and this module.
Both are kept under ``.cdk-assets/`` and appear there by an atomic rename, so an
interrupted build leaves nothing that looks finished; older builds go once unused for a
while. A new lock file makes new assets.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

__all__ = [
    "ARCHITECTURES",
    "BOTOCORE_SERVICES",
    "CACHE_DIR",
    "FUNCTIONS",
    "HANDLER",
    "LOCK_DIR",
    "PYTHON_VERSION",
    "BundleError",
    "build_asset",
    "lock_file",
    "platform_arguments",
    "platform_tags",
    "project_wheel",
    "run_pip",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
SRC_DIR = REPO_ROOT / "src"
FUNCTIONS_DIR = REPO_ROOT / "functions"
PYPROJECT = REPO_ROOT / "pyproject.toml"
WHEEL_INPUTS = ("pyproject.toml", "README.md")
"""Files beside ``src/`` that the wheel is built from (the README is its description)."""
CACHE_DIR = REPO_ROOT / ".cdk-assets"
"""Where built wheels and assets are kept (it ignores itself for git: see :func:`_cache_root`)."""
LOCK_DIR = REPO_ROOT / "infra" / "lambda-requirements"
"""The functions' lock files, checked in: ``<function>.txt``."""

FUNCTIONS = ("enumerator", "copier")
"""The Lambda functions; each installs the project with the ``pyproject.toml`` extra of its name."""
ARCHITECTURES = ("arm64", "x86_64")
HANDLER = "handler.handler"
"""The Lambda handler string of every asset: ``handler.py`` at the top, function ``handler``."""

PYTHON_VERSION = "3.12"
"""The Lambda runtime the assets are built for (``python3.12``)."""
RUNTIME_GLIBC_MINOR = 34
"""The python3.12 runtime runs on Amazon Linux 2023, whose glibc is 2.34: any manylinux
wheel up to ``manylinux_2_34`` loads there."""
_OLDEST_GLIBC_MINOR = 17  # manylinux2014, the oldest tag a current wheel carries
_MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}

BOTOCORE_SERVICES = {
    "s3": "the copier reads and writes the buckets (storage/s3.py)",
    "sqs": "the enumerator sends the copy queue's messages (transport/sqs.py)",
    "lambda": "the enumerator invokes itself to continue (functions/enumerator/handler.py)",
    "secretsmanager": "the database, bastion and provider secrets (Powertools' get_secret)",
}
"""The services whose models stay in botocore/data (of ~19 MiB for 400+ services); a client
of another fails with ``UnknownServiceError``. No STS: Lambda's credentials are in the
environment. botocore/data's own files (endpoints, partitions, retries) stay."""

_NOT_WHEEL_INPUTS = re.compile(r"(^|/)(__pycache__|[^/]*\.egg-info)(/|$)|\.py[co]$")
"""Files below ``src/`` that are no source: bytecode, the editable install's metadata."""
_DIST_INFO_CLUTTER = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")
_PIP_OUTPUT_TAIL_LINES = 25
_PIP_LINE_CHARS = 300
_TMP_PREFIX = ".tmp-"
_UNUSED_SECONDS = 600
"""An older build is removed once unused this long: a synth of other sources, running at the
same time in the same tree, may still be reading it."""
_WHEEL_PREFIX = "wheel-"


class BundleError(RuntimeError):
    """An asset could not be built; the message says what to fix."""


def _check_function(function: str) -> None:
    if function not in FUNCTIONS:
        raise ValueError(f"function must be one of {', '.join(FUNCTIONS)}, not {function!r}")


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {', '.join(ARCHITECTURES)}, not {architecture!r}"
        )


def _extra(function: str) -> str:
    """The function's extra, checked: pip only warns about an extra a project lacks."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    if function not in project.get("optional-dependencies", {}):
        raise BundleError(
            f"{PYPROJECT.name} has no extra {function!r}: [project.optional-dependencies] "
            f"must say what the {function} function installs besides the core"
        )
    return function


def platform_tags(architecture: str) -> tuple[str, ...]:
    """pip ``--platform`` tags of wheels that load in the python3.12 runtime, best first."""
    _check_architecture(architecture)
    machine = _MACHINES[architecture]
    # pip does not widen a manylinux_2_X tag to older glibc versions by itself.
    return (
        *(
            f"manylinux_2_{minor}_{machine}"
            for minor in range(RUNTIME_GLIBC_MINOR, _OLDEST_GLIBC_MINOR - 1, -1)
        ),
        f"manylinux2014_{machine}",
    )


def _wheel_inputs() -> dict[str, Path]:
    """What the project's wheel is built from: path in the project (POSIX) -> file."""
    files = {name: REPO_ROOT / name for name in WHEEL_INPUTS}
    for path in sorted(SRC_DIR.rglob("*")):
        name = path.relative_to(REPO_ROOT).as_posix()
        if path.is_file() and not _NOT_WHEEL_INPUTS.search(name):
            files[name] = path
    return files


def _digest(parts: Iterable[tuple[str, bytes]]) -> str:
    """A short SHA-256 of labelled byte strings (lengths included: no two inputs collide)."""
    digest = hashlib.sha256()
    for label, data in parts:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def _cache_root(cache_dir: Path) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    ignore = cache_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Built Lambda assets (infra/bundling.py); never committed.\n*\n")
    return cache_dir


def _used(build: Path) -> Path:
    """``build``, its modification time set to now: the time of its last use."""
    os.utime(build)
    return build


@contextlib.contextmanager
def _building(root: Path, final: Path) -> Iterator[Path]:
    """A fresh directory below ``root`` that becomes ``final`` when the block succeeds."""
    staging = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=root))
    try:
        yield staging
        try:
            staging.rename(final)
        except OSError:
            if not final.is_dir():  # not another process that finished the same build first
                raise
        _used(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(root: Path, keep: Sequence[Path]) -> None:
    """Drop unused other builds of the same kind as ``keep`` (the name up to its hash), and
    the temporary directories of builds whose process is gone."""
    kinds = {path.name.rpartition("-")[0] for path in keep}
    unused_since = time.time() - _UNUSED_SECONDS
    for entry in root.iterdir():
        if entry.name.startswith(_TMP_PREFIX):
            pid = entry.name[len(_TMP_PREFIX) :].partition("-")[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
        elif (
            entry.name.rpartition("-")[0] in kinds
            and entry not in keep
            and entry.stat().st_mtime < unused_since
        ):
            shutil.rmtree(entry, ignore_errors=True)


def run_pip(arguments: Sequence[str], failed: str) -> None:
    """Run pip; on failure a :class:`BundleError` that starts with ``failed`` and ends with
    the tail of what pip said."""
    command = [sys.executable, "-m", "pip", *arguments, "--no-input", "--disable-pip-version-check"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        raise BundleError(f"could not run pip with {sys.executable}: {error}") from error
    if done.returncode == 0:
        return
    output = (done.stdout + done.stderr).strip().splitlines()
    # Lines are shortened: "(from versions: ...)" can list every release ever made.
    tail = "\n".join(
        line if len(line) <= _PIP_LINE_CHARS else f"{line[:_PIP_LINE_CHARS]}…"
        for line in output[-_PIP_OUTPUT_TAIL_LINES:]
    )
    unsatisfied = re.search(r"satisfies the requirement (\S+)", "\n".join(output))
    what = f" (no release satisfies {unsatisfied.group(1)})" if unsatisfied else ""
    raise BundleError(f"{failed}{what}. pip said:\n{tail}")


def project_wheel(cache_dir: Path = CACHE_DIR) -> Path:
    """The project's wheel (no dependencies), built unless one of the same sources is cached.

    It is built from a copy of its inputs, so the build leaves nothing in the repository.
    """
    root = _cache_root(cache_dir)
    inputs = _wheel_inputs()
    key = _digest(
        [
            # How the wheel is made is part of what it is: a change here rebuilds.
            ("bundler", Path(__file__).read_bytes()),
            *((f"file:{name}", path.read_bytes()) for name, path in inputs.items()),
        ]
    )
    final = root / f"{_WHEEL_PREFIX}{key}"
    if final.is_dir():
        _used(final)
    else:
        with (
            tempfile.TemporaryDirectory(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=root) as tree,
            _building(root, final) as staging,
        ):
            for name, path in inputs.items():
                copy = Path(tree, name)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, copy)
            run_pip(
                ["wheel", "--no-deps", "--wheel-dir", str(staging), "--progress-bar", "off", tree],
                f"pip could not build the project's wheel from {REPO_ROOT}: its build backend "
                f"comes from the package index (PyPI or the one pip is configured with), which "
                f"must be reachable",
            )
    wheels = sorted(final.glob("*.whl"))
    if len(wheels) != 1:
        raise BundleError(f"{final} should hold one wheel, not {len(wheels)}: delete it")
    return wheels[0]


def lock_file(function: str) -> Path:
    """The lock file of ``function``: its distributions pinned, with their wheels' hashes."""
    _check_function(function)
    return LOCK_DIR / f"{function}.txt"


def platform_arguments(architecture: str) -> list[str]:
    """pip options that pick binary wheels for the Lambda platform of ``architecture``."""
    arguments = ["--implementation", "cp", "--python-version", PYTHON_VERSION]
    arguments += ["--only-binary=:all:", "--progress-bar", "off"]
    for tag in platform_tags(architecture):
        arguments += ["--platform", tag]
    return arguments


def _pip_install(target: Path, architecture: str, wheel: Path, extra: str, lock: Path) -> None:
    """Install the project's wheel with ``extra``, its dependencies from ``lock`` only: with
    ``--require-hashes`` pip refuses what the lock does not pin or a file of another hash (the
    wheel's hash is computed here: it changes with the sources)."""
    requirement = f"{wheel}[{extra}]"
    wheel_hash = hashlib.sha256(wheel.read_bytes()).hexdigest()
    prefix = f"{_TMP_PREFIX}{os.getpid()}-"  # removed as a leftover if this process dies
    with tempfile.TemporaryDirectory(prefix=prefix, dir=target.parent) as work:
        requirements = Path(work, "requirements.txt")
        requirements.write_text(f"-r {lock}\n{requirement} --hash=sha256:{wheel_hash}\n")
        run_pip(
            [
                "install",
                "--target",
                str(target),
                *platform_arguments(architecture),
                "--no-compile",
                "--require-hashes",
                "-r",
                str(requirements),
            ],
            f"pip could not install {requirement} from {lock.relative_to(REPO_ROOT)} for the "
            f"Lambda platform (python{PYTHON_VERSION}, {architecture}, binary wheels only). "
            f"The package index (PyPI or the one pip is configured with) must be reachable; "
            f"if pyproject.toml's dependencies changed, run `make lock-lambda`",
        )


def _trim_botocore(target: Path) -> None:
    """Keep the models of :data:`BOTOCORE_SERVICES` only, and botocore/data's own files."""
    data = target / "botocore" / "data"
    missing = [service for service in BOTOCORE_SERVICES if not (data / service).is_dir()]
    if missing:
        raise BundleError(f"{data} has no model of {', '.join(missing)}: has botocore changed?")
    for entry in data.iterdir():
        if entry.is_dir() and entry.name not in BOTOCORE_SERVICES:
            shutil.rmtree(entry)


def _remove_bytecode(target: Path) -> None:
    """No ``__pycache__``: bytecode of another Python than the runtime's is dead weight."""
    for cache in list(target.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


def _strip(target: Path) -> None:
    """Remove what the runtime never reads: scripts, bytecode, install bookkeeping, the
    models of services the functions do not call."""
    shutil.rmtree(target / "bin", ignore_errors=True)
    _trim_botocore(target)
    _remove_bytecode(target)
    for dist_info in target.glob("*.dist-info"):
        for name in _DIST_INFO_CLUTTER:
            (dist_info / name).unlink(missing_ok=True)


def _make_readable(target: Path) -> None:
    """Directories 0755, files 0644 (0755 if executable): Lambda runs the code as another
    user, and a restrictive umask must not make the deployed files unreadable."""
    for directory, _dirs, files in os.walk(target):
        os.chmod(directory, 0o755)  # noqa: S103 (the function's code must be world-readable)
        for name in files:
            path = os.path.join(directory, name)
            os.chmod(path, 0o755 if os.stat(path).st_mode & 0o111 else 0o644)


def build_asset(function: str, architecture: str, *, cache_dir: Path = CACHE_DIR) -> Path:
    """The asset directory of ``function`` for ``architecture``, built unless cached.

    Raises :class:`BundleError` when pip or the sources fail, ``ValueError`` for an
    unknown function or architecture.
    """
    _check_function(function)
    _check_architecture(architecture)
    handler = FUNCTIONS_DIR / function / "handler.py"
    if not handler.is_file():
        raise BundleError(f"{handler} does not exist")
    extra = _extra(function)
    lock = lock_file(function)
    if not lock.is_file():
        raise BundleError(f"{lock} does not exist: run `make lock-lambda`")
    root = _cache_root(cache_dir)
    wheel = project_wheel(root)
    key = _digest(
        [
            ("function", function.encode()),
            ("architecture", architecture.encode()),
            ("python", PYTHON_VERSION.encode()),
            ("platforms", " ".join(platform_tags(architecture)).encode()),
            ("wheel", wheel.relative_to(root).as_posix().encode()),  # named by its inputs
            ("handler", handler.read_bytes()),
            ("lock", lock.read_bytes()),
            ("bundler", Path(__file__).read_bytes()),
        ]
    )
    final = root / f"{function}-{architecture}-{key}"
    if final.is_dir():
        _remove_bytecode(final)  # in case the asset was run in place without -B
        return _used(final)
    with _building(root, final) as staging:
        _pip_install(staging, architecture, wheel, extra, lock)
        if (staging / handler.name).exists():
            raise BundleError(f"a dependency of the {function} function installs {handler.name}")
        shutil.copyfile(handler, staging / handler.name)
        _strip(staging)
        _make_readable(staging)
    _remove_leftovers(root, keep=[final, wheel.parent])
    return final
