"""The Lambda Invoke API on localhost: records each invocation and accepts it (202).

moto_server accepts invocations too, but keeps no payload; the enumerator's
self-continuation and ``start --resume`` are checked against what this one records.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import unquote


@dataclass(frozen=True)
class Invocation:
    """One Invoke request as the Lambda service received it."""

    function_name: str
    invocation_type: str | None
    payload: dict[str, Any]


class LambdaService:
    """The Lambda API on localhost, for the enumerator's self-invocations: records each
    Invoke and accepts it (202). moto_server accepts them too, but keeps no payload."""

    def __init__(self) -> None:
        self.invocations: list[Invocation] = []
        invocations = self.invocations

        class Invoke(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                # POST /2015-03-31/functions/{FunctionName}/invocations
                body = self.rfile.read(int(self.headers["Content-Length"]))
                name = unquote(self.path.split("/")[3])
                kind = self.headers.get("X-Amz-Invocation-Type")
                invocations.append(Invocation(name, kind, json.loads(body)))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: pytest shows what a failing test printed."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Invoke)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
