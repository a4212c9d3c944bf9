"""Finding PostgreSQL's server binaries: pg_config, PATH, Debian's layout, or the pgserver wheel."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_DEBIAN_BINDIR_GLOB = "/usr/lib/postgresql/*/bin"


class LocalPostgresError(RuntimeError):
    """The throwaway cluster could not be found, started or used."""


@dataclass(frozen=True)
class PostgresBinaries:
    """The two server programs the sandbox runs."""

    initdb: Path
    pg_ctl: Path


def find_postgres_binaries() -> PostgresBinaries:
    """Locate ``initdb`` and ``pg_ctl``: pg_config, PATH, /usr/lib/postgresql, then pgserver."""
    for candidate in (_from_pg_config(), _from_path(), _from_debian_layout()):
        if candidate is not None:
            return candidate
    return _from_pgserver()


def _in_dir(bindir: Path) -> PostgresBinaries | None:
    initdb, pg_ctl = bindir / "initdb", bindir / "pg_ctl"
    if all(p.is_file() and os.access(p, os.X_OK) for p in (initdb, pg_ctl)):
        return PostgresBinaries(initdb=initdb, pg_ctl=pg_ctl)
    return None


def _from_pg_config() -> PostgresBinaries | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    try:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return _in_dir(Path(result.stdout.strip()))


def _from_path() -> PostgresBinaries | None:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        return None
    return PostgresBinaries(initdb=Path(initdb), pg_ctl=Path(pg_ctl))


def _from_debian_layout() -> PostgresBinaries | None:
    def version(bindir: Path) -> tuple[int, ...]:
        parts = bindir.parent.name.split(".")
        return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (-1,)

    for bindir in sorted(Path("/").glob(_DEBIAN_BINDIR_GLOB.lstrip("/")), key=version)[::-1]:
        found = _in_dir(bindir)
        if found is not None:
            return found
    return None


def _from_pgserver() -> PostgresBinaries:
    """Use the server binaries that the ``pgserver`` wheel ships in ``pgserver/pginstall/bin``."""
    try:
        module = importlib.import_module("pgserver")
    except ImportError:
        raise LocalPostgresError(
            "No PostgreSQL server binaries found (looked at `pg_config --bindir`, initdb and "
            f"pg_ctl on PATH, and {_DEBIAN_BINDIR_GLOB}). Install PostgreSQL (for example "
            "`apt-get install postgresql`) or `pip install pgserver`."
        ) from None
    bindir = Path(module.__file__ or ".").parent / "pginstall" / "bin"
    found = _in_dir(bindir)
    if found is None:
        raise LocalPostgresError(f"pgserver is installed, but {bindir} lacks initdb or pg_ctl")
    return found
