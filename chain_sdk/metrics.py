"""Retrieval metrics of the self-supervised video hashing (SSVH) line, numpy only.

`map_at_k` reproduces the mAP@K of SSVH / BTH / ConMH / S5VH (their `utils/tools.py mAP`):

1. Hamming distance between packed codes (`d = (bits - b_q . b_db) / 2` on +-1 codes);
2. the database ranked by distance for every query;
3. an item is relevant when it shares at least one label with the query (`l_q . l_db > 0`);
4. ``AP@K(q) = (1/K) * sum_{r=1..K} rel_r * x_r / r``, where ``x_r`` counts the relevant items
   in the top r: **normalised by K**, not by the number of relevant items retrieved. mAP@K is
   the mean over queries. When the database has fewer than K items, the missing ranks count
   as not relevant (the sum still divides by K).

Ties: at 16 bits there are only 17 distinct distances, so the order of tied items changes mAP.
The published code ranks with ``np.argsort(hamming_NxQ_float32, axis=0)`` (quicksort, not
stable). ``tie_order="stable"`` (default) breaks ties by database index, which is canonical and
identical on every machine; ``tie_order="published"`` uses the published call on the same
N x Q float32 layout, so it reproduces published numbers on the numpy build that produced them.

Everything is vectorised over a chunk of queries; ``chunk`` bounds memory to about
``chunk * n_db * 4`` bytes (the distance block) plus ``chunk * max(ks)`` for the ranking.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from chain_sdk.codes import pairwise_hamming

TIE_ORDERS = ("stable", "published")
DEFAULT_KS = (5, 10, 20, 40, 60, 80, 100)


def unpack_signs(codes: np.ndarray) -> np.ndarray:
    """Packed uint8 codes [N, bits/8] (MSB-first) -> float32 +-1 matrix [N, bits]."""
    codes = _check_codes(codes, "codes")
    return np.unpackbits(codes, axis=1).astype(np.float32) * 2.0 - 1.0


def hamming_distances(query_codes: np.ndarray, db_codes: np.ndarray) -> np.ndarray:
    """Hamming distances [Q, N] (int32) between packed uint8 codes."""
    q, db = _check_codes(query_codes, "query codes"), _check_codes(db_codes, "database codes")
    _check_same_bits(q, db)
    return pairwise_hamming(q, db)


def relevance(query_labels: np.ndarray, db_labels: np.ndarray) -> np.ndarray:
    """Boolean [Q, N]: query and item share at least one label."""
    return (_as_label_matrix(query_labels) @ _as_label_matrix(db_labels).T) > 0


def map_at_k(
    query_codes: np.ndarray,
    db_codes: np.ndarray,
    query_labels: np.ndarray,
    db_labels: np.ndarray,
    ks: Iterable[int] = DEFAULT_KS,
    *,
    tie_order: str = "stable",
    chunk: int = 256,
) -> dict[int, float]:
    """mAP@K for every K in ``ks``: ``{k: mAP}`` (see the module docstring for the definition)."""
    ks = _check_ks(ks)
    totals = dict.fromkeys(ks, 0.0)
    for rel_top, _, _ in _ranked_chunks(query_codes, db_codes, query_labels, db_labels,
                                        max(ks), tie_order, chunk):
        ap = _ap_prefix_sums(rel_top)
        for k in ks:
            totals[k] += float(ap[:, min(k, ap.shape[1]) - 1].sum()) / k
    n_queries = len(query_codes)
    return {k: totals[k] / n_queries for k in ks}


def precision_recall_at_k(
    query_codes: np.ndarray,
    db_codes: np.ndarray,
    query_labels: np.ndarray,
    db_labels: np.ndarray,
    ks: Iterable[int] = DEFAULT_KS,
    *,
    tie_order: str = "stable",
    chunk: int = 256,
) -> dict[int, tuple[float, float]]:
    """``{k: (precision@k, recall@k)}``, as ConMH's ``tools.topK``.

    precision@k = relevant items in the top k / k; recall@k = relevant items in the top k /
    all relevant items of the query. Queries with no relevant item at all are left out of the
    recall mean (their recall is undefined); the precision mean covers every query.
    """
    ks = _check_ks(ks)
    hits_sum = dict.fromkeys(ks, 0.0)
    recall_sum = dict.fromkeys(ks, 0.0)
    recall_count = 0
    for rel_top, n_relevant, _ in _ranked_chunks(query_codes, db_codes, query_labels, db_labels,
                                                 max(ks), tie_order, chunk):
        hits = np.cumsum(rel_top, axis=1)
        has_relevant = n_relevant > 0
        recall_count += int(has_relevant.sum())
        for k in ks:
            h = hits[:, min(k, hits.shape[1]) - 1]
            hits_sum[k] += float(h.sum()) / k
            recall_sum[k] += float((h[has_relevant] / n_relevant[has_relevant]).sum())
    n_queries = len(query_codes)
    return {
        k: (hits_sum[k] / n_queries, recall_sum[k] / recall_count if recall_count else float("nan"))
        for k in ks
    }


def pr_curve_by_radius(
    query_codes: np.ndarray,
    db_codes: np.ndarray,
    query_labels: np.ndarray,
    db_labels: np.ndarray,
    *,
    chunk: int = 256,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of Hamming-ball retrieval for radius r = 0..bits.

    For each query, everything within distance <= r is retrieved. precision(r) = relevant
    retrieved / retrieved, averaged over the queries that retrieve something at r; recall(r) =
    relevant retrieved / all relevant, averaged over the queries that have a relevant item.
    Returns ``(radii, precision, recall)``; precision is NaN at a radius where no query
    retrieves anything.
    """
    q, db = _check_codes(query_codes, "query codes"), _check_codes(db_codes, "database codes")
    _check_same_bits(q, db)
    q_labels, db_labels_m = _check_labels(query_labels, db_labels, len(q), len(db))
    bits = q.shape[1] * 8
    prec_sum = np.zeros(bits + 1)
    prec_count = np.zeros(bits + 1)
    recall_sum = np.zeros(bits + 1)
    recall_count = 0
    for start in range(0, len(q), chunk):
        dist = pairwise_hamming(q[start:start + chunk], db)
        rel = (q_labels[start:start + chunk] @ db_labels_m.T) > 0
        retrieved = np.cumsum(_histogram_rows(dist, np.ones_like(rel), bits), axis=1)
        relevant = np.cumsum(_histogram_rows(dist, rel, bits), axis=1)
        has = retrieved > 0
        prec_sum += np.where(has, relevant / np.maximum(retrieved, 1), 0.0).sum(axis=0)
        prec_count += has.sum(axis=0)
        total_rel = relevant[:, -1]
        keep = total_rel > 0
        recall_sum += (relevant[keep] / total_rel[keep, None]).sum(axis=0)
        recall_count += int(keep.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = prec_sum / prec_count
    recall = recall_sum / recall_count if recall_count else np.full(bits + 1, np.nan)
    return np.arange(bits + 1), precision, recall


def _histogram_rows(dist: np.ndarray, weights: np.ndarray, bits: int) -> np.ndarray:
    """Per row, how many (weighted) items lie at each distance 0..bits: [rows, bits+1]."""
    rows = dist.shape[0]
    flat = (np.arange(rows)[:, None] * (bits + 1) + dist).ravel()
    counts = np.bincount(flat, weights=weights.ravel().astype(np.float64),
                         minlength=rows * (bits + 1))
    return counts.reshape(rows, bits + 1)


def _ranked_chunks(query_codes, db_codes, query_labels, db_labels, kmax, tie_order, chunk):
    """Yield, per chunk of queries: relevance of the top-kmax ranked items [c, kmax'],
    the number of relevant items per query [c], and the ranked indices [c, kmax']."""
    if tie_order not in TIE_ORDERS:
        raise ValueError(f"tie_order must be one of {TIE_ORDERS}, got {tie_order!r}")
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    q, db = _check_codes(query_codes, "query codes"), _check_codes(db_codes, "database codes")
    _check_same_bits(q, db)
    q_labels, db_labels_m = _check_labels(query_labels, db_labels, len(q), len(db))
    top = min(kmax, len(db))
    for start in range(0, len(q), chunk):
        dist = pairwise_hamming(q[start:start + chunk], db)
        order = _rank(dist, top, tie_order)
        rel = (q_labels[start:start + chunk] @ db_labels_m.T) > 0
        yield np.take_along_axis(rel, order, axis=1), rel.sum(axis=1), order


def _rank(dist: np.ndarray, top: int, tie_order: str) -> np.ndarray:
    """Indices of the `top` nearest items per row, nearest first."""
    n = dist.shape[1]
    if tie_order == "published":
        # Exactly the published call: float32 N x Q matrix, argsort along axis 0, quicksort.
        return np.argsort(dist.T.astype(np.float32), axis=0)[:top].T
    # Unique keys (distance, index) make partition + sort equal to a stable full sort.
    key = dist.astype(np.int64) * n + np.arange(n)
    if top < n:
        part = np.argpartition(key, top - 1, axis=1)[:, :top]
    else:
        part = np.broadcast_to(np.arange(n), key.shape).copy()
    return np.take_along_axis(part, np.argsort(np.take_along_axis(key, part, axis=1), axis=1), axis=1)


def _ap_prefix_sums(rel_top: np.ndarray) -> np.ndarray:
    """[c, R] running sums of rel_r * x_r / r over ranks (column k-1 gives K * AP@K)."""
    ranks = np.arange(1, rel_top.shape[1] + 1)
    hits = np.cumsum(rel_top, axis=1)
    return np.cumsum(rel_top * hits / ranks, axis=1)


def _check_codes(codes: np.ndarray, name: str) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.dtype != np.uint8 or codes.ndim != 2:
        raise ValueError(f"{name} must be packed uint8 codes [N, bits/8], got {codes.dtype} "
                         f"{codes.shape}")
    if len(codes) == 0:
        raise ValueError(f"{name} is empty")
    return codes


def _check_same_bits(q: np.ndarray, db: np.ndarray) -> None:
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"query codes have {q.shape[1] * 8} bits, database codes {db.shape[1] * 8}")


