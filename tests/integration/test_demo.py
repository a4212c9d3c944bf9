"""The README's first command: ``mastodon-s3-sync demo`` (quick mode) end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.processes import run_cli

pytestmark = pytest.mark.integration


def test_demo_migrates_every_kind_keeps_private_private_and_names_what_it_leaves(
    tmp_path: Path,
) -> None:
    # when
    result = run_cli("demo", "--quick", "--reports", str(tmp_path), cwd=tmp_path)
    # then it succeeds, every copied object is verified, nothing failed
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
    # and a stranger reads the public objects through the public URL, not the private ones
    assert verify["public_checked"] == verify["public_requests"] > 0
    assert "not publicly readable" in verify["problems"]
    # and a run to a destination without ACLs withholds exactly the private objects
    no_acls = json.loads((tmp_path / "demo-run-no-acls.json").read_text())
    assert no_acls["failed"] == 0
    assert no_acls["withheld"] > 0
    assert no_acls["copied"] + no_acls["withheld"] == objects
    assert f"withheld {no_acls['withheld']:,} objects Mastodon made private" in err
    # and private objects stayed private
    private = re.search(r"(\d+) at the source, (\d+) of them still private", err)
    assert private, err
    assert int(private[1]) > 0
    assert private[1] == private[2]
    assert re.search(r"downloads\): .*backups [1-9]", err), err  # users' archives among them
    # and every kind the database has is copied and verified, the one it has not is named
    kinds = {"accounts", "media_attachments", "custom_emojis", "preview_cards"}
    kinds |= {"site_uploads", "preview_card_providers", "backups"}
    assert {kind for kind, tally in run["by_type"].items() if tally["copied"]} == kinds
    assert set(verify["by_type"]) == kinds
    assert run["left_out"] == verify["left_out"] == {"imports": "no table (Mastodon 4.4+)"}
    assert err.count("imports: no table (Mastodon 4.4+)") == 4  # run, verify, run, orphans
    # and what no row references is reported, not copied
    orphans = json.loads((tmp_path / "demo-orphans.json").read_text())
    found = {entry["key"] for entry in orphans["orphan_keys"]}
    assert len(found) == orphans["orphans"] == 4
    assert {key.split("/", 1)[0] for key in found} == {"imports", "media_attachments", "by-hand"}
    assert "(exactly the ones seeded)" in err
    assert "verify: OK" in err
    assert err.rstrip().endswith("stopped the sandbox")


def test_demo_on_a_mastodon_4_3_copies_users_imports(tmp_path: Path) -> None:
    # given a 4.3-shaped database, the last release with an imports table
    command = ["demo", "--quick", "--mastodon", "4.3", "--reports", str(tmp_path)]
    # when
    result = run_cli(*command, cwd=tmp_path)
    # then imports are copied and verified like every other kind, and nothing is left out
    assert result.returncode == 0, result.stderr
    run = json.loads((tmp_path / "demo-run-report.json").read_text())
    verify = json.loads((tmp_path / "demo-verify.json").read_text())
    assert run["by_type"]["imports"]["copied"] > 0
    assert "imports" in verify["by_type"]
    assert run["left_out"] == verify["left_out"] == {}
    assert verify["ok"] is True


def test_demo_from_disk_copies_public_system_and_keeps_0600_files_private(tmp_path: Path) -> None:
    # when the sandbox's Mastodon keeps its media on local storage
    command = ["demo", "--quick", "--from-disk", "--reports", str(tmp_path)]
    result = run_cli(*command, cwd=tmp_path)
    # then the directory (found through the .env) is copied, verified, private stays private
    assert result.returncode == 0, result.stderr
    err = result.stderr
    seeded = re.search(r"source directory: (\d+) objects .*, (\d+) files gone", err)
    assert seeded, err
    run = json.loads((tmp_path / "demo-run-report.json").read_text())
    assert (run["copied"], run["missing"], run["failed"]) == (int(seeded[1]), int(seeded[2]), 0)
    assert run["source"]["path"].endswith("/live/public/system")
    assert json.loads((tmp_path / "demo-verify.json").read_text())["ok"] is True
    private = re.search(r"(\d+) at the source, (\d+) of them still private", err)
    assert private, err
    assert int(private[1]) > 0
    assert private[1] == private[2]
    assert "demo: OK" in err
