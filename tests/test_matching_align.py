"""Temporal alignment (chain_sdk.matching.align) against the slow pure-Python reference, on random
hit sets (sparse similarity matrices) of every size, and on planted copies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_sdk.matching import AlignParams, align
from chain_sdk.matching import reference


def random_hits(seed: int, n: int, videos: int, span: int):
    rng = np.random.default_rng(seed)
    video = rng.integers(0, videos, n)
    q = rng.integers(0, span, n)
    r = rng.integers(0, span, n)
    w = rng.uniform(0.01, 5.0, n)
    # a few planted diagonals (slope 1 and 1.5) so that long chains occur too
    for _ in range(rng.integers(0, 3)):
        length, q0, r0, v = rng.integers(2, 12), rng.integers(0, span), rng.integers(0, span), rng.integers(0, videos)
        slope = rng.choice([1.0, 1.5, 0.7])
        qd = q0 + np.arange(length)
        rd = (r0 + np.round(slope * np.arange(length))).astype(np.int64)
        video, q, r = np.r_[video, np.full(length, v)], np.r_[q, qd], np.r_[r, rd]
        w = np.r_[w, rng.uniform(2.0, 8.0, length)]
    return video, q, r, w


def same_chains(fast, slow):
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        assert a.video == b.video
        np.testing.assert_array_equal(a.hits, b.hits)
        assert a.score == pytest.approx(b.score, rel=1e-9, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 60), videos=st.integers(1, 4),
       span=st.integers(1, 30), max_gap=st.integers(1, 5), slope=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
       gap_cost=st.sampled_from([0.0, 0.5, 2.0]), per_pair=st.integers(1, 4),
       min_score=st.sampled_from([0.0, 3.0, 10.0]))
def test_fast_alignment_equals_the_reference(seed, n, videos, span, max_gap, slope, gap_cost, per_pair, min_score):
    video, q, r, w = random_hits(seed, n, videos, span)
    p = AlignParams(max_gap=max_gap, max_slope=slope, gap_cost=gap_cost, max_per_pair=per_pair)
    same_chains(align(video, q, r, w, p, min_score), reference.align(video, q, r, w, p, min_score))


def test_integer_weights_with_ties_follow_the_same_rules():
    for seed in range(40):
        rng = np.random.default_rng(seed)
        n = 40
        video, q, r = rng.integers(0, 2, n), rng.integers(0, 10, n), rng.integers(0, 10, n)
        w = rng.integers(1, 3, n).astype(float)  # many equal scores
        p = AlignParams(max_gap=2)
        same_chains(align(video, q, r, w, p), reference.align(video, q, r, w, p))


def test_a_planted_copy_with_a_speed_change_and_a_gap_is_one_chain():
    q = np.array([10, 11, 12, 13, 15, 16, 17])       # query window 14 dropped
    r = np.array([40, 41, 43, 44, 47, 48, 50])       # about 1.25x faster
    noise_q, noise_r = np.array([3, 25, 26]), np.array([7, 90, 5])
    video = np.zeros(10, np.int64)
    chains = align(video, np.r_[q, noise_q], np.r_[r, noise_r], np.r_[np.full(7, 5.0), [1.0, 1.0, 1.0]],
                   AlignParams(max_gap=3, gap_cost=1.0))
    assert list(chains[0].hits) == list(range(7))
    # steps (dq, dr): (1,1) (1,2) (1,1) (2,3) (1,1) (1,2) -> skipped windows 0+1+0+2+0+1
    assert chains[0].score == pytest.approx(7 * 5.0 - 1.0 * 4)
    assert all(c.score <= 1.0 for c in chains[1:])


def test_two_copies_of_one_reference_are_two_matches():
    q = np.r_[np.arange(0, 6), np.arange(20, 26)]
    r = np.r_[np.arange(100, 106), np.arange(10, 16)]
    chains = align(np.zeros(12, np.int64), q, r, np.full(12, 3.0))
    assert [sorted(q[c.hits]) for c in chains] == [list(range(0, 6)), list(range(20, 26))]


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        align([0], [0], [0], [0.0])  # weights must be positive
    with pytest.raises(ValueError):
        align([0, 1], [0], [0], [1.0])
    with pytest.raises(ValueError):
        AlignParams(max_gap=0)
    assert align([], [], [], []) == []
