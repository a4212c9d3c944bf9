"""The deployed stack exports what the operations commands look up (and what their tests fake)."""

from __future__ import annotations

from mastodon_s3_sync.contract import STACK_OUTPUTS
from tests.support.stack_fixture import OUTPUT_NAMES
from tests.support.synthesized import Synthesized


def test_the_stack_exports_every_output_the_operations_read(example: Synthesized) -> None:
    outputs = set(example.template.to_json()["Outputs"])
    assert set(STACK_OUTPUTS.values()) <= outputs
    # the stand-in stack of tests/support/stack_fixture.py has real output names
    assert set(OUTPUT_NAMES) <= outputs
