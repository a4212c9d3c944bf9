"""``verify``: prove the destination holds every object the database references, as the
source has it.

Presence and size come from ordered listings of both buckets (see :mod:`.listing`): about
two list requests per 1,000 objects. Headers and ACL class are not in listings; they are
compared with a HEAD and a GetObjectAcl on each side for a random sample of the objects
(every object with ``sample=None``). A key no listing could answer is asked for directly.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from mastodon_s3_sync.config.settings import AclMode
from mastodon_s3_sync.copying.copier import Copier
from mastodon_s3_sync.copying.public_read import AnonymousReader
from mastodon_s3_sync.copying.results import fixed_acl
from mastodon_s3_sync.copying.spool import SHOWN_KEYS, JsonLines
from mastodon_s3_sync.copying.survey import Sightings
from mastodon_s3_sync.mastodon.layout import ObjectRef
from mastodon_s3_sync.storage.listing import ABSENT, UNKNOWN, Listed, Sighting
from mastodon_s3_sync.storage.protocol import NOT_FOUND_CODES, PRIVATE, acl_class
from mastodon_s3_sync.storage.s3 import BotoObjects, Bucket, RequestCounter

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_SAMPLE = 1000
COMPARED_HEADERS = (
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "Expires",
    "Metadata",
)


class Problem(StrEnum):
    """A way the destination can differ from the source."""

    MISSING = "missing"
    SIZE = "size"
    HEADER = "header"
    ACL = "acl"
    NOT_PUBLIC = "not publicly readable"
    """``--public-url``: a public object an anonymous reader cannot get as it is."""
    READABLE = "private but readable"
    """``--public-url``: a private object an anonymous reader gets."""


@dataclass(frozen=True, slots=True)
class Pair:
    """A referenced object found at the source, and its key at the destination."""

    ref: ObjectRef
    source_key: str
    destination_key: str


@dataclass
class VerifyTotals:
    """What ``verify`` found."""

    objects: int = 0
    matching: int = 0
    """At the destination with the source's size."""
    absent_at_source: int = 0
    """Referenced, but at the source under no key: nothing to copy (lost before)."""
    withheld: int = 0
    """Private, and not expected at a destination that keeps no ACL (``run`` withholds)."""
    sampled: int = 0
    """Objects whose headers (and ACL class) were compared."""
    public_checked: int = 0
    """Objects read anonymously through ``--public-url`` (public and private ones)."""
    problems: dict[Problem, int] = field(default_factory=lambda: dict.fromkeys(Problem, 0))
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing is missing or different."""
        return not any(self.problems.values())


class Verifier:
    """Checks references against both buckets; findings are spooled to disk.

    Call :meth:`check` with the references in enumeration order, then
    :meth:`check_sample` for headers and ACLs. With ``public`` (``--public-url``) the sampled
    objects are also read anonymously, and so is a sample of the private ones.
    """

    def __init__(
        self,
        copier: Copier,
        acl: AclMode,
        *,
        sample: int | None = DEFAULT_SAMPLE,
        workers: int = 16,
        seed: int = 0,
        public: AnonymousReader | None = None,
    ) -> None:
        self._copier = copier
        self._acl = acl
        self._sample_size = sample
        self._random = random.Random(seed)  # noqa: S311 (sampling, not secrets)
        self._sample: list[Pair] = []
        self.public = public
        self._private_sample: list[Pair] = []
        self._private_seen = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="verify")
        self._in_flight = threading.BoundedSemaphore(4 * workers)
        self._errors: list[BaseException] = []
        self.requests = RequestCounter()
        self.requests.attach(copier.source.client)
        self.requests.attach(copier.destination.client)
        self._survey = copier.survey()
        self.totals = VerifyTotals()
        self.presence_requests: int | None = None
        """Requests of the presence and size checks (the rest went to the sample); None
        with ``sample=None``, where both kinds of check run at once."""
        self.findings = JsonLines()
        self.first_findings: list[dict[str, Any]] = []
        self.absent_at_source = JsonLines()

    @property
    def compares_headers(self) -> bool:
        """Whether the destination keeps headers (files written to a directory keep none)."""
        return self._copier.destination.keeps_headers

    def check(self, refs: Iterable[ObjectRef], on_object: Callable[[], None] | None = None) -> None:
        """Presence and size of each reference, in the order given."""
        for ref in refs:
            self._check_one(ref, self._survey.sight(ref))
            if on_object is not None:
                on_object()

    def _check_one(self, ref: ObjectRef, seen: Sightings) -> None:
        totals = self.totals
        totals.objects += 1
        totals.by_type[str(ref.record_type)] = totals.by_type.get(str(ref.record_type), 0) + 1
        if self._copier.options.withholds(ref):
            totals.withheld += 1
            return
        candidates = (ref.key, *ref.alternates)
        found = next(
            (
                (key, size)
                for index, key in enumerate(candidates)
                if (
                    size := self._size(
                        self._copier.source, key, _confirmed(seen.of_candidate(index))
                    )
                )
                is not None
            ),
            None,
        )
        if found is None:
            totals.absent_at_source += 1
            self.absent_at_source.add(_entry(ref, ref.key, "at the source under no key"))
            return
        source_key, size = found
        destination_key = self._copier.destination_key(source_key)
        sighting = seen.destination if source_key == ref.key else UNKNOWN
        present = self._size(self._copier.destination, destination_key, _confirmed(sighting))
        if present is None:
            self._found(Problem.MISSING, ref, destination_key, f"source {source_key} has {size} B")
        elif present != size:
            self._found(Problem.SIZE, ref, destination_key, f"{present} B, source {size} B")
        else:
            totals.matching += 1
            self._offer(Pair(ref, source_key, destination_key))

    @staticmethod
    def _size(bucket: Bucket, key: str, seen: Sighting) -> int | None:
        if isinstance(seen, Listed):
            return seen.size
        head = _head(bucket.client, bucket.name, key)
        return None if head is None else int(head["ContentLength"])

    def _offer(self, pair: Pair) -> None:
        """Reservoir sampling: every matching object has the same chance to be checked
        (with ``sample=None`` each is checked at once, in the pool); private objects have a
        reservoir of their own for ``--public-url``."""
        if self.public is not None and pair.ref.private and self._sample_size is not None:
            self._private_seen += 1
            self._keep(self._private_sample, pair, self._private_seen)
        if self._sample_size is None:
            self._check_soon(pair)
            return
        self._keep(self._sample, pair, self.totals.matching)

    def _keep(self, sample: list[Pair], pair: Pair, seen: int) -> None:
        """Keep ``pair``, the ``seen``-th offered, in a uniform random ``sample``."""
        assert self._sample_size is not None
        if len(sample) < self._sample_size:
            sample.append(pair)
            return
        slot = self._random.randrange(seen)
        if slot < self._sample_size:
            sample[slot] = pair

    def check_sample(self) -> None:
        """Headers and ACL class of the sampled objects, on both sides, in parallel; raises
        the first error a check met (a request that failed after its retries)."""
        if self._sample_size is not None:
            self.presence_requests = self.requests.total
        for pair in self._sample:
            self._check_soon(pair)
        if self._sample_size is not None:  # with sample=None they were checked as they came
            for pair in self._private_sample:
                self._soon(self._check_private_read, pair)
        self._pool.shutdown(wait=True)
        if self._errors:
            raise self._errors[0]

    def _check_soon(self, pair: Pair) -> None:
        self._soon(self._check_pair, pair)

    def _soon(self, check: Callable[[Pair], None], pair: Pair) -> None:
        self._in_flight.acquire()
        future = self._pool.submit(check, pair)
        future.add_done_callback(self._checked)

    def _checked(self, future: Future[None]) -> None:
        self._in_flight.release()
        error = future.exception()
        if error is not None:
            with self._lock:
                self._errors.append(error)

    def _check_pair(self, pair: Pair) -> None:
        with self._lock:
            self.totals.sampled += 1
        source, destination = self._copier.source, self._copier.destination
        source_head = _head(source.client, source.name, pair.source_key)
        destination_head = _head(destination.client, destination.name, pair.destination_key)
        if source_head is None or destination_head is None:
            return  # deleted since the listing: not a difference of the copy
        differences = [
            f"{name}: {destination_head.get(name)!r}, source {source_head.get(name)!r}"
            for name in COMPARED_HEADERS
            if self.compares_headers and source_head.get(name) != destination_head.get(name)
        ]
        if differences:
            self._found(Problem.HEADER, pair.ref, pair.destination_key, "; ".join(differences))
        expected = self._check_acl(pair)
        if self.public is None:
            return
        if expected == PRIVATE or (expected is None and pair.ref.private):
            if self._sample_size is None:  # else it is in the private sample
                self._check_private_read(pair)
            return
        self._check_public_read(pair, destination_head)

    def _check_acl(self, pair: Pair) -> str | None:
        """Compare the destination's ACL class with the one expected, and return that one
        (None with ``--acl none``, or when the ACL is unreadable)."""
        if self._acl == AclMode.NONE:
            return None
        source, destination = self._copier.source, self._copier.destination
        try:
            # Through botocore, whose requests self.requests counts.
            if self._acl != AclMode.COPY:
                expected = fixed_acl(self._acl, pair.ref)
            elif pair.ref.private:  # written private even where the source leaks it
                expected = PRIVATE
            else:
                expected = acl_class(BotoObjects(source.client, source.name), pair.source_key)
            actual = acl_class(
                BotoObjects(destination.client, destination.name), pair.destination_key
            )
        except botocore.exceptions.ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            detail = f"ACL unreadable ({code}); a provider without ACLs needs --acl none"
            self._found(Problem.ACL, pair.ref, pair.destination_key, detail)
            return None
        if actual != expected:
            self._found(
                Problem.ACL, pair.ref, pair.destination_key, f"{actual}, expected {expected}"
            )
        return expected

    def _check_public_read(self, pair: Pair, destination_head: dict[str, Any]) -> None:
        """A public object: an anonymous HEAD must get it, same size and Content-Type."""
        assert self.public is not None
        answer = self.public.head(pair.destination_key)
        with self._lock:
            self.totals.public_checked += 1
        size, content_type = destination_head["ContentLength"], destination_head.get("ContentType")
        if answer.status != HTTPStatus.OK:
            detail = f"{answer.describe()} at {self.public.url(pair.destination_key)}"
        elif answer.size != size or answer.content_type != content_type:
            detail = (
                f"{answer.size} B {answer.content_type!r}, the bucket has {size} B "
                f"{content_type!r} at {self.public.url(pair.destination_key)}"
            )
        else:
            return
        self._found(Problem.NOT_PUBLIC, pair.ref, pair.destination_key, detail)

    def _check_private_read(self, pair: Pair) -> None:
        """A private object: an anonymous HEAD must not get it."""
        assert self.public is not None
        answer = self.public.head(pair.destination_key)
        with self._lock:
            self.totals.public_checked += 1
        if answer.status == HTTPStatus.OK:
            url = self.public.url(pair.destination_key)
            self._found(Problem.READABLE, pair.ref, pair.destination_key, f"HTTP 200 at {url}")

    def _found(self, problem: Problem, ref: ObjectRef, key: str, detail: str) -> None:
        with self._lock:
            self.totals.problems[problem] += 1
            entry = {"problem": str(problem), **_entry(ref, key, detail)}
            self.findings.add(entry)
            if len(self.first_findings) < SHOWN_KEYS:
                self.first_findings.append(entry)

    def close(self) -> None:
        """Stop the checks and remove the spool files."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.findings.close()
        self.absent_at_source.close()


def _confirmed(seen: Sighting) -> Sighting:
    """An absence decides a finding here: it is asked for again (it is rare)."""
    return UNKNOWN if seen is ABSENT else seen


def _head(client: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return dict(client.head_object(Bucket=bucket, Key=key))
    except botocore.exceptions.ClientError as error:
        if str(error.response.get("Error", {}).get("Code", "")) in NOT_FOUND_CODES:
            return None
        raise


def _entry(ref: ObjectRef, key: str, detail: str) -> dict[str, Any]:
    return {
        "key": key,
        "type": str(ref.record_type),
        "record_id": str(ref.record_id),
        "attachment": ref.attachment,
        "style": ref.style,
        "detail": detail,
    }