def _as_label_matrix(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 1:  # class ids -> one-hot
        if not np.issubdtype(labels.dtype, np.integer) or (labels < 0).any():
            raise ValueError("1-D labels must be non-negative integer class ids")
        one_hot = np.zeros((len(labels), int(labels.max()) + 1), dtype=np.float32)
        one_hot[np.arange(len(labels)), labels] = 1.0
        return one_hot
    if labels.ndim != 2:
        raise ValueError(f"labels must be a one-/multi-hot matrix [N, C], got shape {labels.shape}")
    return (labels != 0).astype(np.float32)


def _check_labels(query_labels, db_labels, n_q: int, n_db: int):
    q, db = _as_label_matrix(query_labels), _as_label_matrix(db_labels)
    if len(q) != n_q or len(db) != n_db:
        raise ValueError(f"labels ({len(q)} query, {len(db)} database) do not match the codes "
                         f"({n_q} query, {n_db} database)")
    if q.shape[1] != db.shape[1]:
        if np.ndim(query_labels) == 2 and np.ndim(db_labels) == 2:
            raise ValueError(f"query labels have {q.shape[1]} classes, database labels {db.shape[1]}")
        width = max(q.shape[1], db.shape[1])  # class ids with different maxima: pad the one-hots
        q = np.pad(q, ((0, 0), (0, width - q.shape[1])))
        db = np.pad(db, ((0, 0), (0, width - db.shape[1])))
    return q, db


def _check_ks(ks: Iterable[int]) -> list[int]:
    ks = [int(k) for k in ks]
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    return ks
