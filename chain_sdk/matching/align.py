"""Temporal alignment: copied segments as diagonal runs of window hits.

A hit says "query window q looks like reference window r of video v", with a positive weight
(how much closer it is than the unrelated background, see `VideoIndex`). A copy is a run of hits
that advance together on both time axes. Runs are found as the best local chain, as in sparse
local sequence alignment (and in spirit VCSL's temporal network, which the VSC 2022 baseline uses):

    chain  = hits h1..hm of one video with, for consecutive hits a -> b,
             1 <= dq <= max_gap, 1 <= dr <= max_gap, dr <= max_slope * dq, dq <= max_slope * dr
             (dq, dr: window steps on the query and reference axes)
    score  = sum of the weights - gap_cost * sum(max(dq, dr) - 1)

so a speed change (slope != 1, up to `max_slope`), dropped or overlaid frames (gaps up to
`max_gap` windows) and a copy that starts anywhere are all one chain. The best chain of every
video is taken, every hit inside its box (its query x reference extent) is removed, and the next
best chain is looked for, so one query can copy several parts of one reference.

Ties are broken by the (q, r) order: the first maximal predecessor, the first maximal end.
`chain_sdk.matching.reference.align` is the slow, obviously correct version of the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AlignParams:
    max_gap: int = 3          # windows either axis may skip between consecutive hits
    max_slope: float = 2.0    # speed changes between 1/max_slope x and max_slope x
    gap_cost: float = 1.0     # weight lost per skipped window
    max_per_pair: int = 8     # chains reported per (query, reference video)

    def __post_init__(self) -> None:
        if self.max_gap < 1 or self.max_slope < 1 or self.gap_cost < 0 or self.max_per_pair < 1:
            raise ValueError(f"invalid alignment parameters {self}")


@dataclass(frozen=True)
class Chain:
    video: int
    hits: np.ndarray  # indices into the input hit arrays, in chain order
    score: float


def align(video: np.ndarray, q: np.ndarray, r: np.ndarray, w: np.ndarray,
          params: AlignParams = AlignParams(), min_score: float = 0.0) -> list[Chain]:
    """Chains of hits (video, query window, reference window, weight > 0) scoring >= min_score
    (and > 0), best first (ties: video, then the chain's first hit)."""
    video, q, r = (np.asarray(a, dtype=np.int64) for a in (video, q, r))
    w = np.asarray(w, dtype=np.float64)
    if not (video.shape == q.shape == r.shape == w.shape) or video.ndim != 1:
        raise ValueError("video, q, r and w must be 1-D arrays of one length")
    if (w <= 0).any():
        raise ValueError("hit weights must be positive")
    order = np.lexsort((r, video, q))  # by q, then video, then r: the levels of the recursion
    v, qq, rr, ww = video[order], q[order], r[order], w[order]
    alive = np.ones(len(order), bool)
    chains: list[Chain] = []
    per_video: dict[int, int] = {}
    while alive.any():
        best, prev = _recurse(v, qq, rr, ww, alive, params)
        found = False
        for vid in np.unique(v[alive]):
            members = np.flatnonzero(alive & (v == vid))
            # first maximal end in (q, r) order; members are in (q, video, r) order = (q, r) here
            end = members[np.argmax(best[members])]
            if best[end] <= 0 or best[end] < min_score:
                alive[members] = False
                continue
            path = [end]
            while prev[path[-1]] >= 0:
                path.append(prev[path[-1]])
            path = path[::-1]
            chains.append(Chain(int(vid), order[path], float(best[end])))
            found = True
            box = ((qq >= qq[path[0]]) & (qq <= qq[path[-1]]) & (rr >= rr[path[0]]) & (rr <= rr[path[-1]])
                   & (v == vid))
            alive &= ~box
            per_video[int(vid)] = per_video.get(int(vid), 0) + 1
            if per_video[int(vid)] >= params.max_per_pair:
                alive[members] = False
        if not found:
            break
    chains.sort(key=lambda c: (-c.score, c.video, int(q[c.hits[0]]), int(r[c.hits[0]])))
    return chains


def _recurse(v, q, r, w, alive, p: AlignParams) -> tuple[np.ndarray, np.ndarray]:
    """best[i]: score of the best chain ending at hit i; prev[i]: its predecessor (-1: starts)."""
    n = len(q)
    best = np.full(n, -np.inf)
    prev = np.full(n, -1, np.int64)
    idx = np.flatnonzero(alive)
    if idx.size == 0:
        return best, prev
    levels = np.flatnonzero(np.diff(q[idx], prepend=q[idx][0] - 1)) if idx.size else idx
    bounds = np.append(levels, idx.size)
    for a, b in zip(bounds[:-1], bounds[1:]):
        cur = idx[a:b]
        lo = np.searchsorted(q[idx], q[cur[0]] - p.max_gap, side="left")
        pred = idx[lo:a]
        best[cur] = w[cur]
        if pred.size == 0:
            continue
        dq = q[cur][:, None] - q[pred][None, :]
        dr = r[cur][:, None] - r[pred][None, :]
        ok = ((v[cur][:, None] == v[pred][None, :]) & (dr >= 1) & (dr <= p.max_gap)
              & (dr <= p.max_slope * dq) & (dq <= p.max_slope * dr))
        gain = np.where(ok, best[pred][None, :] - p.gap_cost * (np.maximum(dq, dr) - 1), -np.inf)
        j = np.argmax(gain, axis=1)
        top = gain[np.arange(len(cur)), j]
        use = top > 0
        best[cur[use]] += top[use]
        prev[cur[use]] = pred[j[use]]
    return best, prev
