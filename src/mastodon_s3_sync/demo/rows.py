"""What the row generators share: time ranges, snowflake and sequential ids, weighted choices."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Generic, TypeVar

Row = dict[str, object]


#: The sandbox instance's own domain (the instance actor's username).
LOCAL_DOMAIN = "sandbox.example"


INSTANCE_ACTOR_ID = -99


_EPOCH = datetime(1970, 1, 1)


# Snowflake ids are spread over this window ("recent" rows).
_RECENT_FIRST = datetime(2022, 1, 1)


RECENT_LAST = datetime(2026, 6, 30)


# Sequential-id rows predate the switch to snowflakes (media 3.2.0, accounts 3.4.0).
LEGACY_FIRST = datetime(2017, 4, 1)


LEGACY_LAST = {"accounts": datetime(2021, 3, 1), "media_attachments": datetime(2020, 6, 22)}


# Databases still on 3.1.x hold nothing newer than this.
V3_1_LAST = datetime(2020, 5, 1)


# Thumbnails assigned after Mastodon 4.6 get thumbnail_storage_schema_version = 1.
THUMBNAIL_SCHEMA_SINCE = datetime(2026, 2, 1)


LEGACY_SHARE = {"accounts": 0.05, "media_attachments": 0.03}


LEGACY_SHARE_SEQUENTIAL_TABLES = 0.10


_ODD_ROWS_MIN_COUNT = 100


_ODD_ROWS_EVERY = 50_000


DOMAINS = tuple(
    f"{name}.example"
    for name in (
        "mastodon",
        "social",
        "fosstodon",
        "hachyderm",
        "infosec",
        "mstdn",
        "toot",
        "chaos",
        "photog",
        "masto",
        "norden",
        "sigmoid",
        "tech",
        "universeodon",
        "aus",
        "mas",
    )
)


WORDS = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "blobcat",
)


SIZES = ((1280, 720), (1920, 1080), (1080, 1350), (800, 600), (2048, 1536), (640, 640))


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def snowflake(moment: datetime) -> int:
    return _ms(moment) << 16


SNOWFLAKE_FLOOR = snowflake(_RECENT_FIRST)


_T = TypeVar("_T")


class Weighted(Generic[_T]):
    """Weighted choice among prebuilt options, driven by one ``random()`` value."""

    def __init__(self, options: Iterable[tuple[float, _T]]) -> None:
        self._items: list[_T] = []
        self._cumulative: list[float] = []
        total = 0.0
        for weight, item in options:
            total += weight
            self._items.append(item)
            self._cumulative.append(total)
        self._cumulative = [c / total for c in self._cumulative]

    def pick(self, u: float) -> _T:
        for threshold, item in zip(self._cumulative, self._items, strict=True):
            if u < threshold:
                return item
        return self._items[-1]


def row_ids(
    rnd: random.Random,
    count: int,
    *,
    start_id: int | None,
    legacy_share: float,
    legacy_window: tuple[datetime, datetime],
    snowflakes: bool,
) -> Iterator[tuple[int, datetime, bool]]:
    """Strictly increasing ``(id, created_at, legacy)``: sequential ids first, then snowflakes."""
    first = 1 if start_id is None else start_id
    if not snowflakes:
        n_legacy = count
    elif first >= SNOWFLAKE_FLOOR:
        n_legacy = 0
    else:
        n_legacy = round(count * legacy_share)
    r = rnd.random
    t0, t1 = (_ms(t) for t in legacy_window)
    step_ms = (t1 - t0) / max(n_legacy, 1)
    next_id = first
    for i in range(n_legacy):
        yield next_id, _EPOCH + timedelta(milliseconds=t0 + int(i * step_ms)), True
        # Deleted rows leave gaps in sequences.
        next_id += 1 if r() < 0.9 else 2 + int(r() * 5)
    n_snowflakes = count - n_legacy
    if n_snowflakes:
        low = max(first, SNOWFLAKE_FLOOR)
        high = max(snowflake(RECENT_LAST), low + n_snowflakes)
        step = (high - low) // n_snowflakes
        for i in range(n_snowflakes):
            sid = low + i * step + int(r() * step)
            yield sid, _EPOCH + timedelta(milliseconds=sid >> 16), False


def odd_positions(rnd: random.Random, count: int, kinds: tuple[str, ...]) -> dict[int, str]:
    """A handful of row positions per odd kind (none for tiny data sets)."""
    if count < _ODD_ROWS_MIN_COUNT or not kinds:
        return {}
    per_kind = 1 + count // _ODD_ROWS_EVERY
    positions = rnd.sample(range(count), per_kind * len(kinds))
    return {pos: kinds[i % len(kinds)] for i, pos in enumerate(positions)}


def hex16(rnd: random.Random) -> str:
    """A ``SecureRandom.hex(8)``-style file name stem."""
    return f"{rnd.getrandbits(64):016x}"


def file_meta(rnd: random.Random, *, video: bool) -> dict[str, object]:
    width, height = SIZES[int(rnd.random() * len(SIZES))]
    scale = max(width, height) / 640
    original: dict[str, object] = {"width": width, "height": height}
    if video:
        original["duration"] = round(1 + rnd.random() * 120, 2)
        original["frame_rate"] = "30/1"
    small = {"width": int(width / scale), "height": int(height / scale)}
    return {"original": original, "small": small}


def spread(count: int, modern: bool) -> Iterator[datetime]:
    """Creation times for a sequential table, oldest first."""
    first, last = LEGACY_FIRST, (RECENT_LAST if modern else V3_1_LAST)
    step = (last - first) / max(count, 1)
    for i in range(count):
        yield first + step * i
