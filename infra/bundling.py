"""Lambda assets built without Docker: a handler, the core modules it imports, its wheels.

Each function's asset is a directory holding ``handler.py`` at the top (Lambda handler
``handler.handler``), the modules of ``mastodon_s3_sync`` that the handler can import
(found by following its imports, so the CLI, the sandbox and the demo stay out), and the
function's third-party dependencies installed by pip from binary wheels for the Lambda
platform (Python 3.12 on Amazon Linux 2023, arm64 or x86_64). Requirement specs are not
repeated here: each function names its distributions and the specs are read from
``pyproject.toml``.

Builds are cached under ``.cdk-assets/<function>-<architecture>-<hash>/``, keyed by
everything that goes in (sources, specs, platform, this module), and appear there by an
atomic rename, so an interrupted build leaves nothing that looks finished. A cached
build keeps the versions pip chose when it was made; delete ``.cdk-assets`` to pick up
newer releases within the specs.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ARCHITECTURES",
    "CACHE_DIR",
    "DISTRIBUTIONS",
    "FUNCTIONS",
    "HANDLER",
    "NOT_REACHED",
    "PYTHON_VERSION",
    "BundleError",
    "Sources",
    "build_asset",
    "platform_tags",
    "requirements",
    "sources",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
SRC_DIR = REPO_ROOT / "src"
FUNCTIONS_DIR = REPO_ROOT / "functions"
PYPROJECT = REPO_ROOT / "pyproject.toml"
CACHE_DIR = REPO_ROOT / ".cdk-assets"
"""Where built assets are kept (it ignores itself for git: see :func:`_cache_root`)."""

CORE_PACKAGE = "mastodon_s3_sync"
FUNCTIONS = ("enumerator", "copier")
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

PROJECT_EXTRA = "lambda"
"""The pyproject extra that holds what the handlers add to the core."""

DISTRIBUTIONS: Mapping[str, tuple[str, ...]] = {
    # The core's modules import boto3 (s3, fanout) and pg8000 (catalog, database) at module
    # level, so both functions need them even though only the enumerator opens a database.
    # boto3 is bundled rather than taken from the runtime: the code needs botocore >= 1.36
    # (request_checksum_calculation), and the SDK the runtime includes is whatever AWS last
    # put there; the asset's copy comes first on sys.path (/var/task).
    # Both read their settings through the settings model (pydantic-settings, with pydantic
    # and pydantic-core as a binary wheel).
    "copier": ("boto3", "pg8000", "aws-lambda-powertools", "pydantic-settings"),
    # The enumerator also reaches the database through an SSH bastion (tunnel: paramiko,
    # with cryptography, bcrypt and PyNaCl as binary wheels).
    "enumerator": ("boto3", "pg8000", "aws-lambda-powertools", "paramiko", "pydantic-settings"),
}
"""Distributions each function installs; their specs come from ``pyproject.toml``."""

NOT_REACHED: Mapping[str, frozenset[str]] = {
    # The copier never opens a database connection, the only way to the SSH tunnel, which
    # database.py imports inside open_database: no tunnel module, no paramiko.
    "copier": frozenset({f"{CORE_PACKAGE}.tunnel"}),
}
"""Core modules a function imports only inside functions it never calls (see :func:`sources`)."""

_DIST_INFO_CLUTTER = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")
_PIP_OUTPUT_TAIL_LINES = 25
_PIP_LINE_CHARS = 300
_TMP_PREFIX = ".tmp-"


class BundleError(RuntimeError):
    """An asset could not be built; the message says what to fix."""


@dataclass(frozen=True)
class Sources:
    """What a function's asset takes from the repository, and what it imports from outside."""

    files: Mapping[str, Path]
    """Path in the asset (POSIX, relative) -> file in the repository."""
    third_party: frozenset[str]
    """Top-level modules imported (outside ``if TYPE_CHECKING``) that pip must provide."""


def _check_function(function: str) -> None:
    if function not in FUNCTIONS:
        raise ValueError(f"function must be one of {', '.join(FUNCTIONS)}, not {function!r}")


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {', '.join(ARCHITECTURES)}, not {architecture!r}"
        )


