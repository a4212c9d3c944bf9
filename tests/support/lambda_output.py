"""What a Lambda handler prints: Powertools log lines and EMF metric documents (JSON)."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest


class Output:
    """The JSON documents (log entries, EMF metrics) the handler printed during a test."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self.documents: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """All documents printed so far in this test."""
        for line in self._capsys.readouterr().out.splitlines():
            try:
                document = json.loads(line)
            except ValueError:
                continue
            if isinstance(document, dict):
                self.documents.append(document)
        return self.documents

    def logs(self, message: str) -> list[dict[str, Any]]:
        """Log entries whose message is ``message``."""
        return [doc for doc in self.read() if doc.get("message") == message]

    def metrics(self, name: str) -> list[dict[str, Any]]:
        """EMF documents carrying metric ``name``."""
        return [
            doc
            for doc in self.read()
            if "_aws" in doc
            and any(
                metric["Name"] == name
                for directive in doc["_aws"]["CloudWatchMetrics"]
                for metric in directive["Metrics"]
            )
        ]


class CurrentStdout:
    """A stream that writes to whatever ``sys.stdout`` is at the time, as Lambda's is."""

    def write(self, text: str) -> int:
        """Write ``text`` to the current stdout."""
        return sys.stdout.write(text)

    def flush(self) -> None:
        """Flush the current stdout."""
        sys.stdout.flush()
