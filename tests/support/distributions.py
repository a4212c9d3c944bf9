"""What pyproject.toml declares the project installs, and what an installed asset holds."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra.bundling import PYPROJECT

PROJECT = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
PROJECT_NAME = canonicalize_name(PROJECT["name"])
SSH_BINARIES = {"cryptography", "bcrypt", "pynacl"}
"""paramiko's compiled dependencies: the copier must not carry them."""


def declared_installs(extra: str) -> set[str]:
    """Distributions ``pip install 'mastodon-s3-sync[extra]'`` asks for by name, as
    pyproject.toml declares them (self-referencing extras followed)."""
    names: set[str] = {
        canonicalize_name(Requirement(spec).name) for spec in PROJECT["dependencies"]
    }
    pending, seen = [extra], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for spec in PROJECT["optional-dependencies"][current]:
            requirement = Requirement(spec)
            if canonicalize_name(requirement.name) == PROJECT_NAME:
                pending += sorted(requirement.extras)
            else:
                names.add(canonicalize_name(requirement.name))
    return names


def dist_infos(asset: Path) -> dict[str, Path]:
    """Installed distributions of an asset: canonical name -> dist-info directory."""
    return {
        canonicalize_name(path.name.removesuffix(".dist-info").rpartition("-")[0]): path
        for path in asset.glob("*.dist-info")
    }
