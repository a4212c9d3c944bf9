"""The invariant every fault scenario ends with, and the fault matrix they fill.

A pytest plugin (``pytest_plugins`` in tests/conftest.py): it prints the matrix at the end
of the session, gathered from every pytest-xdist worker when there are several.

After a run, each object the database referenced must be either at the destination
byte-identical (MD5) with its Content-Type, Cache-Control and ACL class, or listed in the
JSON report as missing or failed with a reason. Nothing may be silently absent, nothing
corrupt, nothing written outside the destination prefix or under a key nobody asked for,
and no multipart upload may be left open.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from mastodon_s3_sync.demo.media import SeedManifest
from mastodon_s3_sync.mastodon.layout import ObjectRef, apply_key_prefix

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"

INTACT = "intact"
"""At the destination, byte-identical, headers and ACL as at the source."""
LISTED_MISSING = "listed missing"
"""Not at the source: listed in the report's missing_keys with a reason."""
LISTED_FAILED = "listed failed"
"""Could not be copied: listed in the report's failed_keys with a reason."""
VANISHED = "deleted meanwhile"
"""Deleted (row and file) during the run: copied before, or listed missing."""


def acl_class(client: S3Client, bucket: str, key: str) -> str:
    """``public-read`` when the AllUsers group may read the object, else ``private``."""
    grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    public = any(
        grant.get("Grantee", {}).get("URI") == ALL_USERS
        and grant.get("Permission") in ("READ", "FULL_CONTROL")
        for grant in grants
    )
    return "public-read" if public else "private"


@dataclass
class Verdict:
    """What the check found: outcome counts, and every violation of the invariant."""

    counts: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def assert_holds(self) -> None:
        """Fail with every violation listed."""
        assert not self.violations, "invariant broken:\n" + "\n".join(self.violations[:40])


def _reasons(report: Mapping[str, Any], section: str) -> dict[str, str]:
    return {str(entry["key"]): str(entry["reason"]) for entry in report.get(section, [])}


