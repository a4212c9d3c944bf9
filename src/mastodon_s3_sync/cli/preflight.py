"""Before the work starts: the report path, the buckets and the database checked, so that a
wrong setting fails in seconds with a message that names it, not an hour into a run.

The checks themselves are in :mod:`mastodon_s3_sync.copying.preflight`; here they are
chosen per command and run on short-timeout clients whose requests are counted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mastodon_s3_sync.cli.logs import event, phase
from mastodon_s3_sync.config.settings import AclMode, BucketSettings, Settings
from mastodon_s3_sync.copying.preflight import (
    SOURCE_PROBE_REFERENCES,
    check_acl_reads,
    check_report_path,
    check_source_holds,
    probe_destination,
)
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter
from mastodon_s3_sync.mastodon.database import open_database
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from mastodon_s3_sync.storage.disk import DiskObjects, check_directory
from mastodon_s3_sync.storage.protocol import ObjectStore
from mastodon_s3_sync.storage.s3 import BotoObjects, RequestCounter, check_bucket, probe_client
from mastodon_s3_sync.transport.engine import RowSource

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadBucketOutputTypeDef


def _side(settings: Settings, side: str) -> BucketSettings:
    bucket: BucketSettings | None = getattr(settings, side)
    if bucket is None:
        raise SettingsError(
            f"no {side} bucket: pass --{side} s3://BUCKET[/PREFIX] (or a directory, "
            f"file:///PATH) or set [{side}] bucket (or path) in the config file (--config)"
            + (" or S3_BUCKET in Mastodon's .env (--mastodon-env)" if side == "source" else "")
        )
    return bucket


def _finding(name: str, found: str) -> str:
    """One check's part of the summary line."""
    return f"{name}: {found}"


class Preflight:
    """The checks of one command, in order; each found fact is kept for one summary line."""

    def __init__(self) -> None:
        self.requests = RequestCounter()
        self.found: list[str] = []
        self.heads: dict[str, HeadBucketOutputTypeDef] = {}
        """The buckets' HeadBucket answers by side: the copier's clients need not ask again."""
        self._clients: dict[str, S3Client] = {}
        self._started = time.monotonic()

    @classmethod
    def starting(cls, stream: TextIO, quiet: bool) -> Preflight:
        """A preflight that says it has started (seconds pass before its summary)."""
        phase(
            "preflight",
            "preflight: checking the report path, both buckets and the database…",
            None if quiet else stream,
        )
        return cls()

    def client(self, settings: BucketSettings, side: str) -> S3Client:
        """The probe client of ``side``, made once, its requests counted."""
        if side not in self._clients:
            self._clients[side] = client = probe_client(settings)
            self.requests.attach(client)
        return self._clients[side]

    def step(self, name: str, check: Callable[[], str]) -> str:
        """Run one check; what it found joins the summary, and is returned."""
        found = check()
        self.found.append(_finding(name, found))
        return found

    def report(self, path: Path | None) -> None:
        """The report can be written (before hours of work depend on it)."""
        if path is not None:
            self.step("report", lambda: check_report_path(path))

    def buckets(
        self, settings: Settings, *, writes: bool, acl_reads: bool = False
    ) -> tuple[BucketSettings, BucketSettings]:
        """Both sides distinct and answering; the source's ACLs readable for ``--acl
        copy``; with ``writes`` the destination takes a write and keeps its ACL; with
        ``acl_reads`` (``verify``) the destination's ACLs readable unless ``--acl none``."""
        source, destination = _side(settings, "source"), _side(settings, "destination")
        if (source.name, source.key_prefix, source.endpoint_url) == (
            destination.name,
            destination.key_prefix,
            destination.endpoint_url,
        ):
            raise SettingsError("--source and --destination are the same bucket and key prefix")
        acl = settings.copy.acl
        if destination.path is not None and acl == AclMode.NONE:
            raise SettingsError(
                "--acl none with a directory as the destination: a file's privacy is its mode, "
                "so use --acl copy (private objects become 0600), private or public-read"
            )
        # Each step asks both sides at once (they wait on their endpoints, not on each
        # other); its refusals, and the summary, keep the order of one check at a time.
        with ThreadPoolExecutor(2, thread_name_prefix="preflight-side") as pool:
            heads = pool.map(check_side, (source, destination), ("source", "destination"))
            for side, head in zip(("source", "destination"), heads, strict=True):
                if head is not None:
                    self.heads[side] = head
            source_found = pool.submit(self._source_checks, source, acl)
            destination_found = pool.submit(
                self._destination_checks, destination, acl, writes, acl_reads
            )
            self.found += source_found.result() + destination_found.result()
        return source, destination

    def _source_checks(self, source: BucketSettings, acl: AclMode) -> list[str]:
        """The source's ACLs are readable for ``--acl copy``: what was found."""
        if acl != AclMode.COPY or source.path is not None:
            return []
        client = self.client(source, "source")
        return [_finding("source ACLs", check_acl_reads(client, source, "source", "--acl copy"))]

    def _destination_checks(
        self, destination: BucketSettings, acl: AclMode, writes: bool, acl_reads: bool
    ) -> list[str]:
        """The destination takes a write (``writes``) or lets its ACLs be read
        (``acl_reads``): what was found."""
        if destination.path is not None:
            return []  # check_directory found it writable
        if writes:
            client = self.client(destination, "destination")
            return [_finding("destination", probe_destination(client, destination, acl))]
        if acl_reads and acl != AclMode.NONE:
            client = self.client(destination, "destination")
            why = f"verify --acl {acl}"
            found = check_acl_reads(client, destination, "destination", why)
            return [_finding("destination", found)]
        return []

    def source_objects(
        self,
        catalog: RowSource,
        source: BucketSettings,
        record_types: Iterable[RecordType],
        filt: CatalogFilter,
    ) -> str:
        """The source holds (nearly all of) the first references of the selection: what
        was found."""
        refs = first_refs(catalog, record_types, filt, SOURCE_PROBE_REFERENCES)
        objects: ObjectStore = (
            DiskObjects(Path(source.path))
            if source.path is not None
            else BotoObjects(self.client(source, "source"), source.require_bucket("source"))
        )
        return self.step("source objects", lambda: check_source_holds(objects, source, refs))

    def announce(self, stream: TextIO, quiet: bool) -> None:
        """The summary line (unless ``quiet``), and the same as a ``preflight`` event."""
        if not quiet:
            print(self.summary(), file=stream, flush=True)
        event(
            "preflight",
            seconds=round(time.monotonic() - self._started, 2),
            requests=self.requests.total,
            found=self.found,
        )

    def summary(self) -> str:
        """``preflight (0.4 s, 9 requests): …``, one line."""
        seconds = time.monotonic() - self._started
        return f"preflight ({seconds:.1f} s, {self.requests.total} requests): " + "; ".join(
            self.found
        )


