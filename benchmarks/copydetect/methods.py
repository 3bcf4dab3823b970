"""The methods of the partial-copy benchmark, each turning (references, queries) into predictions.

- CHAIN + alignment: `chain_sdk.VideoIndex` (window codes, calibrated hits, temporal alignment).
- CHAIN per window, no alignment: the same window codes; a pair's score is its best single window
  hit (1 - Hamming distance / bits, the VSC descriptor-track rule), the segment that hit's two
  windows.
- vPDQ: one PDQ hash per second (vpdq, in its own virtual environment via peer_worker.py), the
  ThreatExchange matcher (quality >= 50, PDQ distance < 31); score = percentage of the query's
  hashes that match the reference (its native score), interval by offset voting: the offset
  (reference second - query second) with most matching hashes, and the matching seconds at it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from benchmarks.copydetect.dataset import CopySet, cache
from benchmarks.copydetect.metrics import Prediction
from benchmarks.retrieval import peer_worker, peers
from benchmarks.retrieval.dataset import ffmpeg_exe
from benchmarks.retrieval.features import file_sha256
from chain_sdk.codes import pairwise_hamming
from chain_sdk.encoder import Segment
from chain_sdk.files import atomic_path

log = logging.getLogger(__name__)

BASE_HOP = 0.8  # windows are encoded at this hop; larger hops (multiples) are subsets


@dataclass
class Windows:
    starts: np.ndarray
    ends: np.ndarray
    codes: np.ndarray
    encode_s: float

    def segments(self, every: int) -> list[Segment]:
        return [Segment(float(s), float(e), c) for s, e, c in
                zip(self.starts[::every], self.ends[::every], self.codes[::every])]


def encode_windows(paths: list[Path], window: float, frames: int, model=None, progress: bool = True) -> dict[Path, Windows]:
    """Window codes of every video at BASE_HOP, cached per (file, model, window, frames)."""
    from chain_sdk.encoder import Encoder

    encoder = None
    out = {}
    for path in tqdm(paths, desc=f"CHAIN windows {window:g} s", unit="video", disable=not progress):
        tag = f"{file_sha256(path)[:20]}_w{window:g}_t{frames}_h{BASE_HOP:g}_{model or 'default'}"
        cached = cache() / "windows" / f"{tag}.npz"
        if cached.is_file():
            with np.load(cached) as z:
                out[path] = Windows(z["starts"], z["ends"], z["codes"], float(z["encode_s"]))
            continue
        if encoder is None:
            encoder = Encoder(model, frames=frames)
        t0 = time.perf_counter()
        segs = list(encoder.stream(path, window=window, hop=BASE_HOP))
        seconds = time.perf_counter() - t0
        w = Windows(np.array([s.start for s in segs]), np.array([s.end for s in segs]),
                    np.stack([s.code for s in segs]), seconds)
        with atomic_path(cached) as tmp:
            np.savez(tmp, starts=w.starts, ends=w.ends, codes=w.codes, encode_s=seconds)
        out[path] = w
    return out


def chain_aligned(cs: CopySet, windows: dict[Path, Windows], window: float, hop: float, frames: int,
                  bits: int, trim: float | None = None) -> list[Prediction]:
    from chain_sdk.matching import VideoIndex, video_index

    every = int(round(hop / BASE_HOP))
    index = VideoIndex(window=window, hop=hop, frames=frames, bits=bits,
                       trim=video_index.DEFAULT_TRIM if trim is None else trim)
    for ref in cs.references:
        index.add_segments(windows[ref.path].segments(every), ref.key)
    preds = []
    for q in cs.queries:
        for m in index.match_segments(windows[q.path].segments(every), min_score=0.0):
            preds.append(Prediction(q.key, m.video_id, m.query_start, m.query_end, m.ref_start, m.ref_end, m.score))
    return preds


def chain_per_window(cs: CopySet, windows: dict[Path, Windows], hop: float, bits: int) -> list[Prediction]:
    every = int(round(hop / BASE_HOP))
    preds = []
    for q in cs.queries:
        qw = windows[q.path]
        qs, qe, qc = qw.starts[::every], qw.ends[::every], qw.codes[::every]
        for ref in cs.references:
            rw = windows[ref.path]
            rs, re, rc = rw.starts[::every], rw.ends[::every], rw.codes[::every]
            d = pairwise_hamming(qc, rc)
            i, j = np.unravel_index(int(np.argmin(d)), d.shape)
            preds.append(Prediction(q.key, ref.key, float(qs[i]), float(qe[i]), float(rs[j]), float(re[j]),
                                    1.0 - float(d[i, j]) / bits))
    return preds


# ---------------------------------------------------------------------------------- vPDQ

def vpdq_hashes(cs: CopySet, timeout_s: float = 7200) -> tuple[dict[Path, list], str, float]:
    """Per-second PDQ hashes [(quality, hex)] of every video, the vpdq version and mean seconds
    per video; raises RuntimeError (with the reason) when vpdq is not available."""
    python = peers.peer_python("vpdq")
    if python is None:
        raise RuntimeError(peers._import_error("vpdq"))
    videos = [r.path for r in cs.references] + [q.path for q in cs.queries]
    entries = [[str(i), str(p), file_sha256(p)] for i, p in enumerate(videos)]
    manifest = {"peer": "vpdq", "database": entries, "queries": [], "frame_hashes": True,
                "cache_dir": str(cache() / "vpdq"), "ffmpeg": ffmpeg_exe()}
    with tempfile.TemporaryDirectory() as tmp:
        mpath, opath = Path(tmp) / "manifest.json", Path(tmp) / "out.json"
        mpath.write_text(json.dumps(manifest))
        proc = subprocess.run([python, str(peers.WORKER), str(mpath), str(opath)], capture_output=True,
                              text=True, timeout=timeout_s)
        if proc.returncode != 0 or not opath.is_file():
            raise RuntimeError(f"vpdq worker exited with {proc.returncode}: {proc.stderr[-800:]}")
        out = json.loads(opath.read_text())
    hashes = {p: out["frame_hashes"].get(str(i)) for i, p in enumerate(videos)}
    return hashes, out["version"], float(np.mean(list(out["encode_s"].values())))


def _pdq_bits(feats) -> tuple[np.ndarray, np.ndarray]:
    """(seconds of the good hashes, their bits [n, 256]) under the ThreatExchange quality rule."""
    if not feats:
        return np.zeros(0), np.zeros((0, 256), bool)
    t = np.array([i for i, (q, _) in enumerate(feats) if q >= peer_worker.VPDQ_QUALITY_TOLERANCE], float)
    good = [h for q, h in feats if q >= peer_worker.VPDQ_QUALITY_TOLERANCE]
    if not good:
        return t, np.zeros((0, 256), bool)
    return t, np.unpackbits(np.array([bytearray.fromhex(h) for h in good], np.uint8), axis=1).astype(bool)


def vpdq_predictions(cs: CopySet, hashes: dict[Path, list]) -> list[Prediction]:
    refs = {r.key: _pdq_bits(hashes[r.path]) for r in cs.references}
    preds = []
    for q in cs.queries:
        tq, bq = _pdq_bits(hashes[q.path])
        for key, (tr, br) in refs.items():
            if len(bq) == 0 or len(br) == 0:
                continue
            d = (bq[:, None, :] != br[None, :, :]).sum(axis=2)
            close = d < peer_worker.VPDQ_DISTANCE_TOLERANCE
            matched = close.any(axis=1)
            if not matched.any():
                continue
            score = 100.0 * matched.sum() / len(bq)  # the matcher's query match percentage
            qi, rj = np.nonzero(close)
            offsets = np.round(tr[rj] - tq[qi]).astype(int)
            values, counts = np.unique(offsets, return_counts=True)
            best = values[np.argmax(counts)]
            at = np.abs(offsets - best) <= 1
            q_sec = tq[qi[at]]
            q0, q1 = float(q_sec.min()), float(q_sec.max()) + 1.0
            preds.append(Prediction(q.key, key, q0, q1, max(0.0, q0 + best), q1 + best, score))
    return preds
