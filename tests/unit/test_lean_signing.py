"""SigV4 header values as the lean client signs them."""

from __future__ import annotations

import pytest

from mastodon_s3_sync.storage.lean import _trim


@pytest.mark.parametrize(
    ("value", "signed"),
    [
        ("image/png", "image/png"),
        ("  public,  max-age=1\t immutable ", "public, max-age=1 immutable"),
        ("a\tb", "a b"),
        ("caf\xa0 \xa0x", "caf\xa0 \xa0x"),  # a latin-1 \xa0 is no space to SigV4
    ],
)
def test_header_values_are_trimmed_as_sigv4_says(value: str, signed: str) -> None:
    assert _trim(value) == signed
