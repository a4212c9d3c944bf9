"""The enumerator side of the fan-out: rows to messages, stopping at a row boundary when asked.

A stopped enumeration returns a cursor to continue from; every object of the rows before the
cursor has been sent, so chained invocations send each object exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace

from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter, SkippedType
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType, unsafe_key_reason
from mastodon_s3_sync.mastodon.selection import Selection
from mastodon_s3_sync.transport.messages import MessagePacker
from mastodon_s3_sync.transport.sqs import MessageSink


@dataclass
class TypeCount:
    """What the enumeration of one type produced."""

    rows: int = 0
    objects: int = 0
    """Objects sent (or, in a dry run, that would be); refused ones are not among them."""
    messages: int = 0
    expected_bytes: int = 0
    refused_keys: int = 0
    """Objects not sent: their key is no plain storage key (``..``, NUL, ...)."""


@dataclass(frozen=True)
class Cursor:
    """Where an enumeration continues: remaining types, after which id of the first,
    rows left of the first, and the per-type row limit of the others."""

    types: tuple[RecordType, ...]
    after_id: int | None = None
    rows_left: int | None = None
    limit: int | None = None

    def narrowed(self, types: Collection[RecordType]) -> Cursor:
        """This cursor over the ``types`` among its own; a position within a type left out
        goes with it."""
        kept = tuple(t for t in self.types if t in types)
        if kept[:1] == self.types[:1]:
            return replace(self, types=kept)
        return Cursor(kept, None, self.limit, self.limit)


@dataclass
class EnumerationResult:
    """Counts per type, the cursor to continue from when stopped early, and the kinds
    left out (with why)."""

    run_id: str
    counts: dict[RecordType, TypeCount] = field(default_factory=dict)
    stopped_at: Cursor | None = None
    left_out: list[SkippedType] = field(default_factory=list)


def refusal(ref: ObjectRef) -> str | None:
    """Why the copier would refuse ``ref`` (a key that is no plain storage key), worded
    as it words it; None when it would copy it."""
    for key in (ref.key, *ref.alternates):
        if (unsafe := unsafe_key_reason(key)) is not None:
            return f"refused key {key[:100]!r}: {unsafe}"
    return None


def enumerate_to_queue(
    catalog: Catalog,
    sink: MessageSink | None,
    cursor: Cursor,
    filt: CatalogFilter,
    run_id: str,
    should_stop: Callable[[], bool] = lambda: False,
    on_refused: Callable[[ObjectRef, str], None] = lambda ref, reason: None,
    selection: Selection | None = None,
) -> EnumerationResult:
    """Send every object of the selected rows, packed into messages (``sink`` None: count).

    ``filt``'s ``after_id`` and ``limit`` are taken from the cursor. With a ``selection``,
    only the cursor's types it walks are enumerated, and the others are in
    :attr:`EnumerationResult.left_out`. Checked between rows, ``should_stop`` ends the walk
    with :attr:`EnumerationResult.stopped_at` set. An object the copier would refuse is
    not sent (it would fail its whole message): ``on_refused(ref, reason)`` hears it, and
    it is counted apart.
    """
    result = EnumerationResult(run_id)
    if selection is not None:
        cursor = cursor.narrowed(selection.walked(catalog))
        result.left_out = selection.left_out(catalog)
    for index, record_type in enumerate(cursor.types):
        after_id = cursor.after_id if index == 0 else None
        rows_left = cursor.rows_left if index == 0 else cursor.limit
        count = result.counts.setdefault(record_type, TypeCount())
        packer = MessagePacker(run_id, record_type)

        def emit(body: str | None, count: TypeCount = count) -> None:
            if body is not None:
                count.messages += 1
                if sink is not None:
                    sink.send(body)

        walk = catalog.walk(record_type, replace(filt, after_id=after_id, limit=rows_left))
        for row in walk:
            for ref in row.objects:
                reason = refusal(ref)
                if reason is not None:
                    count.refused_keys += 1
                    on_refused(ref, reason)
                    continue
                emit(packer.add(ref))
                count.objects += 1
                count.expected_bytes += ref.expected_size or 0
            count.rows += 1
            after_id = row.record_id
            if rows_left is not None:
                rows_left -= 1
            if should_stop() and (rows_left is None or rows_left > 0):
                emit(packer.flush())
                if sink is not None:
                    sink.flush()
                result.stopped_at = Cursor(cursor.types[index:], after_id, rows_left, cursor.limit)
                return result
        emit(packer.flush())
    if sink is not None:
        sink.flush()
    return result
