"""Queue messages: versioned JSON carrying many object references of one run and type.

One message holds up to :data:`MAX_OBJECTS` references and stays under
:data:`MAX_MESSAGE_BYTES`, so ten fit in one ``SendMessageBatch`` (256 KiB in all), and
under :data:`MAX_EXPECTED_BYTES` of known object sizes, so one copier invocation finishes
it comfortably. Record ids travel as strings: snowflakes exceed 2^53.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType, unsafe_key_reason

MESSAGE_VERSION = 1
MAX_MESSAGE_BYTES = 24 * 1024
MAX_OBJECTS = 100
MAX_EXPECTED_BYTES = 512 * 1024 * 1024
MAX_RUN_ID = 128
_RECORD_ID = re.compile(r"-?[0-9]+")
"""ASCII digits only: ``str.isdigit`` also takes ``²``, which ``int`` refuses."""


class MessageError(ValueError):
    """A message body that cannot be used; the text says why."""


@dataclass(frozen=True)
class CopyMessage:
    """A batch of object references to copy, from one enumeration run."""

    run_id: str
    record_type: RecordType
    objects: tuple[ObjectRef, ...]


def _object_json(ref: ObjectRef) -> str:
    item: dict[str, Any] = {
        "key": ref.key,
        "alternates": list(ref.alternates),
        "size": ref.expected_size,
        "id": str(ref.record_id),
        "attachment": ref.attachment,
        "style": ref.style,
    }
    if ref.private:  # only then: most objects are public, messages stay small
        item["private"] = True
    return json.dumps(item, separators=(",", ":"))


def _envelope(run_id: str, record_type: RecordType) -> str:
    head = json.dumps(
        {"version": MESSAGE_VERSION, "run_id": run_id, "type": str(record_type)},
        separators=(",", ":"),
    )
    return head[:-1] + ',"objects":['


def encode(message: CopyMessage) -> str:
    """The JSON body of ``message`` (no size checks: see :class:`MessagePacker`)."""
    objects = ",".join(_object_json(ref) for ref in message.objects)
    return f"{_envelope(message.run_id, message.record_type)}{objects}]}}"


class MessagePacker:
    """Packs the references of one type into message bodies under the limits."""

    def __init__(self, run_id: str, record_type: RecordType) -> None:
        if not run_id or len(run_id) > MAX_RUN_ID:
            raise MessageError(f"run id must have 1 to {MAX_RUN_ID} characters")
        self._envelope = _envelope(run_id, record_type)
        self._parts: list[str] = []
        self._bytes = len(self._envelope) + 2
        self._expected = 0

    def add(self, ref: ObjectRef) -> str | None:
        """Add one reference; returns the finished body it did not fit into, if any."""
        part = _object_json(ref)
        size = len(part.encode()) + 1
        expected = ref.expected_size or 0
        finished = None
        if self._parts and (
            len(self._parts) >= MAX_OBJECTS
            or self._bytes + size > MAX_MESSAGE_BYTES
            or self._expected + expected > MAX_EXPECTED_BYTES
        ):
            finished = self.flush()
        if self._bytes + size > MAX_MESSAGE_BYTES:
            raise MessageError(f"object reference too large for a message: {ref.key[:100]}…")
        self._parts.append(part)
        self._bytes += size
        self._expected += expected
        return finished

    def flush(self) -> str | None:
        """The pending body, if any, and start afresh."""
        if not self._parts:
            return None
        body = f"{self._envelope}{','.join(self._parts)}]}}"
        self._parts = []
        self._bytes = len(self._envelope) + 2
        self._expected = 0
        return body


def _key(value: Any, what: str) -> str:
    reason = unsafe_key_reason(value)
    if reason is not None:
        shown = value[:100] if isinstance(value, str) else value
        raise MessageError(f"{what} {shown!r} is not a storage key: {reason}")
    return str(value)


def _object(item: Any, record_type: RecordType, index: int) -> ObjectRef:
    where = f"objects[{index}]"
    if not isinstance(item, dict):
        raise MessageError(f"{where} must be an object")
    alternates = item.get("alternates", [])
    if not isinstance(alternates, list):
        raise MessageError(f"{where}.alternates must be a list")
    size = item.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise MessageError(f"{where}.size must be a whole number of bytes or null")
    record_id = item.get("id")
    if not isinstance(record_id, str) or not _RECORD_ID.fullmatch(record_id):
        raise MessageError(f"{where}.id must be a record id as a string of digits")
    names = [item.get(name) for name in ("attachment", "style")]
    if not all(isinstance(name, str) and name for name in names):
        raise MessageError(f"{where} needs attachment and style names")
    private = item.get("private", False)
    if not isinstance(private, bool):
        raise MessageError(f"{where}.private must be true or false")
    return ObjectRef(
        record_type=record_type,
        record_id=int(record_id),
        attachment=str(names[0]),
        style=str(names[1]),
        key=_key(item.get("key"), f"{where}.key"),
        alternates=tuple(
            _key(alternate, f"{where}.alternates[{n}]") for n, alternate in enumerate(alternates)
        ),
        expected_size=size,
        private=private,
    )


def decode(body: str | bytes) -> CopyMessage:
    """Parse and check a message body; :class:`MessageError` says what is wrong."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise MessageError(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise MessageError("not a JSON object")
    version = document.get("version")
    if version != MESSAGE_VERSION:
        raise MessageError(f"unsupported message version {version!r} (this copier reads 1)")
    run_id = document.get("run_id")
    if not isinstance(run_id, str) or not 0 < len(run_id) <= MAX_RUN_ID:
        raise MessageError(f"run_id must be a string of 1 to {MAX_RUN_ID} characters")
    try:
        record_type = RecordType(str(document.get("type")))
    except ValueError:
        raise MessageError(f"unknown type {document.get('type')!r}") from None
    objects = document.get("objects")
    if not isinstance(objects, list) or not 0 < len(objects) <= MAX_OBJECTS:
        raise MessageError(f"objects must be a list of 1 to {MAX_OBJECTS} references")
    refs = tuple(_object(item, record_type, n) for n, item in enumerate(objects))
    return CopyMessage(run_id, record_type, refs)
