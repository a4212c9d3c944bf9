"""The on-disk sort behind ``orphans``' out-of-order keys: exact, in any run and fan-in."""

from __future__ import annotations

import random

import pytest

from mastodon_s3_sync.copying.orphans import sorted_on_disk


@pytest.mark.parametrize(
    ("count", "run_keys", "fan_in"),
    [(0, 3, 2), (1, 3, 2), (200, 7, 2), (200, 1000, 64), (97, 5, 3)],
)
def test_sorted_on_disk_is_sorted(count: int, run_keys: int, fan_in: int) -> None:
    rnd = random.Random(count)
    keys = [
        f"accounts/avatars/{rnd.randrange(10**6):06d}/original/{rnd.random()}" for _ in range(count)
    ]
    entries = [[key, rnd.random() < 0.5] for key in keys]
    assert list(sorted_on_disk(entries, run_keys, fan_in)) == sorted(
        (key, alternate) for key, alternate in entries
    )


def test_equal_keys_put_the_canonical_first_and_stopping_early_leaves_no_file() -> None:
    merged = sorted_on_disk([["k", True], ["k", False], ["a", True]], run_keys=1, fan_in=2)
    assert next(merged) == ("a", True)
    assert next(merged) == ("k", False)
    merged.close()  # the runs are removed (an unclosed file would fail the test)
