"""The README's first command: ``mastodon-s3-sync demo`` (quick mode) end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_copies_verifies_and_keeps_private_media_private(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mastodon_s3_sync", "demo", "--quick", "--reports", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    err = result.stderr
    seeded = re.search(r"source bucket: (\d+) objects .*, (\d+) files gone", err)
    assert seeded, err
    objects, gone = int(seeded[1]), int(seeded[2])
    assert gone > 0
    run = json.loads((tmp_path / "demo-run-report.json").read_text())
    assert (run["copied"], run["missing"], run["failed"]) == (objects, gone, 0)
    verify = json.loads((tmp_path / "demo-verify.json").read_text())
    assert verify["ok"] is True
    assert verify["matching"] == objects
    assert verify["absent_at_source"] == gone
    assert set(verify["problems"].values()) == {0}
    private = re.search(r"(\d+) at the source, (\d+) of them still private", err)
    assert private, err
    assert int(private[1]) > 0
    assert private[1] == private[2]
    assert "verify: OK" in err
    assert err.rstrip().endswith("stopped the sandbox")
