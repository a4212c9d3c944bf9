"""The pure parts of the operations commands: status text, run ids, the Logs Insights query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mastodon_s3_sync.contract import DEFAULT_STACK_NAME
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.layout import RecordType
from mastodon_s3_sync.ops.missing import logged_keys_query
from mastodon_s3_sync.ops.runs import run_start
from mastodon_s3_sync.ops.stack import configured_stack_name
from mastodon_s3_sync.ops.status import StatusSnapshot, TypeProgress, format_status
from mastodon_s3_sync.outcomes import Outcome, Tally
from mastodon_s3_sync.transport.lambda_edge import new_run_id

STARTED = datetime(2026, 11, 27, 6, 15, tzinfo=UTC)


def snapshot(**changes: object) -> StatusSnapshot:
    values: dict[str, object] = {
        "stack_name": "MastodonS3Sync",
        "run_id": "20261127T061500Z-3f9a1c",
        "started": STARTED,
        "taken": STARTED + timedelta(hours=1, minutes=5, seconds=12),
        "progress": {
            RecordType.ACCOUNTS: TypeProgress(2_400, Tally(2_300, 50, 10)),
            RecordType.MEDIA_ATTACHMENTS: TypeProgress(
                90_000, Tally(80_000, 1_000, 12, withheld=7, failed=3)
            ),
            RecordType.CUSTOM_EMOJIS: TypeProgress(300, Tally(300)),
            RecordType.PREVIEW_CARDS: TypeProgress(12_000, Tally(6_000, 0, 30, failed=1)),
            RecordType.PREVIEW_CARD_PROVIDERS: TypeProgress(20, Tally(20)),
        },
        "queue_visible": 150,
        "queue_in_flight": 20,
        "dead_letters": 2,
        "rate": 3.5,
    }
    values.update(changes)
    return StatusSnapshot(**values)  # type: ignore[arg-type]


def test_status_text_of_a_run_in_progress() -> None:
    assert format_status(snapshot()) + "\n" == (
        "run 20261127T061500Z-3f9a1c on stack MastodonS3Sync: started 2026-11-27 06:15:00 UTC,"
        " 1 h 05 min ago\n"
        "\n"
        "type                   enumerated     copied    skipped    missing   withheld     failed"
        "       left\n"
        "accounts                    2,400      2,300         50         10          0          0"
        "         40\n"
        "media_attachments          90,000     80,000      1,000         12          7          3"
        "      8,981\n"
        "custom_emojis                 300        300          0          0          0          0"
        "          0\n"
        "preview_cards              12,000      6,000          0         30          0          1"
        "      5,970\n"
        "preview_card_providers         20         20          0          0          0          0"
        "          0\n"
        "all                       104,720     88,620      1,050         52          7          4"
        "     14,991\n"
        "\n"
        "copy queue: 150 messages waiting, 20 in flight\n"
        "dead-letter queue: 2 messages (their keys: missing --failed; then: redrive)\n"
        "rate: 3.5 objects/s (last 5 min); ETA 1 h 11 min (14,991 objects left)\n"
        "failed counts attempts: a failed object is retried, then dead-lettered\n"
    )


def test_status_text_when_everything_is_done_or_nothing_moves() -> None:
    done = {RecordType.ACCOUNTS: TypeProgress(10, Tally(copied=7, skipped=4, missing=1))}
    text = format_status(snapshot(progress=done, dead_letters=0, rate=None, queue_visible=0))
    assert text.splitlines()[-3:] == [
        "copy queue: 0 messages waiting, 20 in flight",
        "dead-letter queue: 0 messages",
        "rate: no object done in the last 5 min; every enumerated object is done",
    ]
    stuck = {RecordType.ACCOUNTS: TypeProgress(10, Tally(copied=3))}
    assert format_status(snapshot(progress=stuck, rate=None)).splitlines()[-1] == (
        "rate: no object done in the last 5 min; ETA unknown (7 objects left)"
    )


def test_left_counts_done_objects_once_even_when_a_retry_skips_them_again() -> None:
    assert TypeProgress(5, Tally(copied=5, skipped=2)).left == 0
    assert TypeProgress(5, Tally(copied=1, missing=1, failed=3)).left == 3


def test_run_start_reads_the_time_in_a_new_run_id() -> None:
    now = datetime(2026, 11, 27, 6, 15, 42, 999, tzinfo=UTC)
    assert run_start(new_run_id(now)) == now.replace(microsecond=0)


@pytest.mark.parametrize("run_id", ["latest", "20261327T061500Z-3f9a1c", 'x" or 1=1'])
def test_run_start_rejects_what_start_never_prints(run_id: str) -> None:
    with pytest.raises(SettingsError, match="--run-id"):
        run_start(run_id)


def test_logged_keys_query_filters_the_copier_log_lines() -> None:
    query = logged_keys_query((Outcome.MISSING, Outcome.FAILED), "20261127T061500Z-3f9a1c")
    assert query == (
        "fields @timestamp, key, outcome, reason\n"
        '| filter outcome in ["missing", "failed"] and run_id = "20261127T061500Z-3f9a1c"\n'
        "| sort @timestamp asc\n"
        "| limit 10000"
    )
    with pytest.raises(SettingsError):
        logged_keys_query((Outcome.MISSING,), '" or outcome = "copied')


def test_the_stack_name_is_read_from_the_stack_table_alone(tmp_path: Path) -> None:
    # given a deployment config whose bastion key lives on another machine
    config = tmp_path / "sync.toml"
    config.write_text(
        '[database]\nurl = "postgresql://mastodon@db.internal/mastodon"\n'
        '[bastion]\nhost = "bastion.example"\nuser = "tunnel"\n'
        'private_key_file = "/nonexistent/key"\nhost_key = "ssh-ed25519 AAAA"\n'
        '[stack]\nstack_name = " Media-Move "\n'
    )
    assert configured_stack_name(config) == "Media-Move"
    config.write_text('[database]\nurl = "postgresql://mastodon@db/mastodon"\n')
    assert configured_stack_name(config) == DEFAULT_STACK_NAME
    assert configured_stack_name(None) == DEFAULT_STACK_NAME


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, r"^--config: file '.*sync\.toml' does not exist$"),
        (b"[stack]\nstack_name = '\xff'\n", r"^--config: cannot read '.*sync\.toml': .*utf-8"),
        ("[stack\nstack_name = 'x'\n", r"^--config: '.*sync\.toml' is not valid TOML: "),
        ("stack = 5\n", r"sync\.toml: \[stack\] must be a table$"),
        ("[stack]\nstack_name = ' '\n", r"sync\.toml: \[stack\] stack_name must be the "),
        ("[stack]\nstack_name = 7\n", r"sync\.toml: \[stack\] stack_name must be the "),
    ],
)
def test_a_bad_stack_table_is_a_settings_error_naming_the_file(
    tmp_path: Path, text: str | bytes | None, message: str
) -> None:
    config = tmp_path / "sync.toml"
    if isinstance(text, bytes):
        config.write_bytes(text)
    elif text is not None:
        config.write_text(text)
    with pytest.raises(SettingsError, match=message):
        configured_stack_name(config)
