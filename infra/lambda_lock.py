"""Write the Lambda functions' lock files: ``make lock-lambda`` (``python -m infra.lambda_lock``).

For each function, pip resolves the project's wheel with the function's extra on the Lambda
platform of each architecture (``pip install --dry-run --report``, nothing installed), and
``infra/lambda-requirements/<function>.txt`` pins every distribution it chose with the hash
of each wheel chosen: one for a pure-Python wheel, one per architecture for a binary one.
infra/bundling.py installs from these files with ``--require-hashes``. Rerun after changing
``pyproject.toml``'s dependencies, or to take newer releases; then commit the files.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from packaging.utils import canonicalize_name

from .bundling import (
    ARCHITECTURES,
    FUNCTIONS,
    PYTHON_VERSION,
    REPO_ROOT,
    BundleError,
    lock_file,
    platform_arguments,
    project_wheel,
    run_pip,
)

__all__ = ["main", "resolve", "write_lock"]

Pins = dict[str, tuple[str, set[str]]]
"""Distribution (canonical name) -> (version, sha256 hashes of its chosen wheels)."""


def resolve(wheel: Path, function: str, architecture: str) -> Pins:
    """What pip would install for ``wheel[function]`` on the Lambda platform, but the wheel."""
    with tempfile.TemporaryDirectory() as work:
        report = Path(work, "report.json")
        run_pip(
            [
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--report",
                str(report),
                *platform_arguments(architecture),
                f"{wheel}[{function}]",
            ],
            f"pip could not resolve the {function} function's dependencies for {architecture}",
        )
        installs = json.loads(report.read_text(encoding="utf-8"))["install"]
    project = canonicalize_name(wheel.name.partition("-")[0])
    pins: Pins = {}
    for install in installs:
        name = canonicalize_name(install["metadata"]["name"])
        if name == project:
            continue
        digest = install["download_info"].get("archive_info", {}).get("hashes", {}).get("sha256")
        if digest is None:
            raise BundleError(f"the package index gave no sha256 of {name}'s wheel")
        pins[name] = (install["metadata"]["version"], {digest})
    return pins


def _merge(function: str, by_architecture: dict[str, Pins]) -> Pins:
    """One set of pins for all architectures: same distributions, same versions, all hashes."""
    merged: Pins = {}
    for architecture, pins in by_architecture.items():
        for name, (version, hashes) in pins.items():
            known, _ = merged.setdefault(name, (version, set()))
            if known != version:
                raise BundleError(
                    f"{function}: pip chose {name} {known} and {version} ({architecture})"
                )
            merged[name][1].update(hashes)
    names = {frozenset(pins) for pins in by_architecture.values()}
    if len(names) > 1:
        # One lock per function serves both architectures only if they install the same.
        raise BundleError(f"{function}: the architectures install different distributions")
    return merged


def write_lock(function: str, pins: Pins) -> Path:
    """Write ``function``'s lock file from ``pins``; its path."""
    lines = [
        f"# The {function} function's Lambda asset: what pip resolves for the project's wheel",
        f"# with its `{function}` extra on python{PYTHON_VERSION}, manylinux, "
        f"{' and '.join(ARCHITECTURES)}.",
        "# Written by `make lock-lambda` (infra/lambda_lock.py); do not edit.",
    ]
    for name in sorted(pins):
        version, hashes = pins[name]
        lines.append(f"{name}=={version} \\")
        lines += [f"    --hash=sha256:{digest} \\" for digest in sorted(hashes)]
        lines[-1] = lines[-1].removesuffix(" \\")
    path = lock_file(function)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main() -> None:
    """Resolve and write every function's lock file."""
    wheel = project_wheel()
    for function in FUNCTIONS:
        by_architecture = {
            architecture: resolve(wheel, function, architecture) for architecture in ARCHITECTURES
        }
        path = write_lock(function, _merge(function, by_architecture))
        print(f"{path.relative_to(REPO_ROOT)}: {len(by_architecture[ARCHITECTURES[0]])} pinned")


if __name__ == "__main__":
    main()
