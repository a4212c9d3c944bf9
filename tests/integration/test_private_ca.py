"""An S3 endpoint whose certificate a private CA signed: trusted through ``ca_bundle``.

moto_server behind a TLS front made at test time with its own CA: with the CA given as
``[destination] ca_bundle`` (or ``AWS_CA_BUNDLE``) the copy runs, botocore and the lean
client alike; without it, one line that names the setting, exit 2.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mastodon_s3_sync.config.layers import config_toml
from tests.support.migration import Migration
from tests.support.private_ca import tls_front
from tests.support.processes import run_cli

pytestmark = pytest.mark.integration

PROG = "mastodon-s3-sync: error: "


def test_private_ca_endpoint_with_and_without_its_ca(
    migration: Migration,
    tmp_path: Path,
) -> None:
    # given the destination behind TLS with a certificate of a private CA
    source = migration.source.bucket_settings(migration.source_bucket)
    plain = migration.destination.bucket_settings(migration.destination_bucket)
    with tls_front(tmp_path, migration.destination.port) as front:
        untrusted = dataclasses.replace(plain, endpoint_url=front.url)
        trusted = dataclasses.replace(untrusted, ca_bundle=str(front.ca_file))
        without, with_ca = tmp_path / "without.toml", tmp_path / "with.toml"
        without.write_text(config_toml(migration.db.url, source, untrusted))
        with_ca.write_text(config_toml(migration.db.url, source, trusted))
        # when the CA is not given: one line naming the setting
        refused = run_cli("run", "--config", str(without))
        # when it is, in the config file, or in AWS_CA_BUNDLE
        report = tmp_path / "report.json"
        copied = run_cli("run", "--config", str(with_ca), "--report", str(report))
        checked = run_cli(
            "config", "check", "--config", str(without), env={"AWS_CA_BUNDLE": str(front.ca_file)}
        )
    # then
    assert refused.returncode == 2, refused.stderr
    [line] = [line for line in refused.stderr.splitlines() if line.startswith(PROG)]
    assert "not trusted" in line, line
    assert "[destination] ca_bundle" in line, line
    assert "Traceback" not in refused.stderr
    assert copied.returncode == 0, copied.stderr
    outcome = json.loads(report.read_text())
    assert outcome["copied"] == len(migration.manifest.objects)
    assert outcome["failed"] == 0
    assert checked.returncode == 0, checked.stdout
    assert "OK   destination write: " in checked.stdout
