"""chain_sdk.metrics against a hand-computed example and a slow, loop-per-query reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_sdk import metrics

# One byte per code. Query 0 = 0x00 with label A(0); query 1 = 0xFF with label B(1).
DB_CODES = np.array([[0b00000001], [0b00000000], [0b00000011], [0b00000111], [0b00000001]],
                    dtype=np.uint8)
DB_LABELS = np.array([0, 1, 0, 1, 1])
Q_CODES = np.array([[0x00], [0xFF]], dtype=np.uint8)
Q_LABELS = np.array([0, 1])


def test_map_at_k_hand_computed():
    # Query 0: distances 1,0,2,3,1 -> stable rank d1,d0,d4,d2,d3 -> rel 0,1,0,1,0
    #   AP@2 = 1/2 * (1*1/2) = 0.25, AP@4 = 1/4 * (1/2 + 2/4) = 0.25, AP@5 = 1/5 * 1 = 0.2
    # Query 1: distances 7,8,6,5,7 -> rank d3,d2,d0,d4,d1 -> rel 1,0,0,1,1
    #   AP@2 = 1/2 * 1 = 0.5, AP@4 = 1/4 * (1 + 2/4) = 0.375, AP@5 = 1/5 * (1 + 2/4 + 3/5) = 0.42
    result = metrics.map_at_k(Q_CODES, DB_CODES, Q_LABELS, DB_LABELS, ks=[1, 2, 4, 5])
    assert result[1] == pytest.approx((0 + 1) / 2)
    assert result[2] == pytest.approx((0.25 + 0.5) / 2)
    assert result[4] == pytest.approx((0.25 + 0.375) / 2)
    assert result[5] == pytest.approx((0.2 + 0.42) / 2)
    # K beyond the database: missing ranks are not relevant, the sum still divides by K.
    assert metrics.map_at_k(Q_CODES, DB_CODES, Q_LABELS, DB_LABELS, ks=[10])[10] == pytest.approx(
        (1.0 / 10 + 2.1 / 10) / 2)


def test_precision_recall_and_pr_curve_hand_computed():
    pr = metrics.precision_recall_at_k(Q_CODES, DB_CODES, Q_LABELS, DB_LABELS, ks=[4])
    assert pr[4][0] == pytest.approx(0.5)
    assert pr[4][1] == pytest.approx((2 / 2 + 2 / 3) / 2)
    radii, precision, recall = metrics.pr_curve_by_radius(Q_CODES, DB_CODES, Q_LABELS, DB_LABELS)
    assert list(radii) == list(range(9))
    assert precision[0] == pytest.approx(0.0)  # only query 0 retrieves (d1, not relevant)
    assert recall[0] == pytest.approx(0.0)
    assert precision[5] == pytest.approx((2 / 5 + 1 / 1) / 2)
    assert recall[8] == pytest.approx(1.0)


def reference_map(q_codes, db_codes, q_labels, db_labels, ks, tie_order="stable"):
    """The published algorithm, one query at a time, with full argsorts."""
    bq = np.unpackbits(q_codes, axis=1).astype(np.float32) * 2 - 1
    bdb = np.unpackbits(db_codes, axis=1).astype(np.float32) * 2 - 1
    bits = bq.shape[1]
    hamming = 0.5 * (bits - bdb @ bq.T)  # N x Q, as ConMH/BTH eval.py
    if tie_order == "published":
        rank = np.argsort(hamming, axis=0)
    else:
        rank = np.argsort(hamming, axis=0, kind="stable")
    ql = metrics._as_label_matrix(q_labels)
    dbl = metrics._as_label_matrix(db_labels)
    sim = dbl @ ql.T
    out = {}
    for k in ks:
        aps = []
        for i in range(len(bq)):
            top = rank[:k, i]
            relevant = (sim[top, i] > 0).astype(np.float64)
            hits = np.cumsum(relevant)
            aps.append(float(np.sum(relevant * hits / np.arange(1, len(top) + 1))) / k)
        out[k] = float(np.mean(aps))
    return out


@st.composite
def retrieval_problem(draw):
    nbytes = draw(st.sampled_from([2, 4, 8]))
    n_q = draw(st.integers(1, 12))
    n_db = draw(st.integers(1, 60))
    n_cls = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 256, (n_q, nbytes), dtype=np.uint8)
    db = rng.integers(0, 256, (n_db, nbytes), dtype=np.uint8)
    if draw(st.booleans()):  # many ties: few distinct codes
        db = q[rng.integers(0, n_q, n_db)] ^ rng.integers(0, 2, (n_db, nbytes), dtype=np.uint8)
    ql = (rng.random((n_q, n_cls)) < 0.4).astype(np.float32)
    dbl = (rng.random((n_db, n_cls)) < 0.4).astype(np.float32)
    chunk = draw(st.integers(1, 16))
    return q, db, ql, dbl, chunk


@settings(max_examples=80, deadline=None)
@given(retrieval_problem())
def test_map_matches_reference(problem):
    q, db, ql, dbl, chunk = problem
    ks = [k for k in (1, 3, 5, 10, 20) if k <= len(db)]
    if not ks:
        return
    for tie_order in ("stable", "published"):
        fast = metrics.map_at_k(q, db, ql, dbl, ks, tie_order=tie_order, chunk=chunk)
        slow = reference_map(q, db, ql, dbl, ks, tie_order=tie_order)
        for k in ks:
            assert fast[k] == pytest.approx(slow[k], abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(retrieval_problem())
def test_pr_curve_matches_reference(problem):
    q, db, ql, dbl, chunk = problem
    radii, precision, recall = metrics.pr_curve_by_radius(q, db, ql, dbl, chunk=chunk)
    dist = metrics.hamming_distances(q, db)
    rel = metrics.relevance(ql, dbl)
    for r in radii:
        within = dist <= r
        ps = [rel[i][within[i]].mean() for i in range(len(q)) if within[i].any()]
        rs = [rel[i][within[i]].sum() / rel[i].sum() for i in range(len(q)) if rel[i].any()]
        if ps:
            assert precision[r] == pytest.approx(np.mean(ps))
        else:
            assert np.isnan(precision[r])
        if rs:
            assert recall[r] == pytest.approx(np.mean(rs))


def test_hamming_distances_match_popcount():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (7, 8), dtype=np.uint8)
    b = rng.integers(0, 256, (9, 8), dtype=np.uint8)
    expected = np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=2).sum(axis=2)
    np.testing.assert_array_equal(metrics.hamming_distances(a, b), expected)


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="packed uint8"):
        metrics.map_at_k(Q_CODES.astype(np.int64), DB_CODES, Q_LABELS, DB_LABELS)
    with pytest.raises(ValueError, match="bits"):
        metrics.map_at_k(np.zeros((2, 2), np.uint8), DB_CODES, Q_LABELS, DB_LABELS)
    with pytest.raises(ValueError, match="do not match"):
        metrics.map_at_k(Q_CODES, DB_CODES, Q_LABELS[:1], DB_LABELS)
    with pytest.raises(ValueError, match="tie_order"):
        metrics.map_at_k(Q_CODES, DB_CODES, Q_LABELS, DB_LABELS, tie_order="random")
    with pytest.raises(ValueError, match="ks"):
        metrics.map_at_k(Q_CODES, DB_CODES, Q_LABELS, DB_LABELS, ks=[0])


def test_metrics_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, chain_sdk.metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
