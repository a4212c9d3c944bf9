"""Why a request to an S3 or SQS endpoint got no answer, as one line naming what to fix.

botocore wraps what urllib3, ``socket`` and ``ssl`` raise in exception types of its own;
those types (and the causes they carry), never the message text, tell a wrong scheme from
an untrusted certificate, a port that is no HTTP server, a silent one, a refusing proxy or
a host name that does not resolve. The bucket and queue checks that run before any work
explain their failures here, so each reads the same on every command.
"""

from __future__ import annotations

import socket
import ssl
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import botocore.exceptions

_E = TypeVar("_E", bound=BaseException)


@dataclass(frozen=True)
class Endpoint:
    """What a message says about an endpoint: ``name`` ("the source endpoint"), ``url``
    (or "AWS S3"), the ``setting`` to fix, the ``service`` it should be ("S3") and how
    long a request may wait for its answer."""

    name: str
    url: str
    setting: str
    service: str
    timeout_seconds: float
    ca_setting: str = "AWS_CA_BUNDLE (or ca_bundle in the AWS profile)"
    """Where the CA that signs the endpoint's certificate is given."""

    def explain(self, error: BaseException) -> str | None:
        """One line for a transport failure; None for any other error (a ClientError
        is an answer, explained by whoever asked)."""
        where = f"{self.name} {self.url}"
        if isinstance(error, botocore.exceptions.ProxyConnectionError):
            proxy = error.kwargs.get("proxy_url", "")
            return (
                f"the proxy {proxy} did not let us through to {where}; check the "
                f"{_proxy_variable(self.url)} environment variable, or list the host in "
                "NO_PROXY to go direct"
            )
        if isinstance(error, botocore.exceptions.SSLError):
            untrusted = _cause(error, ssl.SSLCertVerificationError)
            if untrusted is not None:
                return (
                    f"the TLS certificate of {where} is not trusted "
                    f"({untrusted.verify_message}): give the CA that signed it in "
                    f"{self.ca_setting}, or check {self.setting}"
                )
            return (
                f"no TLS handshake with {where}: if it serves plain HTTP, write http:// "
                f"in {self.setting}"
            )
        if isinstance(error, botocore.exceptions.ConnectTimeoutError):
            return (
                f"{where} did not accept a connection within {self.timeout_seconds:g} s; "
                f"check the host and port in {self.setting}, and any firewall between"
            )
        if isinstance(error, botocore.exceptions.EndpointConnectionError):
            if _cause(error, socket.gaierror) is not None:
                return f"the host name of {where} does not resolve; check {self.setting}"
            return f"cannot reach {where}; check {self.setting}"
        if isinstance(error, botocore.exceptions.ReadTimeoutError):
            return (
                f"{where} accepted the connection but sent no answer within "
                f"{self.timeout_seconds:g} s: is that port an {self.service} server? check "
                f"{self.setting}"
            )
        if isinstance(error, botocore.exceptions.HTTPClientError):  # ConnectionClosedError…
            return (
                f"{where} closed the connection without an HTTP answer: is that port an "
                f"{self.service} server (and the scheme right)? check {self.setting}"
            )
        return None


def _proxy_variable(url: str) -> str:
    """The variable botocore takes the proxy from for this endpoint."""
    scheme = urllib.parse.urlsplit(url).scheme
    return "HTTP_PROXY" if scheme == "http" else "HTTPS_PROXY"


def _cause(error: BaseException, kind: type[_E]) -> _E | None:
    """The first exception of ``kind`` among those ``error`` was raised from."""
    for each in _causes(error):
        if isinstance(each, kind):
            return each
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what botocore wrapped (its ``error`` argument), the exceptions it
    was raised from, and those passed as arguments (urllib3 wraps the ``ssl`` error so)."""
    pending, seen = [error], set()
    while pending:
        each = pending.pop(0)
        if id(each) in seen:
            continue
        seen.add(id(each))
        yield each
        wrapped = _wrapped(each)
        pending += [
            candidate
            for candidate in (wrapped, each.__cause__, each.__context__, *each.args)
            if isinstance(candidate, BaseException)
        ]


def _wrapped(error: BaseException) -> Any:
    arguments = getattr(error, "kwargs", None)
    return arguments.get("error") if isinstance(arguments, dict) else None
