"""The unit tier's guard (tests/unit/conftest.py): a unit test that opens a socket fails."""

from __future__ import annotations

from pathlib import Path

import pytest

GUARD = Path(__file__).with_name("conftest.py")

UNIT_TESTS = """
import socket
import urllib.request

import pytest


def test_connects_to_localhost():
    socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_fetches_a_url():
    urllib.request.urlopen("http://127.0.0.1:9/", timeout=1)


def test_serves_on_localhost():
    socket.create_server(("127.0.0.1", 0))


def test_swallows_the_refusal():
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    except Exception:
        pass


def test_stays_in_the_process():
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"ping")
        assert right.recv(4) == b"ping"
"""


def test_a_unit_test_that_opens_a_socket_fails(pytester: pytest.Pytester) -> None:
    # given the guard and unit tests that reach for the network, one of them swallowing
    # the refusal, and one that only uses an in-process socket pair
    pytester.makeconftest(GUARD.read_text(encoding="utf-8"))
    pytester.makepyfile(test_units=UNIT_TESTS)

    # when they run (in a child process: this test runs under the same guard)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    # then each network test fails with the guard's message, the in-process one passes
    result.assert_outcomes(failed=4, passed=1)
    result.stdout.fnmatch_lines(["*NetworkInUnitTest: a unit test may not *"])