def _canonical(name: str) -> str:
    """A distribution name normalized as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _spec_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    if match is None:
        raise BundleError(f"{PYPROJECT.name}: cannot read the requirement {spec!r}")
    return _canonical(match.group(1))


def requirements(function: str) -> tuple[str, ...]:
    """The pip requirement specs of ``function``, as ``pyproject.toml`` declares them."""
    _check_function(function)
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    declared = [
        *project.get("dependencies", []),
        *project.get("optional-dependencies", {}).get(PROJECT_EXTRA, []),
    ]
    by_name = {_spec_name(spec): spec for spec in declared}
    specs = []
    for name in DISTRIBUTIONS[function]:
        spec = by_name.get(_canonical(name))
        if spec is None:
            raise BundleError(
                f"the {function} function needs {name!r}, which {PYPROJECT.name} declares "
                f"neither in [project] dependencies nor in the {PROJECT_EXTRA!r} extra"
            )
        specs.append(spec)
    return tuple(specs)


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


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@dataclass(frozen=True)
class _Import:
    name: str
    """Absolute module name; for ``from m import n`` also ``m.n`` (maybe not a module)."""
    required: bool
    """False for ``m.n`` from ``from m import n``: a submodule, or just an attribute of ``m``."""
    deferred: bool
    """Inside a function body: runs when called, not when the module is imported."""


def _imports(node: ast.AST, deferred: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Each import statement below ``node`` and whether it is deferred; typing-only ones
    (under ``if TYPE_CHECKING``) are left out."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            runs: list[ast.stmt] | list[ast.AST] = child.orelse
        else:
            runs = [child]
        for statement in runs:
            if isinstance(statement, ast.Import | ast.ImportFrom):
                yield statement, deferred
            inner = isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from _imports(statement, deferred or inner)


def _core_file(module: str) -> Path | None:
    """The source file of a core module (``mastodon_s3_sync.x``), if it exists."""
    base = SRC_DIR.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imported(module: str, path: Path) -> Iterator[_Import]:
    """What the module ``module`` (source ``path``) imports, as absolute names."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node, deferred in _imports(tree, deferred=False):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _Import(alias.name, required=True, deferred=deferred)
            continue
        if node.level:
            parts = package.split(".") if package else []
            keep = len(parts) - (node.level - 1)
            if keep < 1:
                raise BundleError(f"{path}: relative import outside of a package")
            base = ".".join(parts[:keep])
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        yield _Import(target, required=True, deferred=deferred)
        for alias in node.names:
            yield _Import(f"{target}.{alias.name}", required=False, deferred=deferred)


def sources(function: str) -> Sources:
    """The handler and the core modules it can import (transitively), and what else it imports.

    Imports inside functions count (they may run), except those of :data:`NOT_REACHED`;
    imports under ``if TYPE_CHECKING`` do not. A package's ``__init__`` comes with each
    of its modules.
    """
    _check_function(function)
    handler = FUNCTIONS_DIR / function / "handler.py"
    if not handler.is_file():
        raise BundleError(f"{handler} does not exist")
    not_reached = NOT_REACHED.get(function, frozenset())
    files: dict[str, Path] = {"handler.py": handler}
    third_party: set[str] = set()
    pending: list[tuple[str, Path]] = [("handler", handler)]
    seen: set[str] = set()
    while pending:
        module, path = pending.pop()
        for imported in _imported(module, path):
            top = imported.name.partition(".")[0]
            if top != CORE_PACKAGE:
                if imported.required and top not in sys.stdlib_module_names | {"__future__"}:
                    third_party.add(top)
                continue
            parts = imported.name.split(".")
            for prefix in (".".join(parts[:n]) for n in range(1, len(parts) + 1)):
                if prefix in not_reached:
                    if not imported.deferred:
                        raise BundleError(
                            f"{path} imports {prefix} when it is imported, but "
                            f"NOT_REACHED says the {function} function never imports it"
                        )
                    break
                if prefix in seen:
                    continue
                found = _core_file(prefix)
                if found is None:
                    if imported.required or prefix != imported.name:
                        raise BundleError(f"{path} imports {imported.name}: no such module")
                    continue
                seen.add(prefix)
                files[found.relative_to(SRC_DIR).as_posix()] = found
                pending.append((prefix, found))
    return Sources(files=dict(sorted(files.items())), third_party=frozenset(third_party))


