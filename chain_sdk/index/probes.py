"""Multi-probe search: a query given as several codes (its probes) matches a stored code by the
smallest Hamming distance over the probes (query-side multi-probe, `chain_sdk.video.probes`).

Works on any index with the two search verbs (`HammingIndex`, `MilvusIndex`), and is exact:

1. `search(probes, k)` gives each probe's k nearest; merged by id (smallest distance kept),
   their k-th smallest distance r bounds the true k-th distance from above, since every merged
   candidate's distance is a real one;
2. `range_search(probes, r)` then returns every code within r of some probe, a superset of the
   true top k, which is merged the same way and cut to k.

Ties are broken by id (an index breaks them by insertion order, which merging loses), so the
result equals `chain_sdk.index.reference.probe_knn` with the same ids.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def search_probes(index: Any, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest ids of each probed query: probes uint8 [P, nbytes] (one query) or [nq, P, nbytes];
    returns (distances int32 [nq, k], ids int64 [nq, k]), sorted by (distance, id), padded with -1."""
    probes = np.asarray(probes)
    if probes.ndim == 2:
        probes = probes[None]
    if probes.ndim != 3 or probes.shape[1] == 0:
        raise ValueError(f"probes must be uint8 [P, nbytes] or [nq, P, nbytes] with P >= 1, got {probes.shape}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    nq, p = probes.shape[:2]
    flat = np.ascontiguousarray(probes.reshape(nq * p, -1))
    out_d = np.full((nq, k), -1, dtype=np.int32)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    if k == 0:
        return out_d, out_i
    dist, ids = index.search(flat, int(k))
    radius = np.array([_kth(dist[q * p:(q + 1) * p], ids[q * p:(q + 1) * p], k) for q in range(nq)])
    for q in np.flatnonzero(radius >= 0):
        lims, rd, rids = index.range_search(flat[q * p:(q + 1) * p], int(radius[q]))
        best_i, best_d = _merge(rd, rids)
        order = np.lexsort((best_i, best_d))[:k]
        out_d[q, :order.size], out_i[q, :order.size] = best_d[order], best_i[order]
    return out_d, out_i


def _merge(dist: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique ids and the smallest distance each has (the -1 padding dropped)."""
    keep = ids >= 0
    dist, ids = dist[keep], ids[keep]
    order = np.lexsort((dist, ids))  # by id, nearest first within an id
    ids, dist = ids[order], dist[order]
    first = np.ones(ids.size, bool)
    first[1:] = ids[1:] != ids[:-1]
    return ids[first], dist[first].astype(np.int32)


def _kth(dist: np.ndarray, ids: np.ndarray, k: int) -> int:
    """The search radius that holds a query's true top k: the k-th smallest merged distance, the
    largest one when fewer than k ids were found (then every live code was found), -1 for none."""
    _, best = _merge(dist.ravel(), ids.ravel())
    if best.size == 0:
        return -1
    return int(np.sort(best)[min(k, best.size) - 1])
