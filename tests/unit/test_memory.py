"""Freed object buffers are returned to the OS where glibc allows it."""

from __future__ import annotations

import platform

from mastodon_s3_sync.copying.memory import return_large_buffers_to_the_os


def test_the_mmap_threshold_is_fixed_on_glibc() -> None:
    assert return_large_buffers_to_the_os() is (platform.libc_ver()[0] == "glibc")
