"""A spool of JSON entries on disk, for lists that can run to millions (missing keys,
verify's findings): memory stays flat, and the JSON report is streamed from it at the end.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import Any

SHOWN_KEYS = 10
"""Entries a closing summary prints (missing/failed keys, findings); the report has all."""


class JsonLines:
    """A spool of JSON entries in a temporary file."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.count = 0

    def add(self, entry: dict[str, Any]) -> None:
        """Spool one entry."""
        self._file.write(json.dumps(entry) + "\n")
        self.count += 1

    def entries(self) -> Iterator[str]:
        """The spooled entries, as JSON strings."""
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            yield line.rstrip("\n")
        self._file.seek(0, 2)

    def close(self) -> None:
        """Remove the spool file."""
        self._file.close()
