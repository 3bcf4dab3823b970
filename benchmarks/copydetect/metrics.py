"""Metrics of the partial-copy benchmark.

- pair micro-AP (VSC 2022 descriptor track, uAP): every predicted (query, reference) pair with its
  best score, one precision-recall curve over all of them, recall over all true pairs;
- segment AP: every predicted segment, best score first; a prediction is a true positive when it
  has the right pair and overlaps a not yet found true copy with IoU >= 0.5 on *both* time axes
  (the "IoU on both axes" form of VSC's segment metric); recall over all true copies;
- localisation IoU: for each found true copy, the mean of its query-axis and reference-axis IoU
  with the best-overlapping prediction of its pair;
- false positives per hour: predictions at or above a threshold that overlap no true copy of
  their pair on the query axis, per hour of query video that copies nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IOU_MIN = 0.5


@dataclass(frozen=True)
class Prediction:
    query: str
    reference: str
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float


@dataclass(frozen=True)
class Truth:
    query: str
    reference: str
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float


def average_precision(scores: np.ndarray, correct: np.ndarray, total: int) -> float:
    """Micro AP: sum over the ranked list of precision at each correct item / total positives."""
    if total == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, float), kind="stable")
    hits = np.asarray(correct, bool)[order]
    if not hits.any():
        return 0.0
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].sum() / total)


def iou(a0: float, a1: float, b0: float, b1: float) -> float:
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    return inter / union if union > 0 else 0.0


def pair_ap(preds: list[Prediction], truths: list[Truth]) -> float:
    true_pairs = {(t.query, t.reference) for t in truths}
    best: dict[tuple[str, str], float] = {}
    for p in preds:
        key = (p.query, p.reference)
        best[key] = max(best.get(key, -np.inf), p.score)
    keys = list(best)
    return average_precision(np.array([best[k] for k in keys]), np.array([k in true_pairs for k in keys]),
                             len(true_pairs))


def _match_segments(preds: list[Prediction], truths: list[Truth]) -> np.ndarray:
    """Greedy, best score first: index of the true copy each prediction finds, or -1."""
    by_pair: dict[tuple[str, str], list[int]] = {}
    for i, t in enumerate(truths):
        by_pair.setdefault((t.query, t.reference), []).append(i)
    found = np.full(len(preds), -1)
    taken: set[int] = set()
    for i in np.argsort([-p.score for p in preds], kind="stable"):
        p = preds[i]
        best, best_iou = -1, 0.0
        for j in by_pair.get((p.query, p.reference), []):
            t = truths[j]
            qi = iou(p.query_start, p.query_end, t.query_start, t.query_end)
            ri = iou(p.ref_start, p.ref_end, t.ref_start, t.ref_end)
            if j not in taken and qi >= IOU_MIN and ri >= IOU_MIN and min(qi, ri) > best_iou:
                best, best_iou = j, min(qi, ri)
        if best >= 0:
            found[i] = best
            taken.add(best)
    return found


def segment_ap(preds: list[Prediction], truths: list[Truth]) -> float:
    found = _match_segments(preds, truths)
    return average_precision(np.array([p.score for p in preds]), found >= 0, len(truths))


def localisation_iou(preds: list[Prediction], truths: list[Truth], threshold: float = -np.inf) -> float:
    """Mean over true copies of (query IoU + reference IoU) / 2 with the best prediction of the
    pair at or above `threshold` (0 when there is none)."""
    values = []
    for t in truths:
        best = 0.0
        for p in preds:
            if p.query == t.query and p.reference == t.reference and p.score >= threshold:
                best = max(best, (iou(p.query_start, p.query_end, t.query_start, t.query_end)
                                  + iou(p.ref_start, p.ref_end, t.ref_start, t.ref_end)) / 2)
        values.append(best)
    return float(np.mean(values)) if values else float("nan")


def false_positives(preds: list[Prediction], truths: list[Truth], threshold: float) -> int:
    """Predictions >= threshold that overlap no true copy of their pair on the query axis."""
    count = 0
    for p in preds:
        if p.score < threshold:
            continue
        if not any(t.query == p.query and t.reference == p.reference
                   and min(p.query_end, t.query_end) > max(p.query_start, t.query_start) for t in truths):
            count += 1
    return count


def precision_at(preds: list[Prediction], truths: list[Truth], threshold: float) -> tuple[float, float]:
    """(segment precision, segment recall) of the predictions >= threshold (IoU rule above)."""
    kept = [p for p in preds if p.score >= threshold]
    found = _match_segments(kept, truths)
    precision = float((found >= 0).mean()) if kept else float("nan")
    return precision, float((found >= 0).sum() / len(truths)) if truths else float("nan")


def pair_precision_at(preds: list[Prediction], truths: list[Truth], threshold: float) -> tuple[float, float]:
    true_pairs = {(t.query, t.reference) for t in truths}
    pairs = {(p.query, p.reference) for p in preds if p.score >= threshold}
    precision = len(pairs & true_pairs) / len(pairs) if pairs else float("nan")
    return precision, len(pairs & true_pairs) / len(true_pairs) if true_pairs else float("nan")


def threshold_for_precision(preds: list[Prediction], truths: list[Truth], target: float) -> float:
    """The lowest score threshold at which segment precision is >= target (and stays so for
    every higher threshold)."""
    scores = sorted({p.score for p in preds}, reverse=True)
    chosen = scores[0] if scores else 0.0
    for s in scores:
        precision, _ = precision_at(preds, truths, s)
        if precision >= target:
            chosen = s
        else:
            break
    return float(chosen)