def first_refs(
    catalog: RowSource, record_types: Iterable[RecordType], filt: CatalogFilter, count: int
) -> Sequence[ObjectRef]:
    """The first ``count`` references of the selection, in enumeration order."""
    refs: list[ObjectRef] = []
    for record_type in record_types:
        rows = count if filt.limit is None else min(filt.limit, count)
        for row in catalog.walk(record_type, dataclasses.replace(filt, limit=rows)):
            refs += row.objects
            if len(refs) >= count:
                return refs[:count]
    return refs


def checked_source(settings: Settings) -> BucketSettings:
    """The source bucket, answering (``orphans`` reads nothing else)."""
    source = _side(settings, "source")
    source.require_bucket("source")
    check_bucket(source, "source")
    return source


def check_side(settings: BucketSettings, side: str) -> HeadBucketOutputTypeDef | None:
    """The bucket answers (its HeadBucket answer), or the directory is there (and writable
    as a destination: None)."""
    if settings.path is not None:
        check_directory(settings, side)
        return None
    return check_bucket(settings, side)


@contextlib.contextmanager
def open_catalog(
    settings: Settings,
    record_types: Iterable[RecordType],
    key_prefix: str | None = None,
    *,
    status: TextIO | None = None,
) -> Iterator[Catalog]:
    """The database's catalog, its tables checked; ``key_prefix`` defaults to the source's.
    The connecting line goes to ``status`` (None: quiet), the ``phase`` event to the log."""
    database = settings.require_database()
    if key_prefix is None:
        key_prefix = settings.source.key_prefix if settings.source else ""
    bastion = settings.bastion
    through = f" through the SSH bastion {bastion.describe()}" if bastion else ""
    phase("connecting", f"connecting to the database{through}…", status)
    with open_database(database, settings.bastion) as conn:
        catalog = Catalog(conn, page_size=database.page_size, key_prefix=key_prefix)
        for record_type in record_types:  # a table that is not there fails before any work
            catalog.table_columns(record_type)
        yield catalog
