"""Every flag of every command is documented in the README (``--help`` says the rest)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from mastodon_s3_sync.cli.parser import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"
SELF_EXPLAINING = frozenset({"--help", "--version"})


def flags(parser: argparse.ArgumentParser, command: str = "") -> Iterator[tuple[str, str]]:
    """(command, long flag) for the parser and each of its subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from flags(sub, f"{command} {name}".strip())
        else:
            yield from ((command, flag) for flag in action.option_strings if flag.startswith("--"))


def test_every_flag_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    undocumented = sorted(
        f"{command}: {flag}"
        for command, flag in flags(build_parser())
        if flag not in SELF_EXPLAINING and not re.search(re.escape(flag) + r"(?![\w-])", text)
    )
    assert undocumented == []
