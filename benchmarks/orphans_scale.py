"""``orphans`` at scale: list requests, peak RSS and time over a bucket of 1,000,000 objects.

The database side is real: a throwaway PostgreSQL seeded with the sandbox's realistic rows
(``COPY``, as ``plan_enumeration`` does). The bucket side is a sorted file standing for a
provider's listing: every key the database references (every 50th left out, as files gone;
every 100th at its legacy placement), topped up with orphans (failed uploads in Mastodon's
folders, an admin's files outside them) to the size asked. A child process runs
:func:`~mastodon_s3_sync.copying.orphans.find_orphans` over it through the storage Protocol's
``list_page`` (1,000 keys a page, each page one request) and writes the JSON report as the
command does; GNU time reads its peak RSS. The child must find exactly the orphans planted.

    .venv/bin/python -m benchmarks.orphans_scale [--objects 1000000] [--media-rows 500000]

Measures the working tree (not a frozen commit). Writes benchmarks/results/orphans_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from benchmarks.measure import timed
from benchmarks.versions import machine_description
from mastodon_s3_sync.cli.orphans_command import write_orphans_report
from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.config.values import parse_database_url
from mastodon_s3_sync.copying.orphans import find_orphans
from mastodon_s3_sync.demo.loader import insert_rows
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.schema import SchemaVersion, create_schema
from mastodon_s3_sync.demo.seed import generate_rows
from mastodon_s3_sync.mastodon.catalog import Catalog, CatalogFilter
from mastodon_s3_sync.mastodon.database import open_database
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.mastodon.selection import select

RESULTS_JSON = Path(__file__).parent / "results" / "orphans_scale.json"
PAGE_SIZE = 5000
GONE_EVERY, LEGACY_EVERY = 50, 100
OTHER_ROWS_PER_MEDIA_ROW = {"accounts": 1 / 25, "custom_emojis": 1 / 250, "preview_cards": 1 / 25}
# Where the planted orphans go (share of them): failed uploads and leftovers in Mastodon's
# folders, and an admin's own files outside them.
ORPHAN_PLACES = (
    (0.90, "media_attachments/files/"),
    (0.05, "cache/media_attachments/files/"),
    (0.04, "accounts/avatars/"),
    (0.01, "static/"),
)


class SortedFileListing:
    """A bucket's ordered listing read from a sorted ``key<TAB>size`` file: the storage
    Protocol's ``list_page``, each call one request, the file never held in memory."""

    def __init__(self, path: Path) -> None:
        self._file: IO[bytes] = path.open("rb")
        self._size = path.stat().st_size
        self.pages = 0

    def _line_start(self, offset: int) -> int:
        """Where the first line starting at or after ``offset`` starts."""
        if offset == 0:
            return 0
        self._file.seek(offset - 1)
        self._file.readline()
        return self._file.tell()

    def _key_at(self, start: int) -> bytes | None:
        self._file.seek(start)
        line = self._file.readline()
        return line.split(b"\t", 1)[0] if line else None

    def _first(self, prefix: bytes, start_after: bytes) -> int:
        """The start of the first line whose key is after ``start_after`` and not below
        ``prefix`` (binary search over byte offsets; the keys are sorted)."""
        low, high = 0, self._size
        while low < high:
            middle = (low + high) // 2
            key = self._key_at(self._line_start(middle))
            if key is None or (key > start_after and key >= prefix):
                high = middle
            else:
                low = middle + 1
        return self._line_start(low)

    def list_page(self, prefix: str, start_after: str, max_keys: int) -> dict[str, Any]:
        """ListObjectsV2, one page."""
        self.pages += 1
        wanted = prefix.encode()
        self._file.seek(self._first(wanted, start_after.encode()))
        contents: list[dict[str, Any]] = []
        for line in self._file:
            key, size = line.rstrip(b"\n").split(b"\t")
            if not key.startswith(wanted):
                break
            if len(contents) == max_keys:
                return {"Contents": contents, "IsTruncated": True}
            contents.append({"Key": key.decode(), "Size": int(size)})
        return {"Contents": contents, "IsTruncated": False}

    def get_object(self, key: str) -> dict[str, Any]:
        raise AssertionError("orphans only lists")

    head_object = get_object

    def put_object(self, key: str, body: bytes, fields: Mapping[str, Any]) -> dict[str, Any]:
        raise AssertionError("orphans never writes")

    def is_public(self, key: str) -> bool:
        raise AssertionError("orphans only lists")


def child(url: str, listing: Path, report: Path) -> None:
    """Find the orphans of ``listing`` against the database; the figures on stderr."""
    store = SortedFileListing(listing)
    started = time.perf_counter()
    with open_database(parse_database_url(url)) as conn:
        catalog = Catalog(conn, page_size=PAGE_SIZE)
        left_out = select().left_out(catalog)
        with find_orphans(catalog, store) as found:
            merged = time.perf_counter()
            source = BucketSettings(bucket="synthetic-listing")
            write_orphans_report(report, found, source, datetime.now(UTC), left_out)
            figures = {
                "objects": sum(t.objects for t in [*found.folders, *found.outside]),
                "orphans": sum(t.orphans for t in [*found.folders, *found.outside]),
                "at_alternate": sum(t.at_alternate for t in found.folders),
                "late_keys": found.late_keys,
                "list_requests": found.list_requests,
                "pages_served": store.pages,
                "merge_seconds": merged - started,
                "seconds": time.perf_counter() - started,
            }
    print(json.dumps(figures), file=sys.stderr)


