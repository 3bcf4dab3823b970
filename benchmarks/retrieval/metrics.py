"""Ranking metrics for queries that each have exactly one relevant database item.

Ranking: database items sorted by distance (lower is more similar), ties broken by database
order (a stable sort). The rank of the relevant item is therefore
``1 + #{d < d_rel} + #{d == d_rel and index < rel_index}``, counting only items that are not
ignored for that query. A query may ignore database items that are neither relevant nor
negatives: the video pasted into it (the background of a picture-in-picture, an overlaid patch,
an intro) is in the database too, and finding it is a correct copy detection, not a miss
(the "junk" images of the Oxford/Paris retrieval protocol).

AP@K with one relevant item is ``1 / rank`` when ``rank <= K`` and 0 otherwise (precision at
the relevant item's rank, divided by the number of relevant items, 1); mAP@K is its mean over
queries, so mAP@1 equals top-1 accuracy. This is NOT the SSVH/BTH/ConMH "mAP@K" used for
FCVID etc., which averages precision over the relevant items found in the top K of a
class-labelled database; with a single relevant item the two are different numbers.
"""

from __future__ import annotations

import numpy as np


KS = (1, 5, 10)


def relevant_ranks(distances: np.ndarray, relevant: np.ndarray, ignored: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of each query's relevant item. distances [Q, N], relevant [Q] (int index),
    ignored: optional bool [Q, N], items left out of that query's ranking (never its relevant one)."""
    distances = np.asarray(distances)
    relevant = np.asarray(relevant, dtype=np.int64)
    if distances.ndim != 2 or relevant.shape != (distances.shape[0],):
        raise ValueError(f"distances must be [Q, N] and relevant [Q]; got {distances.shape}, {relevant.shape}")
    if np.any(relevant < 0) or np.any(relevant >= distances.shape[1]):
        raise ValueError("relevant index out of range")
    rows = np.arange(len(relevant))
    ignored = _ignored_mask(ignored, distances.shape)
    if ignored[rows, relevant].any():
        raise ValueError("a query's relevant item is also ignored")
    d_rel = distances[rows, relevant][:, None]
    index = np.arange(distances.shape[1])[None, :]
    better = (distances < d_rel) | ((distances == d_rel) & (index < relevant[:, None]))
    return 1 + (better & ~ignored).sum(axis=1)


def ranks_by_sorting(distances: np.ndarray, relevant: np.ndarray, ignored: np.ndarray | None = None) -> np.ndarray:
    """The obviously correct reference: drop the ignored items, stable argsort each row and
    find the relevant item."""
    distances = np.asarray(distances)
    ignored = _ignored_mask(ignored, distances.shape)
    ranks = []
    for row, r, skip in zip(distances, relevant, ignored):
        kept = np.flatnonzero(~skip)
        order = kept[np.argsort(row[kept], kind="stable")]
        ranks.append(1 + int(np.flatnonzero(order == r)[0]))
    return np.array(ranks)


def _ignored_mask(ignored: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if ignored is None:
        return np.zeros(shape, dtype=bool)
    ignored = np.asarray(ignored, dtype=bool)
    if ignored.shape != shape:
        raise ValueError(f"ignored must be [Q, N] = {shape}; got {ignored.shape}")
    return ignored


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


