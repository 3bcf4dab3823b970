"""Pure-numpy reference of every Hamming search operation (slow, obviously correct).

The compiled kernels (chain_sdk._hamming, chain_sdk._hamming_cuda) and HammingIndex are tested
against these functions. Conventions shared by all implementations:

* codes are packed ``uint8 [n, bits/8]`` (MSB-first, the order of ``numpy.packbits``);
* results are sorted by (distance, position) — ties go to the code inserted first;
* ``knn`` returns ``(distances int32 [nq, k], positions int64 [nq, k])`` and pads a row with
  distance -1 / position -1 when fewer than k live codes exist;
* ``range_search`` is inclusive (``d <= radius``; faiss uses a strict ``<``) and returns
  ``(lims int64 [nq+1], distances int32, positions int64)`` like faiss;
* ``deleted`` is an optional tombstone bitmap (bit i = byte i // 8, bit i % 8 LSB-first).
"""

from __future__ import annotations

import numpy as np

from chain_sdk.codes import pairwise_hamming



def distances(queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """All pairwise Hamming distances, int32 [nq, n] (chain_sdk.codes.pairwise_hamming)."""
    return pairwise_hamming(np.asarray(queries, dtype=np.uint8), np.asarray(codes, dtype=np.uint8))


def live_mask(n: int, deleted: np.ndarray | None) -> np.ndarray:
    """Boolean [n]: True where the code at that position is not tombstoned."""
    if deleted is None:
        return np.ones(n, dtype=bool)
    bits = np.unpackbits(np.asarray(deleted, dtype=np.uint8), bitorder="little")[:n]
    return bits == 0


def knn(
    codes: np.ndarray, queries: np.ndarray, k: int, deleted: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours, sorted by (distance, position), padded with -1."""
    n, nq = codes.shape[0], queries.shape[0]
    out_d = np.full((nq, k), -1, dtype=np.int32)
    out_p = np.full((nq, k), -1, dtype=np.int64)
    live = np.flatnonzero(live_mask(n, deleted))
    dist = distances(queries, codes[live])
    for q in range(nq):
        order = np.lexsort((live, dist[q]))[:k]  # primary key distance, then position
        out_d[q, : order.size] = dist[q, order]
        out_p[q, : order.size] = live[order]
    return out_d, out_p


def range_search(
    codes: np.ndarray, queries: np.ndarray, radius: int, deleted: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every live code with distance <= radius, per query sorted by (distance, position)."""
    n, nq = codes.shape[0], queries.shape[0]
    live = np.flatnonzero(live_mask(n, deleted))
    dist = distances(queries, codes[live])
    lims = np.zeros(nq + 1, dtype=np.int64)
    all_d, all_p = [], []
    for q in range(nq):
        hit = np.flatnonzero(dist[q] <= radius)
        order = hit[np.lexsort((live[hit], dist[q, hit]))]
        all_d.append(dist[q, order])
        all_p.append(live[order])
        lims[q + 1] = lims[q] + order.size
    cat_d = np.concatenate(all_d).astype(np.int32) if all_d else np.zeros(0, np.int32)
    cat_p = np.concatenate(all_p).astype(np.int64) if all_p else np.zeros(0, np.int64)
    return lims, cat_d, cat_p


def probe_knn(
    codes: np.ndarray, probes: np.ndarray, k: int, deleted: np.ndarray | None = None,
    ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-probe k nearest neighbours: each query is a set of probe codes [nq, P, nbytes] and a
    code's distance to it is the smallest over its probes. Sorted by (distance, id), where the id
    of position i is ``ids[i]`` (default i); returns (distances int32 [nq, k], ids int64 [nq, k])
    padded with -1."""
    n, nq = codes.shape[0], probes.shape[0]
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    out_d = np.full((nq, k), -1, dtype=np.int32)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    live = np.flatnonzero(live_mask(n, deleted))
    for q in range(nq):
        dist = distances(probes[q], codes[live]).min(axis=0)
        order = np.lexsort((ids[live], dist))[:k]
        out_d[q, : order.size] = dist[order]
        out_i[q, : order.size] = ids[live][order]
    return out_d, out_i
