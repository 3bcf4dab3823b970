"""Metric math of the near-duplicate retrieval benchmark (fast, no video)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from benchmarks.retrieval import metrics
from benchmarks.retrieval.peer_worker import VpdqPeer, pairwise


def test_hand_made_ranking() -> None:
    # 3 queries x 4 database items; relevant items 0, 2, 3.
    distances = np.array([
        [0, 5, 5, 9],  # relevant first                      -> rank 1
        [1, 3, 2, 0],  # two items closer than the relevant  -> rank 3
        [4, 4, 4, 4],  # all tied: database order decides    -> rank 4
    ])
    ranks = metrics.relevant_ranks(distances, np.array([0, 2, 3]))
    assert ranks.tolist() == [1, 3, 4]
    summary = metrics.summarize(ranks)
    assert summary["top1"] == pytest.approx(1 / 3)
    assert summary["map@1"] == pytest.approx(1 / 3)
    assert summary["map@5"] == pytest.approx((1 + 1 / 3 + 1 / 4) / 3)
    assert summary["map@10"] == pytest.approx((1 + 1 / 3 + 1 / 4) / 3)


def test_ap_is_zero_beyond_k() -> None:
    assert metrics.average_precision_at(np.array([1, 2, 5, 6, 11]), 5).tolist() == [1, 0.5, 0.2, 0, 0]
    assert metrics.summarize(np.array([6]))["map@5"] == 0.0
    assert metrics.summarize(np.array([6]))["map@10"] == pytest.approx(1 / 6)


def test_tie_with_later_item_does_not_hurt() -> None:
    assert metrics.relevant_ranks(np.array([[2, 2, 2]]), np.array([0])).tolist() == [1]
    assert metrics.relevant_ranks(np.array([[2, 2, 2]]), np.array([2])).tolist() == [3]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), q=st.integers(1, 6), n=st.integers(1, 12))
def test_ranks_match_stable_sort_reference(data, q: int, n: int) -> None:
    distances = data.draw(hnp.arrays(np.int32, (q, n), elements=st.integers(0, 4)))  # many ties
    relevant = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=q, max_size=q)))
    assert metrics.relevant_ranks(distances, relevant).tolist() == metrics.ranks_by_sorting(distances, relevant).tolist()


@settings(max_examples=200, deadline=None)
@given(data=st.data(), q=st.integers(1, 6), n=st.integers(1, 12))
def test_ranks_with_ignored_items_match_the_reference(data, q: int, n: int) -> None:
    distances = data.draw(hnp.arrays(np.int32, (q, n), elements=st.integers(0, 4)))
    relevant = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=q, max_size=q)))
    ignored = data.draw(hnp.arrays(bool, (q, n)))
    ignored[np.arange(q), relevant] = False
    ranks = metrics.relevant_ranks(distances, relevant, ignored)
    assert ranks.tolist() == metrics.ranks_by_sorting(distances, relevant, ignored).tolist()
    # leaving items out can only move the relevant one up, by at most the number left out
    plain = metrics.relevant_ranks(distances, relevant)
    assert np.all(ranks <= plain) and np.all(plain - ranks <= ignored.sum(axis=1))


def test_an_ignored_pasted_video_ranked_first_does_not_count() -> None:
    # the query's background (item 1) is nearest, the relevant item (0) second
    distances = np.array([[3, 0, 5]])
    assert metrics.relevant_ranks(distances, np.array([0])).tolist() == [2]
    assert metrics.relevant_ranks(distances, np.array([0]), np.array([[False, True, False]])).tolist() == [1]


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError):
        metrics.relevant_ranks(np.zeros((2, 3)), np.array([0]))
    with pytest.raises(ValueError):
        metrics.relevant_ranks(np.zeros((1, 3)), np.array([3]))
    with pytest.raises(ValueError):
        metrics.relevant_ranks(np.zeros((1, 3)), np.array([0]), np.zeros((1, 2), dtype=bool))
    with pytest.raises(ValueError, match="also ignored"):
        metrics.relevant_ranks(np.zeros((1, 3)), np.array([0]), np.array([[True, False, False]]))


@settings(max_examples=100, deadline=None)
@given(a=hnp.arrays(bool, st.tuples(st.integers(0, 4), st.just(256))),
       b=hnp.arrays(bool, st.tuples(st.integers(0, 4), st.just(256))))
def test_vpdq_match_percent_matches_the_cpp_loop(a: np.ndarray, b: np.ndarray) -> None:
    # matchTwoHash.cpp findMatches: count features of a with any feature of b at distance < 31.
    hits = sum(any(int(np.count_nonzero(x != y)) < 31 for y in b) for x in a)
    expected = 100.0 * hits / len(a) if len(a) and len(b) else 0.0
    assert VpdqPeer.match_percent(a, b) == pytest.approx(expected)


def test_pairwise_marks_unhashed_videos_infinitely_far() -> None:
    out = pairwise(lambda q, t: q - t, [1.0, None], [0.5, None])
    assert out == [[0.5, float("inf")], [float("inf"), float("inf")]]
