"""The unit tier is pure: a unit test that opens a network socket fails.

Creating an internet socket, or connecting or binding any socket, raises
:class:`NetworkInUnitTest`; should the code under test swallow that error, the test
fails anyway once it returns.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

NETWORK_FAMILIES = frozenset({socket.AF_INET, socket.AF_INET6})
_ATTEMPTS = pytest.StashKey[list[str]]()


class NetworkInUnitTest(AssertionError):
    """A unit test tried to use the network; it belongs in tests/integration."""


@pytest.fixture(autouse=True)
def no_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse network sockets for the duration of each unit test, and note every attempt."""
    attempts = request.node.stash.setdefault(_ATTEMPTS, [])
    real_init = socket.socket.__init__

    def refuse(what: str) -> NetworkInUnitTest:
        attempts.append(what)
        return NetworkInUnitTest(f"a unit test may not {what}: move it to tests/integration")

    def init(self: socket.socket, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        if self.family in NETWORK_FAMILIES:
            self.close()
            raise refuse(f"open a socket ({self.family.name})")

    def refused(operation: str) -> Any:
        def method(self: socket.socket, address: Any, *args: Any) -> Any:
            raise refuse(f"{operation} a socket to {address!r}")

        return method

    monkeypatch.setattr(socket.socket, "__init__", init)
    for operation in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, operation, refused(operation))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a test that passed although it tried to use the network (the error was caught)."""
    yield
    attempts = item.stash.get(_ATTEMPTS, [])
    if attempts:
        raise NetworkInUnitTest(f"a unit test may not {attempts[0]}: move it to tests/integration")
