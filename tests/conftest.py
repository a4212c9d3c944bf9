"""The test tiers, and where the shared fixtures come from.

Each directory under tests/ is a tier; the server tiers are marked after their directory,
so ``-m integration``, ``-m "not faults"`` and the like select them. Shared fixtures live
in tests/support and are registered here as plugins, so no test module imports another.
(Registered here, before any test module imports them, they get pytest's assertion
rewriting; a test module's own ``pytest_plugins`` would come too late for that.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "pytester",
    "tests.support.mastodon_db",
    "tests.support.s3_servers",
    "tests.support.migration",
    "tests.support.seaweedfs",
    "tests.support.copier_lambda",
    "tests.support.stack_fixture",
    "tests.support.invariant",
]

TESTS = Path(__file__).parent
SERVER_TIERS = frozenset({"integration", "faults", "infra"})
"""Directories under tests/ whose tests are marked with the directory's name."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test of a server tier with its tier."""
    for item in items:
        if item.path.is_relative_to(TESTS):
            tier = item.path.relative_to(TESTS).parts[0]
            if tier in SERVER_TIERS:
                item.add_marker(tier)
