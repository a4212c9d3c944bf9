"""``run --from-report``: copy again exactly what a ``verify`` found missing or different.

A plain re-run skips an object of the right size whose ACL or headers are wrong, and
``--force`` copies everything; a verify report names the objects to repair. Their rows are
read again from the database (one query per row), so each object is copied with the
source's bytes, headers and ACL as any run copies it, and nothing else is touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mastodon_s3_sync.copying.verify import Problem
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter, RowObjects
from mastodon_s3_sync.mastodon.layout import RecordType

FLAG = "--from-report"


@dataclass(frozen=True)
class Findings:
    """What a verify report found, by type and row: the (attachment, style) to repair."""

    header: dict[str, Any]
    """The report's header: buckets, ACL mode, counts."""
    wanted: dict[RecordType, dict[int, set[tuple[str, str]]]] = field(default_factory=dict)

    @property
    def objects(self) -> int:
        """How many objects are to be copied again."""
        return sum(len(styles) for rows in self.wanted.values() for styles in rows.values())

    @property
    def record_types(self) -> list[RecordType]:
        """The types with findings, in enumeration order."""
        return [record_type for record_type in RecordType if record_type in self.wanted]


def read_findings(path: Path) -> Findings:
    """The findings of a ``verify --report`` file, or a SettingsError naming the flag."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"{FLAG} {path} cannot be read ({error.strerror})") from None
    except ValueError as error:
        raise SettingsError(f"{FLAG} {path} is not JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("findings"), list):
        raise SettingsError(f"{FLAG} {path} is not a report of verify (no findings list)")
    problems = {str(problem) for problem in Problem}
    types = {str(record_type) for record_type in RecordType}
    findings = Findings({k: v for k, v in document.items() if k != "findings"})
    for index, entry in enumerate(document["findings"]):
        try:
            if entry["problem"] not in problems or entry["type"] not in types:
                raise ValueError(entry.get("problem"))
            record_type, record_id = RecordType(entry["type"]), int(entry["record_id"])
            styles = findings.wanted.setdefault(record_type, {}).setdefault(record_id, set())
            styles.add((str(entry["attachment"]), str(entry["style"])))
        except (KeyError, TypeError, ValueError):
            raise SettingsError(
                f"{FLAG} {path}: finding {index + 1} is not one verify writes"
            ) from None
    return findings


class FindingRows:
    """The catalog narrowed to the findings: their rows, with only the objects found."""

    def __init__(self, catalog: Catalog, findings: Findings) -> None:
        self._catalog = catalog
        self._findings = findings

    def count_rows(self, record_type: RecordType, filt: CatalogFilter) -> int:
        """How many rows :meth:`walk` will read."""
        return len(self._findings.wanted.get(record_type, {}))

    def walk(self, record_type: RecordType, filt: CatalogFilter) -> Iterator[RowObjects]:
        """Each row with findings, in id order, holding only the objects to repair (a row
        deleted since the verify yields nothing)."""
        rows = self._findings.wanted.get(record_type, {})
        for record_id in sorted(rows):
            one = CatalogFilter(after_id=record_id - 1, limit=1)
            for row in self._catalog.walk(record_type, one):
                if row.record_id == record_id:
                    wanted = rows[record_id]
                    objects = [ref for ref in row.objects if (ref.attachment, ref.style) in wanted]
                    yield RowObjects(record_id, objects)