def _destination_objects(client: S3Client, bucket: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["Size"]
    return found


def open_uploads(client: S3Client, bucket: str) -> list[str]:
    """Keys of the multipart uploads still open in ``bucket``."""
    try:
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    except client.exceptions.NoSuchUpload:
        return []  # rclone serve s3's answer when no upload was ever started in the bucket
    return [str(upload.get("Key")) for upload in uploads]


def check_invariant(
    *,
    refs: Iterable[ObjectRef],
    manifest: SeedManifest,
    destination: S3Client,
    bucket: str,
    report: Mapping[str, Any],
    destination_prefix: str = "",
    check_acl: bool = True,
    may_vanish: Collection[str] = (),
) -> Verdict:
    """Check the destination and the report against what the database referenced.

    ``refs`` are the references enumerated before the run, ``manifest`` what the source
    held; refs whose key is in ``may_vanish`` were deleted (row and file) during the run.
    """
    verdict = Verdict()
    missing, failed = _reasons(report, "missing_keys"), _reasons(report, "failed_keys")
    for key, reason in (*missing.items(), *failed.items()):
        if not reason.strip():
            verdict.violations.append(f"{key}: listed without a reason")
    present = _destination_objects(destination, bucket)
    expected_keys: set[str] = set()
    for ref in refs:
        seeded = manifest.for_ref(ref)
        if seeded is None:
            _check_absent(verdict, ref, missing, failed)
            continue
        key = apply_key_prefix(destination_prefix, seeded.key)
        expected_keys.add(key)
        if key in present:
            if _is_intact(verdict, destination, bucket, key, seeded, check_acl):
                verdict.counts[VANISHED if ref.key in may_vanish else INTACT] += 1
        elif ref.key in failed:
            verdict.counts[LISTED_FAILED] += 1
        elif ref.key in may_vanish:  # reported missing, or its row went before it was read
            verdict.counts[VANISHED] += 1
        else:
            verdict.violations.append(f"{ref.key}: silently absent from the destination")
    for key in present:
        if destination_prefix and not key.startswith(destination_prefix.rstrip("/") + "/"):
            verdict.violations.append(f"{key}: written outside prefix {destination_prefix!r}")
        elif key not in expected_keys:
            verdict.violations.append(f"{key}: at the destination, but nobody asked for it")
    for key in open_uploads(destination, bucket):
        verdict.violations.append(f"{key}: multipart upload left open")
    return verdict


def _check_absent(
    verdict: Verdict, ref: ObjectRef, missing: Mapping[str, str], failed: Mapping[str, str]
) -> None:
    if ref.key in missing:
        verdict.counts[LISTED_MISSING] += 1
    elif ref.key in failed:
        verdict.counts[LISTED_FAILED] += 1
    else:
        verdict.violations.append(f"{ref.key}: not at the source, yet not reported missing")


def _is_intact(
    verdict: Verdict,
    client: S3Client,
    bucket: str,
    key: str,
    seeded: Any,
    check_acl: bool,
) -> bool:
    got = client.get_object(Bucket=bucket, Key=key)
    body = got["Body"].read()
    problems = []
    if hashlib.md5(body, usedforsecurity=False).hexdigest() != seeded.md5:
        problems.append(f"corrupt ({len(body)} bytes, {seeded.size} expected)")
    if got.get("ContentType") != seeded.content_type:
        problems.append(f"Content-Type {got.get('ContentType')!r}")
    if got.get("CacheControl") != seeded.cache_control:
        problems.append(f"Cache-Control {got.get('CacheControl')!r}")
    if check_acl and seeded.acl is not None:
        acl = acl_class(client, bucket, key)
        if acl != seeded.acl:
            problems.append(f"ACL {acl}, {seeded.acl} at the source")
    for problem in problems:
        verdict.violations.append(f"{key}: {problem}")
    return not problems


@dataclass
class FaultMatrix:
    """Scenario x outcome counts, printed at the end of the test session."""

    rows: dict[str, Counter[str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def record(self, scenario: str, counts: Mapping[str, int], note: str = "") -> None:
        """Add (or replace) one scenario's row."""
        self.rows[scenario] = Counter(counts)
        if note:
            self.notes[scenario] = note

    def as_data(self) -> dict[str, dict[str, Any]]:
        """The rows and notes as plain dicts (what a pytest-xdist worker can send)."""
        return {"rows": {name: dict(row) for name, row in self.rows.items()}, "notes": self.notes}

    def merge(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        """Add the rows of :meth:`as_data` from another process."""
        for scenario, counts in data["rows"].items():
            self.record(scenario, counts, data["notes"].get(scenario, ""))

    def format(self) -> str:
        """A plain-text table, one row per scenario."""
        columns = [INTACT, LISTED_MISSING, LISTED_FAILED, VANISHED]
        width = max([len("scenario"), *(len(name) for name in self.rows)])
        header = f"{'scenario':<{width}} " + " ".join(f"{name:>17}" for name in columns)
        lines = [header, "-" * len(header)]
        for name, counts in self.rows.items():
            cells = " ".join(f"{counts.get(column, 0):>17}" for column in columns)
            note = self.notes.get(name, "")
            lines.append(f"{name:<{width}} {cells}" + (f"  {note}" if note else ""))
        return "\n".join(lines)


MATRIX = FaultMatrix()
"""The session's matrix: filled by the scenarios, printed by the hooks below."""
_WORKER_OUTPUT = "fault_matrix"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a pytest-xdist worker: hand this worker's rows to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_WORKER_OUTPUT] = MATRIX.as_data()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the pytest-xdist controller: take in the rows of a worker that finished."""
    data = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
    if data is not None:
        MATRIX.merge(data)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the scenario x outcome table when fault scenarios ran."""
    if MATRIX.rows:
        terminalreporter.section("fault matrix (objects per outcome)")
        terminalreporter.write_line(MATRIX.format())
