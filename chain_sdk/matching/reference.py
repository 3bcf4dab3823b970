"""The slow, obviously correct alignment that `chain_sdk.matching.align.align` is tested against.

Pure Python, one (query, reference video) pair at a time, every pair of hits compared, the rules
of `align` written out literally. Quadratic per chain found: for tests only.
"""

from __future__ import annotations

from chain_sdk.matching.align import AlignParams, Chain

import numpy as np


def _edge_gain(a: tuple, b: tuple, best_a: float, p: AlignParams) -> float | None:
    """Score carried from hit a to hit b (q, r, w), or None when a cannot precede b."""
    dq, dr = b[0] - a[0], b[1] - a[1]
    if not (1 <= dq <= p.max_gap and 1 <= dr <= p.max_gap):
        return None
    if dr > p.max_slope * dq or dq > p.max_slope * dr:
        return None
    return best_a - p.gap_cost * (max(dq, dr) - 1)


def best_chain(hits: list[tuple], p: AlignParams) -> tuple[float, list[int]]:
    """(score, positions in `hits`) of the best chain; `hits` are (q, r, w) sorted by (q, r)."""
    best: list[float] = []
    prev: list[int] = []
    for i, b in enumerate(hits):
        value, link = b[2], -1
        for j in range(i):  # earlier in (q, r) order: the first maximal predecessor wins
            gain = _edge_gain(hits[j], b, best[j], p)
            if gain is not None and gain > 0 and (link == -1 or gain > best_pred):
                best_pred, link = gain, j
        if link >= 0:
            value += best_pred
        best.append(value)
        prev.append(link)
    end = max(range(len(hits)), key=lambda i: (best[i], -i))  # first maximal end
    path = [end]
    while prev[path[-1]] >= 0:
        path.append(prev[path[-1]])
    return best[end], path[::-1]


def align(video, q, r, w, params: AlignParams = AlignParams(), min_score: float = 0.0) -> list[Chain]:
    chains = []
    for vid in sorted(set(int(x) for x in video)):
        hits = sorted((int(q[i]), int(r[i]), float(w[i]), i) for i in range(len(q)) if int(video[i]) == vid)
        found = 0
        while hits and found < params.max_per_pair:
            score, path = best_chain(hits, params)
            if score <= 0 or score < min_score:
                break
            q0, r0, q1, r1 = hits[path[0]][0], hits[path[0]][1], hits[path[-1]][0], hits[path[-1]][1]
            chains.append(Chain(vid, np.array([hits[k][3] for k in path]), score))
            found += 1
            hits = [h for h in hits if not (q0 <= h[0] <= q1 and r0 <= h[1] <= r1)]
    chains.sort(key=lambda c: (-c.score, c.video, int(q[c.hits[0]]), int(r[c.hits[0]])))
    return chains
