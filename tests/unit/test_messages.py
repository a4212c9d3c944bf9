"""The queue message contract: round trip, limits, and refusal of bad bodies."""

from __future__ import annotations

import json
from dataclasses import replace

import boto3
import pytest
from botocore.stub import Stubber

from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.transport.messages import (
    MAX_EXPECTED_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_OBJECTS,
    CopyMessage,
    MessageError,
    MessagePacker,
    decode,
    encode,
)
from mastodon_s3_sync.transport.sqs import SEND_RETRIES, QueueError, SqsSink

SNOWFLAKE = 2**62 + 12345  # beyond 2^53: a float would round it


def ref(n: int, size: int | None = 1000, key_length: int = 80) -> ObjectRef:
    key = f"cache/media_attachments/files/{n:0{key_length}d}/original/x.jpeg"
    return ObjectRef(
        RecordType.MEDIA_ATTACHMENTS, SNOWFLAKE + n, "file", "original", key, (key[6:],), size
    )


def test_round_trip_keeps_snowflakes_and_sizes_exact() -> None:
    message = CopyMessage("run-1", RecordType.MEDIA_ATTACHMENTS, (ref(1, 2**31 - 1), ref(2, None)))
    decoded = decode(encode(message))
    assert decoded == message
    assert json.loads(encode(message))["objects"][0]["id"] == str(SNOWFLAKE + 1)


def pack(refs: list[ObjectRef]) -> list[str]:
    packer = MessagePacker("run-1", RecordType.MEDIA_ATTACHMENTS)
    bodies = [body for item in refs if (body := packer.add(item)) is not None]
    last = packer.flush()
    return [*bodies, *([last] if last else [])]


def test_privacy_travels_and_public_objects_say_nothing() -> None:
    private = replace(ref(1), private=True)
    message = CopyMessage("run-1", RecordType.MEDIA_ATTACHMENTS, (private, ref(2)))
    body = encode(message)
    assert decode(body) == message
    assert [item.get("private") for item in json.loads(body)["objects"]] == [True, None]


def test_packing_respects_count_bytes_and_expected_size_limits() -> None:
    by_count = pack([ref(n, key_length=10) for n in range(MAX_OBJECTS * 2 + 1)])
    assert [len(decode(body).objects) for body in by_count] == [MAX_OBJECTS, MAX_OBJECTS, 1]
    by_bytes = pack([ref(n, key_length=400) for n in range(200)])
    assert all(len(body.encode()) <= MAX_MESSAGE_BYTES for body in by_bytes)
    assert sum(len(decode(body).objects) for body in by_bytes) == 200
    by_size = pack([ref(n, size=MAX_EXPECTED_BYTES // 2) for n in range(5)])
    assert [len(decode(body).objects) for body in by_size] == [2, 2, 1]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        ("{", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"version": 2}', "unsupported message version 2"),
        ('{"version": 1, "run_id": "", "type": "accounts"}', "run_id"),
        ('{"version": 1, "run_id": "r", "type": "statuses", "objects": []}', "unknown type"),
        ('{"version": 1, "run_id": "r", "type": "accounts", "objects": []}', "objects must be"),
    ],
)
def test_bad_envelopes(body: str | bytes, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        decode(body)


def with_object(**fields: object) -> str:
    item: dict[str, object] = {
        "key": "accounts/avatars/000/000/001/original/a.png",
        "alternates": [],
        "size": 1,
        "id": "1",
        "attachment": "avatar",
        "style": "original",
    }
    item.update(fields)
    return json.dumps({"version": 1, "run_id": "r", "type": "accounts", "objects": [item]})


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"key": "accounts/../../etc/passwd"}, "not a storage key"),
        ({"key": "/accounts/a.png"}, "not a storage key"),
        ({"key": "accounts/\x00/a.png"}, "not a storage key"),
        ({"key": "a" * 1025}, "longer than 1024 bytes"),
        ({"key": ""}, "non-empty"),
        ({"alternates": ["./a.png"]}, "not a storage key"),
        ({"alternates": "x"}, "alternates must be a list"),
        ({"size": -1}, "size must be"),
        ({"size": 1.5}, "size must be"),
        ({"id": 12}, "id must be"),
        ({"id": "12a"}, "id must be"),
        ({"id": "--1"}, "id must be"),
        ({"id": "\u00b2"}, "id must be"),
        ({"style": ""}, "attachment and style"),
        ({"private": "yes"}, "private must be true or false"),
    ],
)
def test_bad_objects(fields: dict[str, object], reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        decode(with_object(**fields))


def test_a_key_with_dots_inside_a_segment_is_fine() -> None:
    assert decode(with_object(key="accounts/avatars/a..b.png")).objects[0].key.endswith("a..b.png")


def test_failed_batch_entries_are_retried_and_permanent_failures_raise() -> None:
    waits: list[float] = []
    client = boto3.client(
        "sqs", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    url = "https://sqs.us-east-1.amazonaws.com/1/q"
    with Stubber(client) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "x"}],
                "Failed": [{"Id": "1", "SenderFault": False, "Code": "InternalError"}],
            },
            {
                "QueueUrl": url,
                "Entries": [{"Id": "0", "MessageBody": "a"}, {"Id": "1", "MessageBody": "b"}],
            },
        )
        stub.add_response(
            "send_message_batch",
            {"Successful": [{"Id": "1", "MessageId": "m1", "MD5OfMessageBody": "x"}], "Failed": []},
            {"QueueUrl": url, "Entries": [{"Id": "1", "MessageBody": "b"}]},
        )
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [],
                "Failed": [{"Id": "0", "SenderFault": True, "Code": "InvalidMessageContents"}],
            },
            {"QueueUrl": url, "Entries": [{"Id": "0", "MessageBody": "c"}]},
        )
        sink = SqsSink(client, url, in_flight=1, retry=replace(SEND_RETRIES, sleep=waits.append))
        sink.send("a")
        sink.send("b")
        sink.flush()
        sink.send("c")
        with pytest.raises(QueueError, match="InvalidMessageContents"):
            sink.flush()
        sink.close()
        stub.assert_no_pending_responses()
    assert len(waits) == 1  # one backoff before resending the failed entry
