"""What a copy takes and gives: options and the ACL they give, result, errors, and the
workers' shared memory budget."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from mastodon_s3_sync.config.settings import MIB, AclMode, CopySettings, PrivateObjects
from mastodon_s3_sync.mastodon.layout import ObjectRef
from mastodon_s3_sync.mastodon.models import never_public
from mastodon_s3_sync.outcomes import Outcome
from mastodon_s3_sync.storage.protocol import PRIVATE

DEFAULT_MEMORY_BUDGET_BYTES = 128 * MIB
"""Object bytes held in memory at once by all workers together, whatever their number."""


@dataclass(frozen=True, slots=True)
class CopyResult:
    """The outcome for one reference, where it was found and what moved."""

    ref: ObjectRef
    outcome: Outcome
    source_key: str | None = None
    destination_key: str | None = None
    bytes_copied: int = 0
    reason: str = ""
    made_private: bool = False
    """Written private though public at the source: Mastodon made it private (the database
    says so), so the source leaks it."""


@dataclass(frozen=True)
class CopyOptions:
    """How to copy: the user's copy settings, and what this run decides on top of them.

    ``force`` is a flag of one command, ``server_side`` follows from the two sides (only when
    they share endpoint and credentials), ``memory_budget_bytes`` bounds this process and
    ``acls_refused`` is what a preflight found (the destination drops ACLs): none is a
    setting a config file or the stack could give.
    """

    settings: CopySettings = field(default_factory=CopySettings)
    force: bool = False
    server_side: bool = False
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES
    acls_refused: bool = False

    @property
    def keeps_object_acls(self) -> bool:
        """Whether the destination keeps a per-object ACL, so a private object can be
        written private there: not with ``--acl none``, nor where ACLs are refused."""
        return self.settings.acl != AclMode.NONE and not self.acls_refused

    def withholds(self, ref: ObjectRef) -> bool:
        """Whether ``ref`` is left out: Mastodon made it private and the destination could
        not keep it private (unless ``--private-objects copy``)."""
        return (
            ref.private
            and not self.keeps_object_acls
            and self.settings.private_objects != PrivateObjects.COPY
        )


WITHHELD_REASON = "private by the database; the destination keeps no per-object ACL"


def fixed_acl(mode: AclMode, ref: ObjectRef) -> str:
    """The ACL a fixed ``mode`` (``public-read`` or ``private``) gives ``ref``:
    ``public-read`` never applies to an object Mastodon made private, nor to a type it
    uploads private (users' archive downloads): those are written ``private``."""
    if mode == AclMode.PUBLIC_READ and (ref.private or never_public(ref.record_type)):
        return PRIVATE
    return str(mode)


POOLED_BUFFER_BYTES = 1024 * 1024
"""Buffers from this size up are kept for reuse: glibc maps each one fresh (copying.memory),
and touching fresh pages cost more CPU than the copy itself (1.7 ms per MB on 16 threads)."""


class ByteBudget:
    """Lets workers hold at most ``limit`` bytes of object data at once, together.

    :meth:`buffer` lends buffers of 1 MiB and more from a pool; pooled buffers count against
    the limit too, and are dropped (largest first) when a worker needs their room."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._changed = threading.Condition()
        self._pool: list[bytearray] = []

    @contextlib.contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        """Wait until ``amount`` bytes fit in the budget, and keep them while inside."""
        amount = min(amount, self._limit)
        with self._changed:
            self._reserve(amount)
        try:
            yield
        finally:
            with self._changed:
                self._used -= amount
                self._changed.notify_all()

    @contextlib.contextmanager
    def buffer(self, amount: int) -> Iterator[memoryview]:
        """A writable buffer of exactly ``amount`` bytes, within the budget while inside
        (its contents are whatever the last borrower left)."""
        # Eight sizes per doubling: at most a fifth of a new buffer goes unused.
        step = 1 << max(max(amount - 1, 0).bit_length() - 3, 0)
        capacity = -(-amount // step) * step
        if amount < POOLED_BUFFER_BYTES or capacity > self._limit:
            with self.hold(amount):
                yield memoryview(bytearray(amount))
            return
        with self._changed:
            buffer = self._pooled(amount)
            if buffer is None:
                self._reserve(capacity)
                buffer = bytearray(capacity)
        try:
            with memoryview(buffer) as view:
                yield view[:amount]
        finally:
            with self._changed:
                self._pool.append(buffer)
                self._changed.notify_all()

    def _pooled(self, amount: int) -> bytearray | None:
        """The smallest pooled buffer that fits ``amount`` without wasting half of it."""
        fits = [i for i, b in enumerate(self._pool) if amount <= len(b) <= amount + amount // 2]
        if not fits:
            return None
        return self._pool.pop(min(fits, key=lambda i: len(self._pool[i])))  # already counted

    def _reserve(self, amount: int) -> None:
        """Count ``amount`` more bytes, dropping pooled buffers or waiting for room."""
        while self._used + amount > self._limit:
            if not self._pool:
                self._changed.wait()
                continue
            largest = max(range(len(self._pool)), key=lambda i: len(self._pool[i]))
            self._used -= len(self._pool.pop(largest))
        self._used += amount


class CopyError(Exception):
    """The object could not be copied; the message is the reason reported."""


class Interrupted(CopyError):
    """The run is stopping; the partial upload was aborted."""