def _cache_key(function: str, architecture: str, specs: Sequence[str], found: Sources) -> str:
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("function", function.encode())
    add("architecture", architecture.encode())
    add("python", PYTHON_VERSION.encode())
    add("platforms", " ".join(platform_tags(architecture)).encode())
    add("requirements", "\n".join(specs).encode())
    # How the asset is made is part of what it is: a change here rebuilds.
    add("bundler", Path(__file__).read_bytes())
    for name, path in found.files.items():
        add(f"file:{name}", path.read_bytes())
    return digest.hexdigest()[:16]


def _cache_root(cache_dir: Path) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    ignore = cache_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Built Lambda assets (infra/bundling.py); never committed.\n*\n")
    return cache_dir


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(cache_dir: Path, function: str, architecture: str, keep: Path) -> None:
    """Drop older builds of this function and architecture, and dead builds' temp dirs."""
    for entry in cache_dir.iterdir():
        if entry.name.startswith(_TMP_PREFIX):
            pid = entry.name[len(_TMP_PREFIX) :].partition("-")[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(f"{function}-{architecture}-") and entry != keep:
            shutil.rmtree(entry, ignore_errors=True)


def _pip_install(target: Path, architecture: str, specs: Sequence[str]) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        "--no-compile",
        "--no-input",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
    ]
    for tag in platform_tags(architecture):
        command += ["--platform", tag]
    command += list(specs)
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        raise BundleError(f"could not run pip with {sys.executable}: {error}") from error
    if done.returncode == 0:
        return
    output = (done.stdout + done.stderr).strip().splitlines()
    failed = re.search(r"satisfies the requirement (\S+)", "\n".join(output))
    what = f"requirement {failed.group(1)}" if failed else f"requirements {', '.join(specs)}"
    # Lines are shortened: "(from versions: ...)" can list every release ever made.
    tail = "\n".join(
        line if len(line) <= _PIP_LINE_CHARS else f"{line[:_PIP_LINE_CHARS]}…"
        for line in output[-_PIP_OUTPUT_TAIL_LINES:]
    )
    raise BundleError(
        f"pip could not install {what} for the Lambda platform (python{PYTHON_VERSION}, "
        f"{architecture}, binary wheels only). The package index (PyPI or the one pip is "
        f"configured with) must be reachable, and every dependency must publish a wheel for "
        f"this platform. pip said:\n{tail}"
    )


def _remove_bytecode(target: Path) -> None:
    """No ``__pycache__``: bytecode of another Python than the runtime's is dead weight."""
    for cache in list(target.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


def _strip(target: Path) -> None:
    """Remove what the runtime never reads: scripts, bytecode, install bookkeeping."""
    shutil.rmtree(target / "bin", ignore_errors=True)
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


def _provides(target: Path, module: str) -> bool:
    return (
        (target / module).is_dir()
        or (target / f"{module}.py").is_file()
        or any(target.glob(f"{module}.*.so"))
    )


def _populate(
    target: Path, function: str, architecture: str, specs: Sequence[str], found: Sources
) -> None:
    _pip_install(target, architecture, specs)
    for name, path in found.files.items():
        destination = target / name
        if destination.exists():
            raise BundleError(f"a dependency of {function} also installs {name}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
    _strip(target)
    _make_readable(target)
    missing = sorted(module for module in found.third_party if not _provides(target, module))
    if missing:
        raise BundleError(
            f"the {function} function imports {', '.join(missing)}, which none of its "
            f"requirements ({', '.join(specs)}) installs; add the distribution to "
            f"DISTRIBUTIONS[{function!r}] in {Path(__file__).name} (and to {PYPROJECT.name})"
        )


def build_asset(function: str, architecture: str, *, cache_dir: Path = CACHE_DIR) -> Path:
    """The asset directory of ``function`` for ``architecture``, built unless cached.

    Raises :class:`BundleError` when pip or the sources fail, ``ValueError`` for an
    unknown function or architecture.
    """
    _check_function(function)
    _check_architecture(architecture)
    specs = requirements(function)
    found = sources(function)
    key = _cache_key(function, architecture, specs, found)
    root = _cache_root(cache_dir)
    final = root / f"{function}-{architecture}-{key}"
    if final.is_dir():
        _remove_bytecode(final)  # in case the asset was run in place without -B
        return final
    staging = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=root))
    try:
        _populate(staging, function, architecture, specs, found)
        try:
            staging.rename(final)
        except OSError:
            if not final.is_dir():  # not another process that finished the same build first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_leftovers(root, function, architecture, keep=final)
    return final