def write_listing(url: str, work: Path, objects: int) -> tuple[Path, dict[str, int]]:
    """The sorted listing: referenced keys (some gone, some at a legacy placement), then
    orphans up to ``objects`` in all."""
    unsorted, listing = work / "listing.unsorted", work / "listing.tsv"
    counts = {"referenced": 0, "gone": 0, "at_alternate": 0, "orphans": 0}
    with unsorted.open("w") as out, open_database(parse_database_url(url)) as conn:
        catalog, index = Catalog(conn, page_size=PAGE_SIZE), 0
        for record_type in RecordType:
            for row in catalog.walk(record_type, CatalogFilter()):
                for ref in row.objects:
                    index += 1
                    if index % GONE_EVERY == 0:
                        counts["gone"] += 1
                        continue
                    key = ref.key
                    if index % LEGACY_EVERY == 1 and ref.alternates:
                        key, counts["at_alternate"] = ref.alternates[0], counts["at_alternate"] + 1
                    out.write(f"{key}\t{ref.expected_size or 2048}\n")
                    counts["referenced"] += 1
        counts["orphans"] = objects - counts["referenced"]
        if counts["orphans"] < 0:
            raise SystemExit(f"the database references more than {objects:,} objects: seed less")
        rng, left = random.Random(7), counts["orphans"]
        for share, folder in ORPHAN_PLACES:
            planted = round(counts["orphans"] * share) if folder != "static/" else left
            left -= planted
            for _ in range(planted):
                place = "/".join(f"{rng.randrange(1000):03d}" for _ in range(6))
                out.write(f"{folder}{place}/original/{rng.getrandbits(64):016x}.png\t4096\n")
    sort = ["sort", "-S", "256M", "-T", str(work), "-o", str(listing), str(unsorted)]
    subprocess.run(sort, check=True, env={**os.environ, "LC_ALL": "C"})  # byte order
    unsorted.unlink()
    return listing, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--media-rows", type=int, default=500_000)
    parser.add_argument("--output", type=Path, default=RESULTS_JSON)
    parser.add_argument("--child", nargs=3, metavar=("URL", "LISTING", "REPORT"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    started = time.perf_counter()
    with LocalPostgres() as cluster, tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        url = cluster.create_database("orphans_scale")
        conn = cluster.connect("orphans_scale")
        create_schema(conn, SchemaVersion.CURRENT)
        rows = {t: round(args.media_rows * n) for t, n in OTHER_ROWS_PER_MEDIA_ROW.items()}
        rows["media_attachments"] = args.media_rows
        for table, count in rows.items():
            insert_rows(conn, table, generate_rows(table, count, seed=1), SchemaVersion.CURRENT)
            conn.run(f"VACUUM ANALYZE {table}")
        conn.close()
        seeded = time.perf_counter()
        listing, planted = write_listing(url, work, args.objects)
        print(f"seeded {sum(rows.values()):,} rows and a listing of {args.objects:,} objects "
              f"in {time.perf_counter() - started:.0f} s: {planted}", flush=True)  # fmt: skip
        command = [sys.executable, "-m", "benchmarks.orphans_scale", "--child", url]
        run = timed([*command, str(listing), str(work / "report.json")])
        figures = json.loads(run.stderr.strip().splitlines()[-1])
        report_mib = (work / "report.json").stat().st_size / 1024**2
    exact = figures["orphans"] == planted["orphans"] and figures["objects"] == args.objects
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/orphans_scale.py", *sys.argv[1:]]),
        "elapsed_seconds": round(time.perf_counter() - started),
        "seed_seconds": round(seeded - started),
        "machine": machine_description(),
        "code": "the working tree (HEAD and its uncommitted changes)",
        "rows": rows,
        "planted": planted,
        "found": figures,
        "exact": exact,
        "peak_rss_mib": round(run.peak_rss_mib, 1),
        "cpu_seconds": round(run.cpu_seconds, 1),
        "wall_seconds": round(run.seconds, 1),
        "report_mib": round(report_mib, 1),
    }
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    print(
        f"{args.objects:,} objects: {figures['list_requests']:,} list requests "
        f"({figures['list_requests'] * 1000 / args.objects:.2f} per 1,000), peak RSS "
        f"{run.peak_rss_mib:.1f} MiB, {run.seconds:.1f} s wall ({run.cpu_seconds:.1f} s CPU); "
        f"orphans found {figures['orphans']:,} of {planted['orphans']:,} planted "
        f"({'exact' if exact else 'NOT EXACT'}); report {report_mib:.1f} MiB; wrote {args.output}"
    )
    if not exact:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
