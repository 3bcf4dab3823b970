"""The partial-copy benchmark's metrics on hand-made cases with known answers."""

from __future__ import annotations

import pytest

from benchmarks.copydetect.metrics import (
    Prediction, Truth, average_precision, false_positives, iou, pair_ap, precision_at, segment_ap,
    threshold_for_precision)

T = [Truth("q1", "a", 10, 20, 100, 110), Truth("q2", "b", 0, 5, 0, 5)]


def p(query, ref, q0, q1, r0, r1, score):
    return Prediction(query, ref, q0, q1, r0, r1, score)


def test_average_precision_by_hand():
    # ranked: hit, miss, hit; 3 positives in all -> (1/1 + 2/3) / 3
    assert average_precision([0.9, 0.8, 0.7], [True, False, True], 3) == pytest.approx((1 + 2 / 3) / 3)
    assert average_precision([], [], 2) == 0.0


def test_iou():
    assert iou(0, 10, 5, 15) == pytest.approx(5 / 15)
    assert iou(0, 1, 2, 3) == 0.0


def test_pair_and_segment_ap():
    preds = [p("q1", "a", 11, 21, 101, 111, 0.9),    # right pair, right place
             p("q3", "a", 0, 5, 0, 5, 0.8),          # a no-copy query: false pair
             p("q2", "b", 30, 40, 30, 40, 0.7)]      # right pair, wrong place
    assert pair_ap(preds, T) == pytest.approx((1 + 2 / 3) / 2)
    assert segment_ap(preds, T) == pytest.approx(1 / 2)
    assert false_positives(preds, T, 0.0) == 2 and false_positives(preds, T, 0.85) == 0
    assert precision_at(preds, T, 0.85) == (1.0, 0.5)
    assert threshold_for_precision(preds, T, 0.9) == 0.9


def test_a_second_prediction_of_a_found_copy_is_a_false_positive_segment():
    preds = [p("q1", "a", 10, 20, 100, 110, 0.9), p("q1", "a", 10, 19, 100, 109, 0.8)]
    assert segment_ap(preds, T) == pytest.approx(1 / 2)   # found once; the second counts against
    assert precision_at(preds, T, 0.0)[0] == 0.5
