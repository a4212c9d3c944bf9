"""S3 clients for any S3-compatible provider, and a preflight check of each side.

Clients are built once per process (per Lambda container) and passed in.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import botocore.exceptions
import botocore.loaders
import botocore.session
from botocore.config import Config

from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.storage.endpoint_errors import Endpoint
from mastodon_s3_sync.storage.protocol import ALL_USERS_URI, READ_PERMISSIONS, ObjectStore
from mastodon_s3_sync.storage.retry import RETRY_ATTEMPTS, RetryPolicy, is_transient

if TYPE_CHECKING:
    import botocore.credentials
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadBucketOutputTypeDef

PREFLIGHT_ATTEMPTS = 2
"""Attempts for the settings check: a wrong endpoint should be reported in seconds."""
PREFLIGHT_TIMEOUT_SECONDS = 5
"""Connect and read timeout of the settings check: HeadBucket answers in milliseconds, so
an endpoint that has not answered by then is the wrong one (or down)."""
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Bucket:
    """A bucket on one side, with the client that reaches it."""

    client: S3Client
    name: str
    key_prefix: str
    side: str  # "source" or "destination", for messages
    objects: ObjectStore = field(default=None)  # type: ignore[assignment]
    """GET/HEAD/PUT/ACL of single objects (default: botocore through ``client``)."""
    keeps_headers: bool = True
    """False for a directory (storage/disk.py): files written there keep no Content-Type."""

    def __post_init__(self) -> None:
        if self.objects is None:
            object.__setattr__(self, "objects", BotoObjects(self.client, self.name))


class BotoObjects:
    """The :class:`ObjectStore` of one bucket through a botocore client."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def get_object(self, key: str) -> dict[str, Any]:
        """GetObject; the ``Body`` streams."""
        return cast(dict[str, Any], self._client.get_object(Bucket=self._bucket, Key=key))

    def head_object(self, key: str) -> dict[str, Any]:
        """HeadObject."""
        return cast(dict[str, Any], self._client.head_object(Bucket=self._bucket, Key=key))

    def put_object(self, key: str, body: bytes, fields: Mapping[str, Any]) -> dict[str, Any]:
        """PutObject with boto3's field names (botocore takes no memoryview: copied)."""
        data = bytes(body) if isinstance(body, memoryview) else body
        return cast(
            dict[str, Any],
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data, **fields),
        )

    def is_public(self, key: str) -> bool:
        """Whether a grant lets AllUsers read the object."""
        grants = self._client.get_object_acl(Bucket=self._bucket, Key=key).get("Grants", [])
        return any(
            grant.get("Grantee", {}).get("URI") == ALL_USERS_URI
            and grant.get("Permission") in READ_PERMISSIONS
            for grant in grants
        )

    def list_page(self, prefix: str, start_after: str, max_keys: int) -> dict[str, Any]:
        """ListObjectsV2, one page."""
        return cast(
            dict[str, Any],
            self._client.list_objects_v2(
                Bucket=self._bucket, Prefix=prefix, StartAfter=start_after, MaxKeys=max_keys
            ),
        )


class RequestCounter:
    """Counts the HTTP requests that clients send (and the lean clients made from them, which
    emit the same event), retries included, by operation."""

    def __init__(self) -> None:
        self.by_operation: Counter[str] = Counter()
        self._lock = threading.Lock()

    def attach(self, client: S3Client) -> None:
        """Count every request ``client`` sends from now on."""
        client.meta.events.register("before-send.s3", self._count)

    def _count(self, event_name: str, **_: object) -> None:
        # Returning None lets the request go out (a value would stand in for the response).
        with self._lock:
            self.by_operation[event_name.rsplit(".", 1)[-1]] += 1

    @property
    def total(self) -> int:
        """All requests counted so far."""
        return sum(self.by_operation.values())


@dataclass(frozen=True)
class Session:
    """One side's AWS session: what its clients are made from, and what the lean client
    needs of it (credentials, certificate checks), read through public botocore APIs.

    A botocore session, not boto3's: boto3 adds resources and transfer managers we do not
    use, and importing it (with s3transfer) costs every command ~0.1 s before it starts."""

    core: botocore.session.Session
    ca_bundle: str | None = None
    """The side's own ``ca_bundle`` setting, over the profile's and ``AWS_CA_BUNDLE``."""

    def credentials(self) -> botocore.credentials.Credentials | None:
        """The session's credentials (refreshed by botocore when they are temporary)."""
        return self.core.get_credentials()

    def tls_verify(self) -> bool | str:
        """The certificate check its clients make: a CA bundle path (the side's
        ``ca_bundle``, the profile's or ``AWS_CA_BUNDLE``), or True for botocore's default."""
        bundle = self.ca_bundle or self.core.get_config_variable("ca_bundle")
        return str(bundle) if bundle else True


