"""Enumeration into messages against a real database: every object exactly once,
across any number of continuations."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from mastodon_s3_sync.demo.schema import SchemaVersion
from mastodon_s3_sync.demo.seed import seed_database
from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.transport.enumeration import Cursor, enumerate_to_queue
from mastodon_s3_sync.transport.lambda_edge import continuation_event, parse_enumerator_event
from mastodon_s3_sync.transport.messages import decode
from mastodon_s3_sync.transport.sqs import MessageSink
from tests.support.mastodon_db import (
    UNSAFE_MEDIA_ID,
    MastodonDb,
    expected_keys,
    insert_unsafe_media,
)

pytestmark = pytest.mark.integration

MakeDb = Callable[..., MastodonDb]
NOW = datetime(2026, 11, 27, tzinfo=UTC)


class ListSink:
    """Keeps the bodies in memory: the queue without the network."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.flushes = 0

    def send(self, body: str) -> None:
        self.bodies.append(body)

    def flush(self) -> None:
        self.flushes += 1


@pytest.mark.parametrize("rows_per_invocation", [7, 150, 10_000])
def test_chained_invocations_send_every_object_exactly_once(
    mastodon_db: MakeDb, rows_per_invocation: int
) -> None:
    db = mastodon_db()
    counts = {"accounts": 120, "media_attachments": 300, "custom_emojis": 30, "preview_cards": 80}
    seed_database(db.conn, SchemaVersion.CURRENT, counts, seed=4)
    sink: MessageSink = ListSink()
    run_id = "20261127T000000Z-chain"
    event: dict[str, object] = {"type": "all", "run_id": run_id}
    invocations = 0
    while True:
        invocations += 1
        request = parse_enumerator_event(event, NOW)
        rows = 0

        def should_stop() -> bool:
            nonlocal rows
            rows += 1
            return rows >= rows_per_invocation

        result = enumerate_to_queue(
            Catalog(db.conn, page_size=50),
            sink,
            request.cursor,
            request.filter,
            request.run_id,
            should_stop,
        )
        if result.stopped_at is None:
            break
        event = continuation_event(request, result.stopped_at)
    assert isinstance(sink, ListSink)
    messages = [decode(body) for body in sink.bodies]
    sent = Counter(ref.key for message in messages for ref in message.objects)
    assert sent == expected_keys(db)
    assert max(sent.values()) == 1
    assert {message.run_id for message in messages} == {run_id}
    assert all(len({ref.record_type for ref in m.objects}) == 1 for m in messages)
    if rows_per_invocation == 7:
        assert invocations > 50


def test_limit_and_since_survive_continuations(mastodon_db: MakeDb) -> None:
    db = mastodon_db()
    seed_database(db.conn, SchemaVersion.CURRENT, {"media_attachments": 200}, seed=8)
    first = parse_enumerator_event(
        {"type": "media_attachments", "limit": 40, "since": "2024-01-01"}, NOW
    )
    sink = ListSink()
    calls = 0

    def stop_every_ten() -> bool:
        nonlocal calls
        calls += 1
        return calls % 10 == 0

    request, total_rows = first, 0
    while True:
        result = enumerate_to_queue(
            Catalog(db.conn, page_size=7),
            sink,
            request.cursor,
            request.filter,
            request.run_id,
            stop_every_ten,
        )
        total_rows += result.counts[RecordType.MEDIA_ATTACHMENTS].rows
        if result.stopped_at is None:
            break
        request = parse_enumerator_event(continuation_event(request, result.stopped_at), NOW)
        assert request.filter.since == first.filter.since
    assert total_rows == 40


def test_refused_keys_are_reported_and_not_counted_as_sent(mastodon_db: MakeDb) -> None:
    # given rows whose keys are fine, and one whose file name makes keys with .. segments
    db = mastodon_db()
    seed_database(db.conn, SchemaVersion.CURRENT, {"media_attachments": 30}, seed=5)
    insert_unsafe_media(db)
    sink = ListSink()
    refused: list[tuple[ObjectRef, str]] = []
    # when
    result = enumerate_to_queue(
        Catalog(db.conn, page_size=10),
        sink,
        Cursor((RecordType.MEDIA_ATTACHMENTS,)),
        CatalogFilter(),
        "20261127T000000Z-refuse",
        on_refused=lambda ref, reason: refused.append((ref, reason)),
    )
    # then only the safe objects are sent, and only they count as objects
    sent = [ref for body in sink.bodies for ref in decode(body).objects]
    count = result.counts[RecordType.MEDIA_ATTACHMENTS]
    assert count.objects == len(sent) == sum(expected_keys(db).values()) - len(refused)
    # and each refused object is reported once, with the copier's wording of the reason
    assert count.refused_keys == len(refused) >= 1
    assert {ref.record_id for ref, _ in refused} == {UNSAFE_MEDIA_ID}
    assert not {ref.key for ref, _ in refused} & {ref.key for ref in sent}
    for ref, reason in refused:
        assert reason == f"refused key {ref.key!r}: has a . or .. path segment"
