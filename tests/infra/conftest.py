"""Synthesized stacks for the template tests: each configuration is synthesized once per
test process (the template tests only read them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.synthesized import (
    EXAMPLE_CONFIG,
    NONAWS_CONFIG,
    VPC_CONFIG,
    Synthesized,
    synthesize,
)


@pytest.fixture(scope="session")
def example() -> Synthesized:
    """The repository's example configuration (AWS buckets, defaults)."""
    return synthesize(EXAMPLE_CONFIG)


@pytest.fixture(scope="session")
def nonaws() -> Synthesized:
    """infra/example-nonaws.toml: non-AWS providers on both sides, a bastion, no reservation."""
    return synthesize(NONAWS_CONFIG)


@pytest.fixture(scope="session")
def in_vpc(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """AWS buckets with key prefixes and the enumerator in a VPC."""
    path = tmp_path_factory.mktemp("vpc") / "vpc.toml"
    path.write_text(VPC_CONFIG, encoding="utf-8")
    return synthesize(path)


@pytest.fixture(params=["example", "nonaws", "in_vpc"])
def synthesized(request: pytest.FixtureRequest) -> Synthesized:
    """Each of the three configurations in turn."""
    value: Synthesized = request.getfixturevalue(request.param)
    return value


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a configuration file and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "config.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write