_CLIENT_CREATION = threading.Lock()
"""One client made at a time: it is CPU under the GIL, and the first parses the shared S3
model, which a second made at the same time (the preflight's two sides) would parse again."""


@functools.cache
def _models() -> botocore.loaders.Loader:
    """botocore's loader of service models, shared: each session would parse the S3 model
    and endpoint rules again (~0.2 s of CPU each)."""
    return botocore.loaders.create_loader()


def make_session(settings: BucketSettings) -> Session:
    """The session of one side's settings (profile, keys, region)."""
    core = botocore.session.Session()
    if settings.profile is not None:
        core.set_config_variable("profile", settings.profile)
    if settings.access_key_id and settings.secret_access_key:  # both or neither (settings)
        core.set_credentials(settings.access_key_id, settings.secret_access_key)
    if settings.region is not None:
        core.set_config_variable("region", settings.region)
    try:
        core.get_scoped_config()  # the profile's section of the AWS config files
    except botocore.exceptions.ProfileNotFound:
        raise SettingsError(
            f"profile {settings.profile!r} is not in the AWS config files; "
            "check the profile setting of this side"
        ) from None
    core.register_component("data_loader", _models())
    return Session(core, settings.ca_bundle)


def make_client(
    settings: BucketSettings,
    max_connections: int,
    attempts: int = RETRY_ATTEMPTS,
    session: Session | None = None,
    timeout_seconds: float | None = None,
    policy: RetryPolicy | None = None,
) -> S3Client:
    """A thread-safe client with retries (``policy``, else ``attempts`` of the default
    backoff) and the checksum settings non-AWS servers need; ``timeout_seconds`` replaces
    both the connect and the read timeout."""
    session = session or make_session(settings)
    policy = policy or RetryPolicy(attempts)
    config = policy.botocore_config().merge(
        Config(
            max_pool_connections=max_connections,
            connect_timeout=timeout_seconds or CONNECT_TIMEOUT_SECONDS,
            read_timeout=timeout_seconds or READ_TIMEOUT_SECONDS,
            tcp_keepalive=True,
            # Every upload carries Content-MD5, which the server checks; hashing each body
            # a second time with SHA-256 for the signature (botocore's default over plain
            # HTTP) would only cost CPU. Over HTTPS botocore already skips it.
            s3={
                "addressing_style": settings.addressing_style,
                "payload_signing_enabled": False,
            },
            # Since boto3 1.36 uploads carry CRC32 trailers by default, which several
            # S3-compatible servers reject; we send Content-MD5 ourselves instead.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
    )
    try:
        with _CLIENT_CREATION:
            client = cast(
                "S3Client",
                session.core.create_client(
                    "s3",
                    endpoint_url=settings.endpoint_url,
                    config=config,
                    verify=session.tls_verify(),
                ),
            )
    except ValueError as error:  # e.g. a malformed endpoint URL or region
        raise SettingsError(f"{error}; check endpoint_url and region of this side") from None
    # Answered before botocore's own handler, which stops retrying for the whole client
    # once ~35 errors drained its retry quota: a provider down for a few seconds would
    # then fail every object in flight instead of costing time.
    # (The stubs type handlers as returning None; needs-retry handlers return the delay.)
    client.meta.events.register_first("needs-retry.s3", TransientRetries(policy))  # type: ignore[arg-type]
    return client


class TransientRetries:
    """Retries throttling, 5xx answers and broken connections with the backoff of
    ``policy``, up to its attempts per request, without a retry quota.

    Registered on ``needs-retry``: returns the seconds to wait (botocore sleeps them), or
    None to leave the decision to botocore's standard handler (other errors, or attempts
    used up).
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(
        self,
        attempts: int,
        response: tuple[object, dict[str, Any]] | None = None,
        caught_exception: Exception | None = None,
        **_: object,
    ) -> float | None:
        if not self.policy.may_retry(attempts) or not _is_transient(response, caught_exception):
            return None
        return self.policy.delay(attempts)


def _is_transient(
    response: tuple[object, dict[str, Any]] | None, caught_exception: Exception | None
) -> bool:
    if caught_exception is not None:
        return isinstance(
            caught_exception,
            botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError,
        )
    if response is None:
        return False
    http_response, parsed = response
    status = getattr(http_response, "status_code", 0)
    return is_transient(status, str(parsed.get("Error", {}).get("Code", "")))


def same_endpoint_and_credentials(source: BucketSettings, destination: BucketSettings) -> bool:
    """Whether a server-side CopyObject can move bytes without passing through us."""
    return (
        source.path is None
        and destination.path is None
        and source.endpoint_url == destination.endpoint_url
        and source.region == destination.region
        and source.profile == destination.profile
        and source.access_key_id == destination.access_key_id
        and source.secret_access_key == destination.secret_access_key
    )


def preflight_client(settings: BucketSettings) -> S3Client:
    """A client for the settings check: few attempts, short timeouts."""
    return make_client(settings, 1, PREFLIGHT_ATTEMPTS, timeout_seconds=PREFLIGHT_TIMEOUT_SECONDS)


PROBE_RETRIES = RetryPolicy(4, base_seconds=0.25)
"""The preflight's object probes, once HeadBucket answered: a transient error is retried
(within about 2 s), a provider that always fails is still refused in seconds."""


def probe_client(settings: BucketSettings) -> S3Client:
    """A client for the preflight's object probes: short timeouts, a few quick retries."""
    return make_client(settings, 1, timeout_seconds=PREFLIGHT_TIMEOUT_SECONDS, policy=PROBE_RETRIES)


def bucket_endpoint(settings: BucketSettings, side: str) -> Endpoint:
    """How messages name one side's endpoint and the setting that chooses it."""
    return Endpoint(
        f"the {side} endpoint",
        settings.endpoint_url or "AWS S3",
        f"[{side}] endpoint_url (or --{side}-endpoint-url)",
        "S3",
        PREFLIGHT_TIMEOUT_SECONDS,
        f"[{side}] ca_bundle (--{side}-ca-bundle) or AWS_CA_BUNDLE",
    )


def check_bucket(settings: BucketSettings, side: str) -> HeadBucketOutputTypeDef:
    """HeadBucket with few retries, and errors that name the setting to fix; its answer."""
    client = preflight_client(settings)
    try:
        return client.head_bucket(Bucket=settings.require_bucket(side))
    except botocore.exceptions.ClientError as error:
        raise SettingsError(_refusal(error, settings, side, client.meta.region_name)) from None
    except botocore.exceptions.NoCredentialsError:
        raise SettingsError(
            f"no credentials for the {side}: set [{side}] access_key_id and "
            f"secret_access_key, a profile (--{side}-profile), or AWS_ACCESS_KEY_ID"
        ) from None
    except botocore.exceptions.BotoCoreError as error:
        reason = bucket_endpoint(settings, side).explain(error)
        # Anything else botocore refuses before sending (partial credentials, a profile
        # that cannot be read) says what is wrong in its own words.
        raise SettingsError(reason or f"the {side} bucket cannot be checked: {error}") from None


def _refusal(
    error: botocore.exceptions.ClientError, settings: BucketSettings, side: str, region: str
) -> str:
    """The message for a HeadBucket answered with an error status."""
    where, name = settings.endpoint_url or "AWS S3", settings.bucket
    code = str(error.response.get("Error", {}).get("Code", ""))
    metadata = error.response.get("ResponseMetadata", {})
    status = metadata.get("HTTPStatusCode")
    if code in ("404", "NoSuchBucket") or status == 404:
        return (
            f"{side} bucket {name!r} does not exist at {where}; "
            f"check [{side}] bucket (or --{side}) and endpoint_url"
        )
    if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return (
            f"{side} credentials were refused by {where} for bucket {name!r} "
            f"({code or status}); check [{side}] access_key_id/secret_access_key "
            f"or profile (--{side}-profile)"
        )
    # S3 answers a request for a bucket of another region with a redirect (HeadBucket: a
    # bare 301) or, for a signature of the wrong region, AuthorizationHeaderMalformed;
    # both name the bucket's region.
    home = metadata.get("HTTPHeaders", {}).get("x-amz-bucket-region") or str(
        error.response.get("Error", {}).get("Region", "")
    )
    if status == 301 or code in ("PermanentRedirect", "AuthorizationHeaderMalformed"):
        place = f"region {home}" if home else "another region"
        return (
            f"{side} bucket {name!r} is in {place}, not {region}: set [{side}] region "
            f"(--{side}-region) to it, and [{side}] endpoint_url to that region's endpoint "
            "(or leave it out on AWS)"
        )
    return (
        f"{side} bucket {name!r} at {where} answered {code or status}; check [{side}] "
        "bucket, endpoint_url and region"
    )
