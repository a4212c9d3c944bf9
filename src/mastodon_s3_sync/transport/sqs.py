"""SQS for the fan-out: batched sends that retry the entries SQS reports failed; the client."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol, cast

import botocore.exceptions
import botocore.session
from botocore.config import Config

from mastodon_s3_sync.errors import SettingsError, SyncError
from mastodon_s3_sync.storage.endpoint_errors import Endpoint
from mastodon_s3_sync.storage.retry import REQUEST_RETRIES, RetryPolicy
from mastodon_s3_sync.storage.s3 import PREFLIGHT_ATTEMPTS, PREFLIGHT_TIMEOUT_SECONDS

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef


SQS_BATCH_ENTRIES = 10


SQS_BATCH_BYTES = 256 * 1024


SEND_RETRIES = RetryPolicy(attempts=6, base_seconds=0.1, max_backoff_seconds=2.0)
"""Sends of the entries SQS reported failed (throttled, internal errors)."""


SENDS_IN_FLIGHT = 4


class QueueError(SyncError):
    """Messages could not be sent to the queue."""


class MessageSink(Protocol):
    """Where message bodies go: SQS, or a list in tests and benchmarks."""

    def send(self, body: str) -> None: ...

    def flush(self) -> None: ...


class SqsSink:
    """Sends bodies with ``SendMessageBatch``: 10 per call, several calls in flight,
    entries reported ``Failed`` retried with backoff. :meth:`flush` waits for all."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        in_flight: int = SENDS_IN_FLIGHT,
        retry: RetryPolicy = SEND_RETRIES,
    ):
        self._client = client
        self._retry = retry
        self._queue_url = queue_url
        self._pool = ThreadPoolExecutor(in_flight, thread_name_prefix="sqs-send")
        self._pending: list[Future[None]] = []
        self._batch: list[str] = []
        self._batch_bytes = 0

    def send(self, body: str) -> None:
        """Queue one body for sending."""
        size = len(body.encode())
        if self._batch and (
            len(self._batch) == SQS_BATCH_ENTRIES or self._batch_bytes + size > SQS_BATCH_BYTES
        ):
            self._submit()
        self._batch.append(body)
        self._batch_bytes += size

    def _submit(self) -> None:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        running = []
        for future in self._pending:
            if future.done():
                future.result()  # a failed send stops the enumeration now
            else:
                running.append(future)
        if len(running) >= SENDS_IN_FLIGHT * 2:  # bounded memory: wait for the oldest
            running.pop(0).result()
        self._pending = [*running, self._pool.submit(self._send_batch, batch)]

    def _send_batch(self, bodies: list[str]) -> None:
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies)
        ]
        attempt = 1
        while True:
            response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            failed = {item["Id"]: item for item in response.get("Failed", [])}
            if not failed:
                return
            permanent = [item for item in failed.values() if item.get("SenderFault")]
            if permanent or not self._retry.may_retry(attempt):
                item = (permanent or list(failed.values()))[0]
                raise QueueError(
                    f"SQS refused {len(failed)} message(s): {item.get('Code')}: "
                    f"{item.get('Message', '')}"
                )
            entries = [entry for entry in entries if entry["Id"] in failed]
            self._retry.pause(attempt)
            attempt += 1

    def flush(self) -> None:
        """Send what is batched and wait for every call; raises the first failure."""
        if self._batch:
            self._submit()
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        """Stop the sender threads."""
        self._pool.shutdown(wait=True)


def make_sqs_client(
    endpoint_url: str | None,
    region: str | None,
    profile: str | None = None,
    retry: RetryPolicy = REQUEST_RETRIES,
    timeout_seconds: float | None = None,
) -> SQSClient:
    """An SQS client with the same retry behaviour as the S3 clients (``timeout_seconds``
    replaces botocore's connect and read timeouts)."""
    config = retry.botocore_config()
    if timeout_seconds is not None:
        config = config.merge(Config(connect_timeout=timeout_seconds, read_timeout=timeout_seconds))
    try:
        session = botocore.session.Session(profile=profile)
        client = session.create_client(
            "sqs", region_name=region, endpoint_url=endpoint_url, config=config
        )
        return cast("SQSClient", client)
    except botocore.exceptions.ProfileNotFound:
        raise SettingsError(
            f"--profile: profile {profile!r} is not in the AWS config files"
        ) from None
    except botocore.exceptions.NoRegionError:
        raise SettingsError(
            "no region for the queue: pass --region (the queue's, as in its URL) or set "
            "AWS_DEFAULT_REGION"
        ) from None
    except ValueError as error:  # e.g. a malformed endpoint URL or region
        raise SettingsError(f"{error}; check --sqs-endpoint-url and --region") from None


_NO_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_REFUSED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
    }
)


def check_queue(
    endpoint_url: str | None, region: str | None, profile: str | None, queue_url: str
) -> None:
    """GetQueueAttributes with few retries and short timeouts: a wrong queue, endpoint,
    region or credentials fails at start, naming the flag to fix."""
    client = make_sqs_client(
        endpoint_url,
        region,
        profile,
        RetryPolicy(PREFLIGHT_ATTEMPTS),
        timeout_seconds=PREFLIGHT_TIMEOUT_SECONDS,
    )
    endpoint = Endpoint(
        "the SQS endpoint",
        endpoint_url or client.meta.endpoint_url,
        "--sqs-endpoint-url (and --region)",
        "SQS",
        PREFLIGHT_TIMEOUT_SECONDS,
    )
    try:
        client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    except botocore.exceptions.ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _NO_QUEUE:
            raise SettingsError(
                f"no queue {queue_url} at {endpoint.url}; check --queue-url and --region"
            ) from None
        if code in _REFUSED:
            raise SettingsError(
                f"the SQS endpoint {endpoint.url} refused our credentials ({code}); check "
                "--profile or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            ) from None
        raise SettingsError(
            f"the queue {queue_url} at {endpoint.url} answered {code}; check --queue-url"
        ) from None
    except botocore.exceptions.NoCredentialsError:
        raise SettingsError(
            "no credentials for SQS: pass --profile or set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY"
        ) from None
    except botocore.exceptions.BotoCoreError as error:
        raise SettingsError(
            endpoint.explain(error) or f"the queue cannot be checked: {error}"
        ) from None
