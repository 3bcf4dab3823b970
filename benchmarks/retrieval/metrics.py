"""Ranking metrics for queries that each have exactly one relevant database item.

Ranking: database items sorted by distance (lower is more similar), ties broken by database
order (a stable sort). The rank of the relevant item is therefore
``1 + #{d < d_rel} + #{d == d_rel and index < rel_index}``.

AP@K with one relevant item is ``1 / rank`` when ``rank <= K`` and 0 otherwise (precision at
the relevant item's rank, divided by the number of relevant items, 1); mAP@K is its mean over
queries, so mAP@1 equals top-1 accuracy. This is NOT the SSVH/BTH/ConMH "mAP@K" used for
FCVID etc., which averages precision over the relevant items found in the top K of a
class-labelled database; with a single relevant item the two are different numbers.
"""

from __future__ import annotations

import numpy as np


KS = (1, 5, 10)


def relevant_ranks(distances: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based rank of each query's relevant item. distances [Q, N], relevant [Q] (int index)."""
    distances = np.asarray(distances)
    relevant = np.asarray(relevant, dtype=np.int64)
    if distances.ndim != 2 or relevant.shape != (distances.shape[0],):
        raise ValueError(f"distances must be [Q, N] and relevant [Q]; got {distances.shape}, {relevant.shape}")
    if np.any(relevant < 0) or np.any(relevant >= distances.shape[1]):
        raise ValueError("relevant index out of range")
    rows = np.arange(len(relevant))
    d_rel = distances[rows, relevant][:, None]
    index = np.arange(distances.shape[1])[None, :]
    better = (distances < d_rel) | ((distances == d_rel) & (index < relevant[:, None]))
    return 1 + better.sum(axis=1)


def ranks_by_sorting(distances: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """The obviously correct reference: stable argsort each row and find the relevant item."""
    order = np.argsort(np.asarray(distances), axis=1, kind="stable")
    return np.array([1 + int(np.flatnonzero(row == r)[0]) for row, r in zip(order, relevant)])


def average_precision_at(ranks: np.ndarray, k: int) -> np.ndarray:
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks <= k, 1.0 / ranks, 0.0)


def summarize(ranks: np.ndarray) -> dict[str, float]:
    """top-1 and mAP@K (K in KS) over the given queries' ranks."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        return {"top1": float("nan"), **{f"map@{k}": float("nan") for k in KS}}
    out = {"top1": float(np.mean(ranks == 1))}
    out.update({f"map@{k}": float(average_precision_at(ranks, k).mean()) for k in KS})
    return out


