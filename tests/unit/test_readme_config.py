"""The README's configuration table lists exactly the keys the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from mastodon_s3_sync.config.layers import CONFIG_KEYS, MASTODON_ENV_KEY

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_settings() -> set[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| `([^`]+)`", section, flags=re.MULTILINE)
    return set(first_cells)


def test_every_setting_is_documented_and_nothing_else() -> None:
    in_code = {f"[{section}] {key}" for section, keys in CONFIG_KEYS.items() for key in keys}
    in_code.add(MASTODON_ENV_KEY)
    assert documented_settings() == in_code
