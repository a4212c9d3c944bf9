"""The checks before any copy, each seconds long: what would otherwise be found after hours.

A report path that cannot be written, a destination that refuses writes or drops the ACL
it is given, ACLs that a later ``verify`` cannot read, and a source that holds none of the
objects the database references (a wrong bucket or ``S3_KEY_PREFIX``) each refuse here with
one line that names the setting to fix. Every check returns what it found, for the line
``config check`` prints and the one ``run`` prints before it starts.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import botocore.exceptions

from mastodon_s3_sync.config.settings import AclMode, BucketSettings
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.layout import ObjectRef, apply_key_prefix
from mastodon_s3_sync.storage.protocol import PUBLIC_READ, ObjectStore, acl_class, is_not_found
from mastodon_s3_sync.storage.s3 import BotoObjects, bucket_endpoint

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PROBE_FOLDER = "mastodon-s3-sync-probe"
"""Where the destination's probe object is written (and at once deleted)."""
PROBE_BODY = b"mastodon-s3-sync preflight: a test write, deleted again\n"
SOURCE_PROBE_REFERENCES = 200
"""How many of the first references are looked for at the source."""
SOURCE_PROBE_ENOUGH = 3
"""Found this many: the source is the right one, stop looking. Also the size of the first
batch, so a right source costs this many HEADs (a wrong one then gets the threads)."""
SOURCE_PROBE_MIN_REFERENCES = 20
"""Fewer references than this prove nothing either way (a small selection)."""
SOURCE_PROBE_MIN_SHARE = 0.05
"""Less than this share found: the source is the wrong bucket or key prefix."""
SOURCE_PROBE_THREADS = 8
NO_ACL_ADVICE = (
    "use --acl none ([copy] acl) and a bucket policy that lets everyone read public media"
)
_REQUEST_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


def _where(settings: BucketSettings) -> str:
    if settings.path is not None:
        return "this machine"
    return settings.endpoint_url or "AWS S3"


def _code(error: botocore.exceptions.ClientError) -> str:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.response.get("Error", {}).get("Code") or status)


def _unreachable(settings: BucketSettings, side: str, error: Exception) -> SettingsError:
    reason = bucket_endpoint(settings, side).explain(error) or str(error)
    return SettingsError(reason)


def check_report_path(path: Path, flag: str = "--report") -> str:
    """That ``path`` can be written: created and removed (a file already there is kept)."""
    if path.is_dir():
        raise SettingsError(f"{flag} {path} is a directory; give a file name in it")
    if not path.parent.is_dir():
        raise SettingsError(f"{flag} {path}: the directory {path.parent} does not exist")
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as error:
        raise SettingsError(f"{flag} {path} cannot be written ({error.strerror})") from None
    if not existed:
        path.unlink()
    return f"{path} writable"


def probe_destination(client: S3Client, settings: BucketSettings, acl: AclMode) -> str:
    """Write a probe object with the ACL ``acl`` gives public media, read that ACL back
    (unless ``acl`` is none), and delete it: a destination that refuses writes, or keeps
    no ACL, refuses here."""
    key = apply_key_prefix(settings.key_prefix, f"{PROBE_FOLDER}/{secrets.token_hex(8)}")
    where, name = _where(settings), settings.require_bucket("destination")
    canned = {AclMode.NONE: None, AclMode.PRIVATE: "private"}.get(acl, PUBLIC_READ)
    fields = {"ACL": canned} if canned else {}
    try:
        client.put_object(Bucket=name, Key=key, Body=PROBE_BODY, **fields)  # type: ignore[arg-type]
    except botocore.exceptions.ClientError as error:
        code = _code(error)
        if code == "AccessControlListNotSupported":
            raise SettingsError(
                f"destination bucket {name!r} at {where} has ACLs disabled: {NO_ACL_ADVICE}"
            ) from None
        raise SettingsError(
            f"destination bucket {name!r} at {where} refused a test write ({code}): its keys "
            "need PutObject (and PutObjectAcl unless --acl none); check [destination] "
            "access_key_id/secret_access_key or profile, and the bucket policy"
        ) from None
    except botocore.exceptions.BotoCoreError as error:
        raise _unreachable(settings, "destination", error) from None
    try:
        kept = _acl_kept(client, settings, key, canned)
    finally:
        with contextlib.suppress(*_REQUEST_ERRORS):
            client.delete_object(Bucket=name, Key=key)
    return f"takes writes{kept} (test object written and deleted)"


