"""Fixtures of the fault suite (the session's local S3 servers, shared with the integration
tier), and the fault matrix printed at the end of the session."""

from __future__ import annotations

import pytest

from tests.faults.invariant import MATRIX
from tests.integration.conftest import fresh_bucket_name, moto_servers, rclone_servers
from tests.integration.test_copier_handler import output, sides

__all__ = ["fresh_bucket_name", "moto_servers", "output", "rclone_servers", "sides"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the scenario x outcome table when fault scenarios ran."""
    if MATRIX.rows:
        terminalreporter.section("fault matrix (objects per outcome)")
        terminalreporter.write_line(MATRIX.format())
