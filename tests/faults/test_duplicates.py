"""Duplicate message delivery: SQS delivers at least once, so copiers must be idempotent.

The copier Lambda handler gets every message twice in one batch while a second "container"
(another copier over the same queue) copies the same messages at the same time, through a
destination that faults 5% of its requests; then everything is delivered once more. The
end state must be what one clean delivery gives.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mastodon_s3_sync.config.settings import AclMode, BucketSettings, CopySettings
from mastodon_s3_sync.copying.results import CopyOptions
from mastodon_s3_sync.demo.s3servers import REGION, MotoS3Server
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.transport.assembly import build_copier
from mastodon_s3_sync.transport.messages import decode
from mastodon_s3_sync.transport.worker import MessageFailed, copy_message
from tests.events.factory import FakeLambdaContext, sqs_event_for_bodies
from tests.support.copier_lambda import (
    Sides,
    account_rows,
    failed_ids,
    media_rows,
    one_body,
    refs_of,
    seed,
)
from tests.support.faultproxy import FaultProxy, mixed_faults
from tests.support.invariant import MATRIX, check_invariant
from tests.support.lambda_output import Output

MESSAGE_OBJECTS = 10
ROUNDS = 6


def side(bucket: str, endpoint_url: str) -> BucketSettings:
    """One side as the handler's environment describes it (moto takes any key pair)."""
    return BucketSettings(
        bucket=bucket,
        endpoint_url=endpoint_url,
        region=REGION,
        access_key_id="testing",
        secret_access_key="testing",
        addressing_style="path",
    )


def test_duplicate_deliveries_end_as_one_clean_delivery(
    sides: Sides,
    output: Output,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given 80 objects in 8 messages, some private, and a destination faulting 5%
    media = refs_of(RecordType.MEDIA_ATTACHMENTS, media_rows(111_000_000_000_000_001, 30))
    accounts = refs_of(RecordType.ACCOUNTS, account_rows(112_000_000_000_000_001, 20))
    refs = [*media, *accounts]
    manifest = seed(sides, refs, private=[111_000_000_000_000_003, 112_000_000_000_000_004])
    bodies = [
        one_body(record_type, group[start : start + MESSAGE_OBJECTS])
        for record_type, group in (
            (RecordType.MEDIA_ATTACHMENTS, media),
            (RecordType.ACCOUNTS, accounts),
        )
        for start in range(0, len(group), MESSAGE_OBJECTS)
    ]
    destination_server = moto_servers[1]
    with FaultProxy(destination_server.endpoint_url, rules=mixed_faults(0.05), seed=3) as proxy:
        monkeypatch.setenv("MSS_DESTINATION_ENDPOINT_URL", proxy.url)
        other_container = build_copier(
            side(sides.source_bucket, sides.provider_a.endpoint_url),
            side(sides.destination_bucket, proxy.url),
            CopyOptions(CopySettings(acl=AclMode.COPY)),
            threads=4,
        )
        outcomes: list[Outcome] = []

        def second_container() -> None:
            with ThreadPoolExecutor(4) as pool:
                for body in bodies:
                    try:
                        results = copy_message(
                            other_container, decode(body), pool, lambda: math.inf, 0
                        )
                    except MessageFailed as failure:
                        results = list(failure.results)
                    outcomes.extend(result.outcome for result in results)

        # when every message arrives twice in one batch while another container copies it
        racer = threading.Thread(target=second_container)
        racer.start()
        pending = failed_ids(sqs_event_for_bodies([*bodies, *bodies]), FakeLambdaContext())
        racer.join()
        # and again until nothing fails (failed messages come back after their timeout)
        rounds = 1
        while pending and rounds < ROUNDS:
            pending = failed_ids(sqs_event_for_bodies(bodies), FakeLambdaContext())
            rounds += 1
        # and once more after success: a late duplicate
        late = failed_ids(sqs_event_for_bodies(bodies), FakeLambdaContext())
        injected = proxy.stats.total_injected

    # then the destination is what one clean delivery gives, and nothing was reported lost
    assert not pending, f"messages still failing after {ROUNDS} deliveries"
    assert late == []
    report: dict[str, Any] = {
        "missing_keys": [
            {"key": entry["key"], "reason": entry["reason"]}
            for entry in output.logs("object missing")
        ]
    }
    verdict = check_invariant(
        refs=refs,
        manifest=manifest,
        destination=sides.destination,
        bucket=sides.destination_bucket,
        report=report,
    )
    MATRIX.record(
        "duplicate deliveries + racing copier, 5% faults",
        verdict.counts,
        f"{rounds} rounds, {injected} faults injected",
    )
    verdict.assert_holds()
    assert verdict.counts["intact"] == len(refs)
    assert Outcome.MISSING not in outcomes
