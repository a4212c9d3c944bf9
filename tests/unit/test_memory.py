"""Freed object buffers are returned to the OS where glibc allows it."""

from __future__ import annotations

import platform
import threading

from mastodon_s3_sync.copying.memory import return_large_buffers_to_the_os
from mastodon_s3_sync.copying.results import ByteBudget


def test_the_mmap_threshold_is_fixed_on_glibc() -> None:
    assert return_large_buffers_to_the_os() is (platform.libc_ver()[0] == "glibc")


MIB = 1024 * 1024


def test_large_buffers_are_lent_again_and_small_ones_are_fresh() -> None:
    budget = ByteBudget(16 * MIB)
    with budget.buffer(3 * MIB) as first:
        assert len(first) == 3 * MIB
        lent = first.obj
    with budget.buffer(3 * MIB - 5) as second:  # about the same size: the same buffer
        assert len(second) == 3 * MIB - 5
        assert second.obj is lent
    with budget.buffer(1000) as small, budget.buffer(1000) as other:
        assert small.obj is not other.obj


def test_kept_buffers_count_against_the_budget_and_make_room_when_needed() -> None:
    # given buffers of several sizes kept after use, together near the whole budget
    budget = ByteBudget(8 * MIB)
    for size in (1 * MIB, 2 * MIB, 4 * MIB):
        with budget.buffer(size):
            pass
    # when a worker needs the whole budget, from another thread
    held = threading.Event()

    def take_everything() -> None:
        with budget.hold(8 * MIB):
            held.set()

    worker = threading.Thread(target=take_everything)
    worker.start()
    worker.join(timeout=5)
    # then the kept buffers were dropped for it instead of making it wait for ever
    assert held.is_set()
    with budget.buffer(4 * MIB) as again:
        assert len(again) == 4 * MIB
