"""Where ``run`` spends its CPU: py-spy over one copy of the benchmark mix.

The copy suite's setup (two ``rclone serve s3``, the mix in PostgreSQL and the source
bucket), then ``mastodon-s3-sync run`` under ``py-spy record --gil``: only the thread holding
the GIL is sampled, so the samples are where Python runs (C that lets the GIL go, such as
MD5 and socket copies, is not seen; a thread descheduled while holding it still counts).
Directly or through the delay proxies. Prints the functions with the most samples, by their
own samples and by every sample under them; the raw profile is kept (``--output``).

    .venv/bin/python -m benchmarks.profile_run [--objects 1000] [--mode delay-30ms]

Needs py-spy (``pip install py-spy``) and the right to trace a child (root, or
``kernel.yama.ptrace_scope`` 0).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.copy_suite import CONCURRENCY, MODES, Endpoint
from benchmarks.dataset import mastodon_mix, seed_database, upload
from benchmarks.delay_proxy import DelayProxy
from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.demo.media import create_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.s3servers import RcloneS3Server, find_program

TOP = 25


def top_entries(raw: Path, top: int = TOP) -> list[str]:
    """The functions with the most samples (own and inclusive), from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_function(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples", "", "own samples:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive samples:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return lines


def _function(frame: str) -> str:
    """``name (path/to/file.py:123)`` -> ``name (file.py)``: lines of one function together."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--mode", choices=list(MODES), default="direct")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--output", type=Path, default=Path("run-profile.txt"))
    args = parser.parse_args()
    dataset = mastodon_mix(args.objects)
    with (
        LocalPostgres() as cluster,
        RcloneS3Server() as source_server,
        RcloneS3Server() as dest_server,
        tempfile.TemporaryDirectory() as scratch,
        contextlib.ExitStack() as proxies,
    ):
        url = cluster.create_database("profile")
        with contextlib.closing(cluster.connect("profile")) as conn:
            seed_database(conn, dataset)
        create_bucket(source_server.client(), "src")
        upload(source_server.client(CONCURRENCY), "src", dataset)
        source, dest = (
            Endpoint(
                server,
                proxies.enter_context(DelayProxy(server.endpoint_url, MODES[args.mode]))
                if MODES[args.mode]
                else None,
            )
            for server in (source_server, dest_server)
        )
        bucket = dest.new_bucket("profiled")
        config = Path(scratch) / "sync.toml"
        config.write_text(config_toml(url, source.settings("src"), dest.settings(bucket)))
        command = [sys.executable, "-m", "mastodon_s3_sync", "run", "--config", str(config)]
        command += ["--acl", "none", "--workers", str(CONCURRENCY)]
        subprocess.run(
            [
                str(find_program("py-spy")),
                "record",
                "--format",
                "raw",
                "--rate",
                str(args.rate),
                "--gil",
                "-o",
                str(args.output),
                "--",
                *command,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    print("\n".join(top_entries(args.output)))


if __name__ == "__main__":
    main()
