"""How each object ends, and the one tally of outcomes (per type, and for a whole run)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    """How one object ended."""

    COPIED = "copied"
    SKIPPED = "skipped"
    MISSING = "missing"
    WITHHELD = "withheld"
    """Private by the database, not written to a destination that keeps no private ACL."""
    FAILED = "failed"


DONE_OUTCOMES = (Outcome.COPIED, Outcome.SKIPPED, Outcome.MISSING, Outcome.WITHHELD)
"""Outcomes that end an object's journey; a failed one is retried, then dead-lettered."""


class Counted(Protocol):
    """What a tally reads of a result (``copying.copier.CopyResult`` has it)."""

    @property
    def outcome(self) -> Outcome: ...

    @property
    def bytes_copied(self) -> int: ...


@dataclass
class Tally:
    """Outcome counts of one type (or of the whole run), and the bytes copied."""

    copied: int = 0
    skipped: int = 0
    missing: int = 0
    withheld: int = 0
    failed: int = 0
    bytes_copied: int = 0

    @classmethod
    def of(cls, results: Iterable[Counted]) -> Tally:
        """The tally of ``results``."""
        tally = cls()
        for result in results:
            tally.add(result)
        return tally

    def add(self, result: Counted) -> None:
        """Count one result."""
        setattr(self, result.outcome.value, self.count(result.outcome) + 1)
        self.bytes_copied += result.bytes_copied

    def count(self, outcome: Outcome) -> int:
        """Objects that ended as ``outcome``."""
        value: int = getattr(self, outcome.value)
        return value

    def __iadd__(self, other: Tally) -> Tally:
        for name in (item.name for item in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def done(self) -> int:
        """Objects with an outcome."""
        return sum(self.count(outcome) for outcome in Outcome)


@dataclass
class RunTotals:
    """A tally per type (a record type's name), and whether the run was interrupted."""

    by_type: dict[str, Tally] = field(default_factory=dict)
    interrupted: bool = False

    def add(self, record_type: str, result: Counted) -> None:
        """Count one result of ``record_type``."""
        self.by_type.setdefault(record_type, Tally()).add(result)

    def total(self) -> Tally:
        """All types together."""
        whole = Tally()
        for tally in self.by_type.values():
            whole += tally
        return whole
