"""Nothing private exposed: private objects stay private, and secrets stay out of every output.

Distinctive secrets (a database password, an S3 secret key, an SSH private key) are
configured, errors are provoked (wrong password, refused credentials, unreachable
servers, an unreadable ACL), and everything the commands and handlers print or write
(stdout, stderr, JSON reports, Lambda log lines) is scanned for them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pytest

import functions.copier.handler as copier_handler
import functions.enumerator.handler as enumerator_handler
from mastodon_s3_sync.config.layers import config_toml
from mastodon_s3_sync.config.settings import BucketSettings
from mastodon_s3_sync.demo.media import create_bucket, seed_bucket
from mastodon_s3_sync.demo.postgres import LocalPostgres
from mastodon_s3_sync.demo.s3servers import MotoS3Server, RcloneS3Server
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType
from tests.events.factory import FakeLambdaContext, sqs_event_for_bodies
from tests.support.copier_lambda import Sides, media_rows, one_body, refs_of
from tests.support.faultproxy import Fault, FaultProxy, FaultRule, Operation
from tests.support.invariant import acl_class
from tests.support.lambda_output import CurrentStdout, Output
from tests.support.mastodon_db import MastodonDb
from tests.support.processes import run_cli
from tests.support.s3_servers import BucketNames

MakeDb = Callable[..., MastodonDb]
DB_PASSWORD = "dbpw-Zq8/xK3vN7rT"  # with a "/" that must be percent-encoded in a URL
S3_SECRET = "s3sk-Hj4mW9pL2cV6bN1x"
SSH_SECRET = "sshkey-Fe5tY8uI0oP3aS7d"
SECRETS = (DB_PASSWORD, S3_SECRET, SSH_SECRET)


def assert_no_secret(*outputs: str) -> None:
    """None of the seeded secrets, nor a recognisable half of one, in any output."""
    for text in outputs:
        for secret in SECRETS:
            for piece in (secret, secret[:9], secret[-9:]):
                assert piece not in text, f"{piece!r} leaked in:\n{text}"


def database_url(postgres: LocalPostgres, db: MastodonDb, password: str, port: int = 0) -> str:
    return (
        f"postgresql://{quote(postgres.user, safe='')}:{quote(password, safe='')}@127.0.0.1:"
        f"{port or postgres.port}/{db.name}"
    )


def test_secrets_stay_out_of_errors_of_run_plan_and_worker(
    mastodon_db: MakeDb,
    postgres: LocalPostgres,
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server],
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    db = mastodon_db()
    moto = moto_servers[0]
    rclone = rclone_servers[0]
    good_bucket, rclone_bucket = fresh_bucket_name(), fresh_bucket_name()
    create_bucket(moto.client(), good_bucket)
    create_bucket(rclone.client(), rclone_bucket)
    source = replace(moto.bucket_settings(good_bucket), secret_access_key=S3_SECRET)
    wrong_key = replace(rclone.bucket_settings(rclone_bucket), secret_access_key=S3_SECRET)

    def config(name: str, url: str, destination: BucketSettings, extra: str = "") -> str:
        path = tmp_path / f"{name}.toml"
        path.write_text(config_toml(url, source, destination) + extra)
        return str(path)

    wrong_password = database_url(postgres, db, DB_PASSWORD)
    unreachable = database_url(postgres, db, DB_PASSWORD, port=9)
    key_file = tmp_path / "bastion_key"
    key_file.write_text(
        f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SSH_SECRET}\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    bastion = (
        f'\n[bastion]\nhost = "127.0.0.1"\nport = 9\nuser = "mastodon"\n'
        f'private_key_file = "{key_file}"\nhost_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"\n'
    )
    destination = moto.bucket_settings(fresh_bucket_name())
    create_bucket(moto.client(), destination.name)
    report = tmp_path / "report.json"
    commands = {
        "run, wrong database password": (
            "run",
            "--config",
            config("a", wrong_password, destination),
            "--report",
            str(report),
        ),
        "run, database unreachable": ("run", "--config", config("b", unreachable, destination)),
        "run, S3 secret refused": ("run", "--config", config("c", wrong_password, wrong_key)),
        "run, bad bastion key": (
            "run",
            "--config",
            config("d", wrong_password, destination, bastion),
        ),
        "plan, wrong database password": ("plan", "--database-url", wrong_password),
        "plan, password not encoded": (
            "plan",
            "--database-url",
            wrong_password.replace(quote(DB_PASSWORD, safe=""), DB_PASSWORD),
        ),
        "enumerate, database unreachable": (
            "enumerate",
            "--config",
            config("e", unreachable, destination),
            "--dry-run",
            "--queue-url",
            "http://127.0.0.1:9/queue",
        ),
        "worker, S3 secret refused": (
            "worker",
            "--config",
            config("f", wrong_password, wrong_key),
            "--queue-url",
            "http://127.0.0.1:9/queue",
            "--until-empty",
        ),
    }
    # independent children, four at a time: most of their time is start-up or waiting
    with ThreadPoolExecutor(4) as pool:
        running = {name: pool.submit(run_cli, *args) for name, args in commands.items()}
    cases = {name: child.result() for name, child in running.items()}
    expected_status = {
        name: 2 if "S3" in name or "bastion" in name or "encoded" in name else 3 for name in cases
    }
    for name, result in cases.items():
        assert result.returncode == expected_status[name], (name, result.stderr)
        assert "error:" in result.stderr, name
        assert "Traceback" not in result.stderr, name
        assert_no_secret(result.stdout, result.stderr)
    assert_no_secret(report.read_text() if report.exists() else "")


def test_secrets_stay_out_of_a_report_and_the_handlers_logs(
    sides: Sides,
    output: Output,
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server],
    fresh_bucket_name: BucketNames,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given a copier whose destination refuses its secret key
    rclone = rclone_servers[0]
    bucket = fresh_bucket_name()
    create_bucket(rclone.client(), bucket)
    refs = refs_of(RecordType.MEDIA_ATTACHMENTS, media_rows(113_000_000_000_000_001, 3))
    seed_bucket(sides.source, sides.source_bucket, refs)
    monkeypatch.setenv("MSS_DESTINATION_BUCKET", bucket)
    monkeypatch.setenv("MSS_DESTINATION_ENDPOINT_URL", rclone.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rclone.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("MSS_ACL", "none")
    # when a message arrives
    event = sqs_event_for_bodies([one_body(RecordType.MEDIA_ATTACHMENTS, refs)])
    answer = copier_handler.handler(event, FakeLambdaContext().as_lambda_context())
    # then it fails, and says why without the key
    assert len(answer["batchItemFailures"]) == 1
    failures = output.logs("object failed")
    assert failures
    assert all("403" in entry["reason"] for entry in failures), [
        entry["reason"] for entry in failures
    ]
    # and the enumerator, given a database URL with a password it cannot use, says so alone
    monkeypatch.setattr(enumerator_handler.logger.registered_handler, "stream", CurrentStdout())
    monkeypatch.setenv(
        "MSS_DATABASE_URL", f"postgresql://mastodon:{quote(DB_PASSWORD, safe='')}@127.0.0.1:9/m"
    )
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    response = enumerator_handler.handler(
        {"type": "accounts", "dry_run": True}, FakeLambdaContext().as_lambda_context()
    )
    assert response["ok"] is False
    assert "cannot connect to PostgreSQL" in response["error"]
    printed = json.dumps(output.read()) + capsys.readouterr().out
    assert_no_secret(printed, json.dumps(response))


def test_private_objects_stay_private_in_every_acl_reading_path(
    moto_servers: tuple[MotoS3Server, MotoS3Server],
    mastodon_db: MakeDb,
    fresh_bucket_name: BucketNames,
    tmp_path: Path,
) -> None:
    # given public and private objects, one private object whose ACL cannot be read
    db = mastodon_db()
    for media_id in range(1, 7):
        db.conn.run(
            "INSERT INTO media_attachments (id, type, file_file_name, file_content_type, "
            "created_at, updated_at) VALUES (:id, 0, :name, 'image/png', now(), now())",
            id=media_id,
            name=f"{media_id:016x}.png",
        )
    refs: list[ObjectRef] = refs_of(
        RecordType.MEDIA_ATTACHMENTS,
        [
            {"id": n, "file_file_name": f"{n:016x}.png", "file_content_type": "image/png"}
            for n in range(1, 7)
        ],
    )
    private_ids = {2, 4, 6}
    provider_a, provider_b = moto_servers
    source_bucket = fresh_bucket_name()
    create_bucket(provider_a.client(), source_bucket)
    manifest = seed_bucket(provider_a.client(), source_bucket, refs, private_record_ids=private_ids)
    unreadable = next(ref.key for ref in refs if ref.record_id == 6 and ref.style == "original")
    denied = [FaultRule(Fault.ACCESS_DENIED_403, (Operation.ACL,), key_pattern=unreadable)]
    with FaultProxy(provider_a.endpoint_url, rules=denied) as proxy:
        paths = {
            # streamed between providers
            "stream": (
                replace(provider_a.bucket_settings(source_bucket), endpoint_url=proxy.url),
                provider_b,
            ),
            # server-side CopyObject within one provider
            "server-side": (provider_a.bucket_settings(source_bucket), provider_a),
        }
        for name, (source, server) in paths.items():
            destination_bucket = fresh_bucket_name()
            create_bucket(server.client(), destination_bucket)
            config = tmp_path / f"{name}.toml"
            config.write_text(
                config_toml(db.url, source, server.bucket_settings(destination_bucket))
            )
            report = tmp_path / f"{name}.json"
            result = run_cli(
                "run", "--config", str(config), "--acl", "copy", "--report", str(report)
            )
            failed = {entry["key"] for entry in json.loads(report.read_text())["failed_keys"]}
            client = server.client()
            listed = client.list_objects_v2(Bucket=destination_bucket).get("Contents", [])
            # then no private object became public
            for item in listed:
                seeded = manifest.objects[item["Key"]]
                assert acl_class(client, destination_bucket, item["Key"]) == seeded.acl, (
                    name,
                    item["Key"],
                )
            if name == "stream":
                # the unreadable ACL fails that object; it is not copied with a guessed ACL
                assert result.returncode == 1, result.stderr
                assert failed == {unreadable}
                assert unreadable not in {item["Key"] for item in listed}
            else:
                assert result.returncode == 0, result.stderr
            assert len(listed) + len(failed) == len(manifest.objects)
    assert {seeded.acl for seeded in manifest.objects.values()} == {"private", "public-read"}