def _acl_kept(client: S3Client, settings: BucketSettings, key: str, canned: str | None) -> str:
    if canned is None:
        return ""
    where = _where(settings)
    try:
        actual = acl_class(BotoObjects(client, settings.require_bucket("destination")), key)
    except botocore.exceptions.ClientError as error:
        raise SettingsError(
            f"the destination at {where} answered GetObjectAcl with {_code(error)}: it keeps "
            f"no object ACLs; {NO_ACL_ADVICE}"
        ) from None
    except botocore.exceptions.BotoCoreError as error:
        raise _unreachable(settings, "destination", error) from None
    if actual != canned:
        raise SettingsError(
            f"the destination at {where} accepted ACL {canned} on a test object but kept it "
            f"{actual}: it ignores canned ACLs; {NO_ACL_ADVICE}"
        )
    return f", keeps ACL {canned}"


def check_acl_reads(client: S3Client, settings: BucketSettings, side: str, why: str) -> str:
    """Read one object's ACL at ``side`` (``why`` says which flag needs it): a provider
    without ``GetObjectAcl`` refuses at start instead of failing every object slowly. An
    empty or unlistable bucket leaves the check to the work itself."""
    prefix = f"{settings.key_prefix.strip('/')}/" if settings.key_prefix.strip("/") else ""
    name = settings.require_bucket(side)
    try:
        listed = client.list_objects_v2(Bucket=name, Prefix=prefix, MaxKeys=1)
    except _REQUEST_ERRORS as error:
        return f"no ACL read: the bucket could not be listed ({type(error).__name__})"
    objects = listed.get("Contents", [])
    if not objects:
        return "no object to read an ACL from (empty under this prefix)"
    key = objects[0]["Key"]
    try:
        client.get_object_acl(Bucket=name, Key=key)
    except botocore.exceptions.ClientError as error:
        raise SettingsError(
            f"{why} reads each {side} object's ACL, but the {side} at {_where(settings)} "
            f"answered GetObjectAcl with {_code(error)}: a provider without ACLs needs "
            "--acl public-read, private or none ([copy] acl)"
        ) from None
    except botocore.exceptions.BotoCoreError as error:
        reason = bucket_endpoint(settings, side).explain(error) or str(error)
        raise SettingsError(f"reading a {side} object's ACL failed: {reason}") from None
    return f"object ACLs readable (tried {key!r})"


def check_source_holds(
    objects: ObjectStore, settings: BucketSettings, refs: Sequence[ObjectRef]
) -> str:
    """Look for the first references at the source under every alternate key: when
    nearly none is there, the source bucket or its key prefix is wrong."""
    found = checked = 0
    with ThreadPoolExecutor(SOURCE_PROBE_THREADS, thread_name_prefix="preflight") as pool:
        while checked < len(refs) and found < SOURCE_PROBE_ENOUGH:
            size = SOURCE_PROBE_THREADS if checked else SOURCE_PROBE_ENOUGH
            batch = refs[checked : checked + size]
            found += sum(pool.map(lambda ref: _held(objects, settings, ref), batch))
            checked += len(batch)
    seen = f"{found} of the first {checked} referenced objects at the source"
    if checked >= SOURCE_PROBE_MIN_REFERENCES and found < SOURCE_PROBE_MIN_SHARE * checked:
        if settings.path is not None:
            raise SettingsError(
                f"only {seen}: is the directory {str(settings.path)!r} Mastodon's public/system "
                "(PAPERCLIP_ROOT_PATH)? check --source or [source] path; --allow-missing goes on"
            )
        prefix = settings.key_prefix or "(none)"
        raise SettingsError(
            f"only {seen}: is the source bucket {settings.bucket!r} at {_where(settings)} "
            f"with key prefix {prefix} (Mastodon's S3_BUCKET and S3_KEY_PREFIX) the right "
            "one? check --source or [source] bucket and key_prefix; --allow-missing goes on"
        )
    return seen


def _held(objects: ObjectStore, settings: BucketSettings, ref: ObjectRef) -> bool:
    for key in (ref.key, *ref.alternates):
        try:
            objects.head_object(key)
        except botocore.exceptions.ClientError as error:
            if is_not_found(error):
                continue
            raise SettingsError(
                f"the source at {_where(settings)} answered HeadObject with {_code(error)}; "
                "check [source] credentials and the bucket policy"
            ) from None
        except botocore.exceptions.BotoCoreError as error:
            raise _unreachable(settings, "source", error) from None
        return True
    return False
