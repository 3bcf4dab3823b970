"""`VideoIndex`: which parts of a query video were copied from which parts of which references.

    index = VideoIndex()                              # default model, window and hop
    index.add("film.mp4", "film")                     # codes of windows every hop seconds
    for m in index.match("upload.mp4"):               # best first
        print(m.video_id, m.query_start, m.query_end, m.ref_start, m.ref_end, m.score)
    index.save("refs.vidx"); index = VideoIndex.load("refs.vidx")

Pipeline (the VSC 2022 recipe with binary codes; docs/copy_detection_report.md measures it):

1. Windows: `Encoder.stream` codes of `window`-second windows every `hop` seconds, for the
   references (stored) and for the query (not stored).
2. Candidates: the `K` nearest reference windows of every query window (store.search).
3. Calibration: a hit's weight is how much closer it is than the query window's background, the
   distance of its K-th neighbour (capped by a prior for small indexes), minus a bias. The
   K-th neighbour of a window is almost always unrelated footage, so this normalises every
   query window against the unrelated videos of the collection itself: a plain or dark window
   that is close to everything gets small weights, and one threshold serves every query.
4. Alignment: copies are diagonal runs of hits (chain_sdk.matching.align); a match's score is
   its chain's total weight divided by the code length.

The store is anything with HammingIndex's verbs (add(codes, ids), search(codes, k), remove(ids),
len) and, for save/load, `save(path, metadata=bytes)` and a `load(path)` whose result carries
`.metadata`: a vector database can take HammingIndex's place without changing the matcher. The
window table (video ids, times) is kept here and saved inside the store's file.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

from chain_sdk.errors import ChainSDKError, IndexFormatError, ModelMismatchError
from chain_sdk.matching.align import AlignParams, align
from chain_sdk.matching.table import WindowTable

log = logging.getLogger(__name__)

#: Chosen on the development benchmark (docs/copy_detection_report.md).
DEFAULT_WINDOW = 8.0
DEFAULT_HOP = 3.2
#: The lowest score at which segment precision on the development benchmark is >= THRESHOLD_PRECISION.
DEFAULT_THRESHOLD = 0.22
THRESHOLD_PRECISION = 0.9
#: The sampling density the packaged models were trained at (25 frames per 10 s window).
FRAMES_PER_SECOND = 2.5
NEIGHBOURS = 64          # K: candidates per query window, and the rank of its background
PRIOR_FRACTION = 0.35    # background cap as a fraction of the bits (indexes smaller than K)
BIAS_BITS = 2.0          # a hit must beat its background by more than this to count
MAX_GAP_S = 5.0          # longest gap (dropped, overlaid frames) inside one copy
#: A match covers its first window's start to its last window's end, less this fraction of a
#: window at each end (0.5: from the first centre to the last). Chosen on the benchmark.
DEFAULT_TRIM = 0.25


class Match(NamedTuple):
    """One copied segment: [query_start, query_end] of the query came from [ref_start, ref_end]
    of reference `video_id` (seconds); higher score = more sure (calibrated, see VideoIndex)."""

    video_id: str
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float


class DuplicateVideoError(ChainSDKError, ValueError):
    """A video id that the index already holds."""


class VideoIndex:
    """Reference videos as window codes with times, searched for copied segments.

    encoder: an `Encoder` (its `frames` must equal `frames`), or None to create one from `model`
        on first use. window / hop: seconds. frames: T per window (default: window x 2.5 / s,
        the density the packaged models were trained at). store: the code store (default
        HammingIndex(bits)).
    """

    def __init__(self, model: str | os.PathLike | None = None, *, window: float = DEFAULT_WINDOW,
                 hop: float = DEFAULT_HOP, frames: int | None = None, encoder: Any = None,
                 store: Any = None, bits: int | None = None, backend: str = "auto",
                 threads: int | None = None, trim: float = DEFAULT_TRIM) -> None:
        if not (window > 0 and hop > 0):
            raise ValueError(f"window and hop must be positive, got {window}, {hop}")
        self.window, self.hop = float(window), float(hop)
        if not 0 <= trim <= 0.5:
            raise ValueError(f"trim must be in [0, 0.5], got {trim}")
        self.trim = float(trim)
        self.frames = int(frames or max(2, round(window * FRAMES_PER_SECOND)))
        self._model, self._backend, self._threads = model, backend, threads
        self._encoder = encoder
        self._saved_model: dict | None = None  # the model a loaded index was built with
        if encoder is not None and encoder.frames != self.frames:
            raise ModelMismatchError(f"encoder takes {encoder.frames} frames, the index {self.frames}")
        if bits is None:
            bits = store.bits if store is not None else self.encoder.bits
        self.bits = int(bits)
        if encoder is not None and encoder.bits != self.bits:
            raise ModelMismatchError(f"encoder gives {encoder.bits}-bit codes, the index holds {self.bits}")
        if store is None:
            from chain_sdk.index import HammingIndex

            store = HammingIndex(self.bits)
        self.store = store
        self.table = WindowTable()
        self.align_params = AlignParams(max_gap=max(1, math.ceil(MAX_GAP_S / self.hop)))

    # ------------------------------------------------------------------ parts
    @property
    def encoder(self):
        if self._encoder is None:
            from chain_sdk.encoder import Encoder

            encoder = Encoder(self._model, backend=self._backend, frames=self.frames, threads=self._threads)
            if hasattr(self, "bits") and encoder.bits != self.bits:
                raise ModelMismatchError(f"model {encoder.model_dir} gives {encoder.bits}-bit codes, "
                                         f"the index holds {self.bits}")
            self._encoder = encoder
            self._check_model()
        return self._encoder

    def settings(self) -> dict[str, Any]:
        s: dict[str, Any] = {"window": self.window, "hop": self.hop, "frames": self.frames, "bits": self.bits,
                             "trim": self.trim}
        if self._encoder is not None:
            c = self._encoder.contract
            s["model"] = {"model_version": c.model_version, "backbone": c.backbone, "bits": c.bits,
                          "precision": c.precision}
        return s

    def windows(self, video: Any) -> list:
        """The window segments (start, end, code) of a video, as stored and as matched."""
        return list(self.encoder.stream(video, window=self.window, hop=self.hop))

    # ------------------------------------------------------------------ size
    def __len__(self) -> int:
        """Number of reference videos."""
        return len(self.table.by_name)

    def len(self) -> int:
        return len(self)

    @property
    def num_windows(self) -> int:
        return len(self.store)

    @property
    def video_ids(self) -> list[str]:
        return list(self.table.by_name)

    def __contains__(self, video_id: str) -> bool:
        return video_id in self.table.by_name

    def __repr__(self) -> str:
        return (f"VideoIndex(videos={len(self)}, windows={self.num_windows}, window={self.window}, "
                f"hop={self.hop}, bits={self.bits})")

    # ------------------------------------------------------------------ mutation
    def add(self, video: Any, video_id: str) -> int:
        """Store the window codes of `video` under `video_id`; returns the number of windows.
        The video is decoded completely before anything is stored: a video that fails to decode
        raises its VideoError and leaves the index as it was."""
        self._check_new(video_id)
        return self.add_segments(self.windows(video), video_id)

    def add_segments(self, segments: Iterable, video_id: str) -> int:
        """Store precomputed window segments (start, end, code) under `video_id`."""
        segments = list(segments)
        if not segments:
            raise ValueError(f"{video_id}: no windows to add")
        return self.add_codes(np.stack([np.asarray(s[2], np.uint8) for s in segments]),
                              np.array([s[0] for s in segments]), np.array([s[1] for s in segments]), video_id)

    def add_codes(self, codes: np.ndarray, starts: np.ndarray, ends: np.ndarray, video_id: str) -> int:
        """Store window codes uint8 [m, bits/8] with their start and end seconds under `video_id`."""
        self._check_new(video_id)
        codes = np.asarray(codes)
        starts, ends = np.asarray(starts, np.float64), np.asarray(ends, np.float64)
        if codes.ndim != 2 or codes.shape[0] == 0 or not (len(codes) == len(starts) == len(ends)):
            raise ValueError(f"{video_id}: need m > 0 codes with m starts and m ends, got {codes.shape}, "
                             f"{starts.shape}, {ends.shape}")
        ids = self.table.append(str(video_id), starts, ends)
        try:
            self.store.add(codes, ids)
        except BaseException:
            self.table.remove(str(video_id))
            raise
        return len(ids)

    def remove(self, video_id: str) -> int:
        """Forget a reference video; returns how many windows it had (0 when unknown)."""
        if video_id not in self.table.by_name:
            return 0
        ids = self.table.remove(video_id)
        self.store.remove(ids)
        return len(ids)

    def _check_new(self, video_id: str) -> None:
        if not isinstance(video_id, str) or not video_id:
            raise ValueError(f"video_id must be a non-empty string, got {video_id!r}")
        if video_id in self.table.by_name:
            raise DuplicateVideoError(f"{video_id}: already in the index (remove it first)")

    # ------------------------------------------------------------------ matching
    def match(self, video: Any, min_score: float | None = None) -> list[Match]:
        """Copied segments of `video`, best first, with score >= min_score (default: the
        calibrated DEFAULT_THRESHOLD; 0 lists every candidate the alignment found)."""
        return self.match_segments(self.windows(video), min_score)

    def match_segments(self, segments: list, min_score: float | None = None) -> list[Match]:
        """`match` on precomputed query window segments (start, end, code)."""
        threshold = DEFAULT_THRESHOLD if min_score is None else float(min_score)
        if not segments or len(self.store) == 0:
            return []
        hits = self._hits(np.stack([np.asarray(s[2], np.uint8) for s in segments]))
        return self._matches(hits, segments, threshold)

    def match_stream(self, source: Any, min_score: float | None = None,
                     horizon: float = 600.0) -> Iterator[Match]:
        """Matches of a live stream or a very long file, each reported as soon as it can no
        longer grow (no hit within the longest gap after its end). Memory holds the hits of the
        last `horizon` seconds; a copy longer than that is reported in pieces of at most
        `horizon` seconds. Where two candidate runs overlap on both axes the order in which
        they are resolved can differ from `match`; otherwise the matches are the same."""
        return self.match_segments_stream(self.encoder.stream(source, window=self.window, hop=self.hop),
                                          min_score, horizon)

    def match_segments_stream(self, segments: Iterable, min_score: float | None = None,
                              horizon: float = 600.0) -> Iterator[Match]:
        threshold = DEFAULT_THRESHOLD if min_score is None else float(min_score)
        gap = self.align_params.max_gap
        keep = max(2 * gap, int(horizon / self.hop))
        buf_segments: list = []
        buf_hits: list[tuple[np.ndarray, ...]] = []  # per window: (video, r, w) of its hits
        first = 0  # query window number of buf_segments[0]
        for n, seg in enumerate(segments):
            buf_segments.append(seg)
            buf_hits.append(self._hits(np.asarray(seg[2], np.uint8)[None])[1:] if len(self.store) else
                            (np.zeros(0, np.int64),) * 2 + (np.zeros(0),))
            if (n + 1) % gap and len(buf_segments) < keep:
                continue
            force = len(buf_segments) >= keep
            for chain, match in self._buffer_matches(buf_segments, buf_hits, first, threshold):
                q_last = first + int(chain[1][-1])
                if force or q_last <= n - gap:
                    yield match
                    _drop_box(buf_hits, chain)
            if force:  # the oldest windows leave the horizon
                cut = len(buf_segments) - keep // 2
                buf_segments, buf_hits, first = buf_segments[cut:], buf_hits[cut:], first + cut
        for _, match in self._buffer_matches(buf_segments, buf_hits, first, threshold):
            yield match

    # ------------------------------------------------------------------ internals
    def _hits(self, codes: np.ndarray) -> tuple[np.ndarray, ...]:
        """(q, video, r, w) of every candidate hit with positive weight."""
        k = NEIGHBOURS
        dist, ids = self.store.search(codes, k)
        dist = dist.astype(np.float64)
        prior = PRIOR_FRACTION * self.bits
        background = np.where(ids[:, -1] >= 0, np.minimum(dist[:, -1], prior), prior)
        weight = background[:, None] - dist - BIAS_BITS
        keep = (ids >= 0) & (weight > 0)
        q = np.nonzero(keep)[0]
        r = ids[keep]
        return q, self.table.video[r].astype(np.int64), r, weight[keep]

    def _matches(self, hits, segments, threshold: float) -> list[Match]:
        q, video, r, w = hits
        chains = align(video, q, r, w, self.align_params, min_score=threshold * self.bits)
        return [self._to_match(c.video, q[c.hits], r[c.hits], c.score, segments) for c in chains]

    def _buffer_matches(self, segments, hits, first, threshold):
        """(chain (video, q positions in the buffer, r), Match) of the buffered windows."""
        qs = [np.full(len(h[0]), i, np.int64) for i, h in enumerate(hits)]
        q = np.concatenate(qs) if qs else np.zeros(0, np.int64)
        video = np.concatenate([h[0] for h in hits]) if hits else np.zeros(0, np.int64)
        r = np.concatenate([h[1] for h in hits]) if hits else np.zeros(0, np.int64)
        w = np.concatenate([h[2] for h in hits]) if hits else np.zeros(0)
        chains = align(video, q, r, w, self.align_params, min_score=threshold * self.bits)
        return [((c.video, q[c.hits], r[c.hits]), self._to_match(c.video, q[c.hits], r[c.hits], c.score, segments))
                for c in chains]

    def _to_match(self, video: int, q: np.ndarray, r: np.ndarray, score: float, segments) -> Match:
        qs = np.array([segments[i][0] for i in (q[0], q[-1])], np.float64)
        qe = np.array([segments[i][1] for i in (q[0], q[-1])], np.float64)
        rs, re = self.table.start[[r[0], r[-1]]], self.table.end[[r[0], r[-1]]]
        q0, q1 = _span(qs, qe, self.trim * self.window)
        r0, r1 = _span(rs, re, self.trim * self.window)
        return Match(self.table.names[video], q0, q1, r0, r1, score / self.bits)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """One file, written atomically: the store's codes with the window table as its
        checksummed metadata (chain_sdk.index.fileformat)."""
        self.store.save(path, metadata=self.table.to_bytes(self.settings()))

    @classmethod
    def load(cls, path: str | os.PathLike, model: str | os.PathLike | None = None, *,
             encoder: Any = None, mmap: bool = True, store_type: Any = None, **kwargs) -> "VideoIndex":
        """Open a saved index (IndexFormatError for a truncated, corrupted or foreign file).
        The encoder is created on first use and must match the model the index was built with."""
        if store_type is None:
            from chain_sdk.index import HammingIndex as store_type
        store = store_type.load(path, mmap=mmap)
        table, settings = WindowTable.from_bytes(getattr(store, "metadata", b""), str(path))
        try:
            window, hop, frames, bits = (settings[k] for k in ("window", "hop", "frames", "bits"))
        except KeyError as e:
            raise IndexFormatError(f"{path}: window table lacks the setting {e}") from e
        if bits != store.bits:
            raise IndexFormatError(f"{path}: table says {bits} bits, the codes have {store.bits}")
        kwargs.setdefault("trim", settings.get("trim", DEFAULT_TRIM))
        index = cls(model, window=window, hop=hop, frames=frames, encoder=encoder, store=store, **kwargs)
        index.table = table
        live_rows = int(np.isin(table.video, list(table.by_name.values())).sum())
        if live_rows != len(store):
            raise IndexFormatError(f"{path}: the window table has {live_rows} windows, the codes {len(store)}")
        index._saved_model = settings.get("model")
        if encoder is not None:
            index._check_model()
        return index

    def _check_model(self) -> None:
        """ModelMismatchError when the encoder is not the model the saved index was built with."""
        saved = self._saved_model
        if saved and self._encoder is not None and self.settings()["model"] != saved:
            raise ModelMismatchError(f"the index was built with model {saved}, "
                                     f"the encoder is {self.settings()['model']}")


def _span(starts: np.ndarray, ends: np.ndarray, trim: float) -> tuple[float, float]:
    """Seconds of a run of windows: first start to last end, `trim` seconds in from each side (a
    window matches when most of it is copied, so the union of matching windows overshoots the
    copy), never past the first and last centres."""
    lo = min(float(starts[0]) + trim, float(starts[0] + ends[0]) / 2)
    hi = max(float(ends[1]) - trim, float(starts[1] + ends[1]) / 2)
    return lo, max(lo, hi)


def _drop_box(buf_hits: list, chain) -> None:
    """Remove the hits inside an emitted chain's box from the buffered windows."""
    video, q, r = chain
    for i in range(int(q[0]), int(q[-1]) + 1):
        v, rr, w = buf_hits[i]
        keep = ~((v == video) & (rr >= r[0]) & (rr <= r[-1]))
        buf_hits[i] = (v[keep], rr[keep], w[keep])
