"""The data split of chain_sdk.data.SOURCES: by source and by time, nothing shared (no video needed)."""

from __future__ import annotations

import itertools

from chain_sdk import data


def test_every_source_is_a_pinned_asset_with_a_group() -> None:
    for source in data.SOURCES.values():
        assert source.name in data.ASSETS and source.group in data.GROUPS
        assert all(split in data.SPLITS and 0 <= a < b for split, a, b in source.ranges)


def test_time_ranges_of_one_source_never_overlap() -> None:
    for source in data.SOURCES.values():
        for (_, a0, b0), (_, a1, b1) in itertools.combinations(source.ranges, 2):
            assert b0 <= a1 or b1 <= a0, source.name


def test_dev_and_heldout_have_live_action_that_training_never_sees() -> None:
    train = {s.name for s, _ in data.split_sources("train")}
    for split in ("dev", "heldout"):
        unseen_live = [s.name for s, _ in data.split_sources(split) if s.group == "live" and s.name not in train]
        assert len(unseen_live) >= 3, split
        assert {s.group for s, _ in data.split_sources(split)} == set(data.GROUPS)


def test_film_after_300_s_is_heldout_only() -> None:
    film = data.SOURCES["bbb.mp4"]
    assert film.range_of("heldout")[0] == data.HELD_OUT_FROM_S
    assert film.range_of("train")[1] <= film.range_of("dev")[0] < film.range_of("dev")[1] <= data.HELD_OUT_FROM_S


def test_debian_assets_pin_their_archive() -> None:
    debian = [a for a in data.ASSETS.values() if a.origin != "pypi"]
    assert len(debian) == 17 and {a.origin for a in debian} == {"debian-source", "debian-binary"}
    assert all(len(a.archive_sha256) == 64 and len(a.sha256) == 64 and a.archive for a in debian)
