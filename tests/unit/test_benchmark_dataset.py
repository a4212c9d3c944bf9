"""The benchmark dataset (benchmarks/dataset.py): deterministic, and Mastodon's mix by count."""

from __future__ import annotations

from benchmarks import dataset

from mastodon_s3_sync.mastodon.layout import ObjectRef

SIZE_CLASSES = {
    "preview": dataset.PREVIEW,
    "avatar/header/emoji": dataset.PROFILE_OR_EMOJI,
    "original": dataset.ORIGINAL,
    "preview card": dataset.PREVIEW_CARD,
    "video": dataset.VIDEO,
}


def test_the_same_seed_gives_the_same_keys_sizes_and_bytes() -> None:
    # given two generations with one seed, and one with another
    first, second = dataset.mastodon_mix(500, seed=3), dataset.mastodon_mix(500, seed=3)
    other = dataset.mastodon_mix(500, seed=4)

    # then keys, sizes, types and bodies agree; another seed gives other keys
    assert [(o.key, o.size, o.content_type) for o in first.objects] == [
        (o.key, o.size, o.content_type) for o in second.objects
    ]
    assert first.rows == second.rows
    sample = first.objects[::97]
    assert [dataset.body(o.size, o.key) for o in sample] == [
        dataset.body(o.size, o.key) for o in sample
    ]
    assert {o.key for o in first.objects}.isdisjoint({o.key for o in other.objects})


def test_3000_objects_make_the_mix_of_issue_7_within_its_size_ranges() -> None:
    mix = dataset.mastodon_mix(3000)

    assert len({o.key for o in mix.objects}) == 3000
    assert mix.counts_by_class() == {
        "preview": 1200,
        "avatar/header/emoji": 750,
        "original": 750,
        "preview card": 240,
        "video": 60,
    }
    for obj in mix.objects:
        low, high = SIZE_CLASSES[dataset.size_class(obj.ref)]
        assert low <= obj.size <= high, obj


def test_originals_have_the_size_their_database_row_states() -> None:
    mix = dataset.mastodon_mix(200)

    originals: list[ObjectRef] = [o.ref for o in mix.objects if o.ref.style == "original"]
    sizes = {o.key: o.size for o in mix.objects}
    assert originals
    assert all(ref.expected_size == sizes[ref.key] for ref in originals)


def test_bodies_have_exactly_the_requested_size_and_differ_between_keys() -> None:
    sizes = (0, 1, 10_000, 17 * dataset.MIB + 1)  # more than two 8 MiB blocks

    assert [len(dataset.body(size, "key")) for size in sizes] == list(sizes)
    assert dataset.body(4096, "a") != dataset.body(4096, "b")
