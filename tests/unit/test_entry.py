"""The entry point imports only the module of the command it runs."""

from __future__ import annotations

import json
import subprocess
import sys

from mastodon_s3_sync.cli.entry import COMMANDS, command

PACKAGE = "mastodon_s3_sync.cli"


def _loaded_after(code: str) -> set[str]:
    """The modules of a fresh interpreter after ``code`` ran."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


def test_every_command_resolves_to_a_function() -> None:
    for name in COMMANDS:
        assert callable(command(name)), name


def test_parsing_imports_no_command_module() -> None:
    loaded = _loaded_after(
        "from mastodon_s3_sync.cli.entry import build_parser\n"
        "build_parser().parse_args(['run', '--source', 's3://a', '--destination', 's3://b'])"
    )
    modules = {f"{PACKAGE}.{target.partition(':')[0]}" for target in COMMANDS.values()}
    assert not modules & loaded, sorted(modules & loaded)


def test_run_imports_neither_the_operations_nor_the_sandbox_nor_boto3() -> None:
    loaded = _loaded_after("from mastodon_s3_sync.cli.entry import command\ncommand('run')")
    assert f"{PACKAGE}.copy_commands" in loaded
    unused = (
        "mastodon_s3_sync.ops",
        "mastodon_s3_sync.demo.sandbox",
        f"{PACKAGE}.demo_command",
        "boto3",  # botocore sessions do: boto3 and s3transfer cost ~0.1 s of start-up
        "s3transfer",
        "pydantic_settings",
    )
    assert not {module for module in loaded if module.startswith(unused)}
