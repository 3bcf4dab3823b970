"""Run one PyPI peer hasher over the benchmark videos, inside the peer's own interpreter.

Stand-alone on purpose (standard library + numpy + the peer package): the harness starts it
with the Python of the peer's virtual environment, so a peer whose dependencies clash with
chain-sdk's (perception pins OpenCV < 5) never touches the project's environment.

    PEER_PYTHON peer_worker.py MANIFEST.json OUT.json

MANIFEST: {"peer": name, "database": [[key, path, sha256], ...], "queries": [...],
"cache_dir": dir for per-video hashes, "ffmpeg": path of an ffmpeg binary}. OUT: {"version",
"methods": {label: {"code_size", "distances" [Q][N]}}, "encode_s": {sha256: seconds},
"failed": {key: error}}. A video the peer crashes on gets distance inf to everything. With
"frame_hashes": true in the manifest (vpdq), OUT also has "frame_hashes": {key: [[quality, hex],
...]}, one per second, for the partial-copy benchmark (benchmarks/copydetect). Every peer is ranked by its own native similarity:

- videohash: Hamming distance of its 64-bit hash (`VideoHash.__sub__`).
- vpdq: `matchTwoHashBrute` of Meta's vPDQ (cpp/vpdq/cpp/hashing/matchTwoHash.cpp, reimplemented
  here because the Python binding does not expose it): drop frame hashes of quality < 50, a
  query frame matches when some target frame is at PDQ distance < 31; rank by the query match
  percentage, then the target match percentage.
- tmkpy: TMK level-1 (cosine of the pure-average feature) and level-2 (full temporal match
  kernel) scores of the library (`TMKFeatureVectors.computeLevel1Score/computeLevel2Score`).
- perception: its TMKL1 (cosine) and TMKL2 (its own TMK score) video hashers, computed in one
  synchronized decoding pass, distances from `hasher.compute_distance`.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile
import time
import traceback
from importlib import metadata
from pathlib import Path

import numpy as np

VPDQ_QUALITY_TOLERANCE = 50
VPDQ_DISTANCE_TOLERANCE = 31


def _ffmpeg_on_path(ffmpeg: str) -> None:
    """Tools that call a bare `ffmpeg` get the given binary through a private PATH entry."""
    link_dir = Path(tempfile.mkdtemp(prefix="peer-ffmpeg-"))
    (link_dir / "ffmpeg").symlink_to(ffmpeg)
    os.environ["PATH"] = f"{link_dir}{os.pathsep}{os.environ.get('PATH', '')}"


class Peer:
    package = ""

    def __init__(self, cache_dir: Path, ffmpeg: str) -> None:
        self.cache_dir = cache_dir
        self.ffmpeg = ffmpeg

    def version(self) -> str:
        return metadata.version(self.package)

    def cached_hash(self, path: str, sha: str):
        """(hash, encode seconds), from the cache when this video was hashed before."""
        cache = self.cache_dir / f"{sha[:24]}.pkl"
        if cache.is_file():
            with open(cache, "rb") as f:
                return pickle.load(f)
        t0 = time.perf_counter()
        value = self.compute(path)
        result = (value, time.perf_counter() - t0)
        with open(cache.with_suffix(".part"), "wb") as f:
            pickle.dump(result, f)
        os.replace(cache.with_suffix(".part"), cache)
        return result

    def compute(self, path: str):
        raise NotImplementedError

    def methods(self, queries: list, database: list) -> dict[str, dict]:
        raise NotImplementedError


def pairwise(fn, queries: list, database: list) -> list[list[float]]:
    """fn(q, t) -> distance for every pair; inf where a video could not be hashed (None)."""
    return [[float("inf") if q is None or t is None else float(np.asarray(fn(q, t)).reshape(-1)[0]) for t in database] for q in queries]


class VideoHashPeer(Peer):
    package = "videohash"

    def compute(self, path: str) -> np.ndarray:
        from videohash import VideoHash

        with tempfile.TemporaryDirectory() as tmp:
            vh = VideoHash(path=path, storage_path=tmp + os.sep)  # it wants the trailing separator
            bits = vh.hash  # "0b" + 64 binary digits
            vh.delete_storage_path()
        return np.array([c == "1" for c in bits[2:]])

    def methods(self, queries, database):
        size = next(len(h) for h in queries + database if h is not None)
        return {"videohash": {"code_size": f"{size} bits",
                              "distances": pairwise(lambda q, t: np.count_nonzero(q != t), queries, database)}}


class VpdqPeer(Peer):
    package = "vpdq"

    def compute(self, path: str):
        import vpdq

        feats = vpdq.computeHash(path, seconds_per_hash=1.0, thread_count=2)
        return [(int(f.quality), f.hex) for f in feats]

    @staticmethod
    def _bits(feats) -> np.ndarray | None:
        if feats is None:
            return None
        good = [h for q, h in feats if q >= VPDQ_QUALITY_TOLERANCE]
        if not good:
            return np.zeros((0, 256), dtype=bool)
        return np.unpackbits(np.array([bytearray.fromhex(h) for h in good], dtype=np.uint8), axis=1).astype(bool)

    @staticmethod
    def match_percent(a: np.ndarray, b: np.ndarray) -> float:
        """Percentage of a's frame hashes that have some hash of b at distance < tolerance."""
        if len(a) == 0 or len(b) == 0:
            return 0.0
        dist = (a[:, None, :] != b[None, :, :]).sum(axis=2)
        return 100.0 * float(np.mean((dist < VPDQ_DISTANCE_TOLERANCE).any(axis=1)))

    def methods(self, queries, database):
        qb = [self._bits(f) for f in queries]
        dbb = [self._bits(f) for f in database]
        # Rank by query match %, then target match % (lexicographic: both are in [0, 100]).
        dist = pairwise(lambda q, t: -(self.match_percent(q, t) + 1e-3 * self.match_percent(t, q)), qb, dbb)
        mean_frames = np.mean([len(f) for f in queries + database if f is not None])
        return {"vpdq": {"code_size": f"~{mean_frames:.0f} x 256-bit PDQ (1/s)", "distances": dist}}


class TmkpyPeer(Peer):
    package = "tmkpy"

    def cached_hash(self, path: str, sha: str):
        """tmkpy cannot read a .tmk file back into a usable object (its SWIG wrapper returns a bare
        shared_ptr), so keep the file (for its level-2 `query`) and the level-1 vector."""
        import tmkpy

        tmk_file = self.cache_dir / f"{sha[:24]}.tmk"
        side = tmk_file.with_suffix(".npz")
        if not (tmk_file.is_file() and side.is_file()):
            t0 = time.perf_counter()
            vid = tmkpy.hashVideo(path, self.ffmpeg)
            seconds = time.perf_counter() - t0
            vid.writeToOutputFile(str(tmk_file), "chain-bench")
            dim = vid.getFrameFeatureDimension()
            full = vid.getNumPeriods() * vid.getNumFourierCoefficients() * 2 * dim + dim
            np.savez(side, l1=np.asarray(vid.getPureAverageFeature(), dtype=np.float32), seconds=seconds, full=full)
        with np.load(side) as z:
            return (str(tmk_file), z["l1"], int(z["full"])), float(z["seconds"])

    def methods(self, queries, database):
        import tmkpy

        def cosine(q, t):
            a, b = q[1], t[1]
            return 1.0 - float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))

        db_files = [t[0] if t is not None else "/nonexistent.tmk" for t in database]
        l2 = []
        for q in queries:
            scores = tmkpy.query(q[0], db_files, 1) if q is not None else [None] * len(database)
            l2.append([float("inf") if s is None or t is None or s < 0 else -float(s)
                       for s, t in zip(scores, database)])
        ok = next(h for h in queries + database if h is not None)
        return {
            "tmkpy TMK level-1": {"code_size": f"{len(ok[1])} float32", "distances": pairwise(cosine, queries, database)},
            "tmkpy TMK level-2": {"code_size": f"{ok[2]} float32", "distances": l2},
        }


class PerceptionPeer(Peer):
    package = "perception"

    def _hashers(self):
        from perception.hashers import TMKL1, TMKL2

        return {"TMKL1": TMKL1(), "TMKL2": TMKL2()}

    def compute(self, path: str):
        from perception.hashers.tools import compute_synchronized_video_hashes

        hashes = compute_synchronized_video_hashes(path, self._hashers(), hash_format="vector")
        return {k: np.asarray(v, dtype=np.float32) for k, v in hashes.items()}

    def methods(self, queries, database):
        out = {}
        for name, hasher in self._hashers().items():
            size = next(len(h[name]) for h in queries + database if h is not None)
            dist = pairwise(lambda q, t: hasher.compute_distance(q[name], t[name]), queries, database)
            out[f"perception {name}"] = {"code_size": f"{size} float32", "distances": dist}
        return out


PEERS = {p.package: p for p in (VideoHashPeer, VpdqPeer, TmkpyPeer, PerceptionPeer)}


def main(argv: list[str]) -> int:
    manifest = json.loads(Path(argv[1]).read_text())
    name = manifest["peer"]
    cache_dir = Path(manifest["cache_dir"])
    cache_dir.mkdir(parents=True, exist_ok=True)
    _ffmpeg_on_path(manifest["ffmpeg"])
    peer = PEERS[name](cache_dir, manifest["ffmpeg"])
    encode_s, hashes, failed = {}, {}, {}
    items = manifest["database"] + manifest["queries"]
    for i, (key, path, sha) in enumerate(items):
        try:
            hashes[key], encode_s[sha] = peer.cached_hash(path, sha)
        except Exception as exc:  # noqa: BLE001 -- a peer crashing on one video is a result to report
            hashes[key] = None
            where = traceback.extract_tb(exc.__traceback__)[-1]
            failed[key] = (f"{type(exc).__name__}{': ' + str(exc) if str(exc) else ''} at "
                           f"{Path(where.filename).name}:{where.lineno} `{where.line}`")[:300]
            print(f"[{name}] {key} FAILED {failed[key]}", file=sys.stderr, flush=True)
            continue
        print(f"[{name}] {i + 1}/{len(items)} {key} {encode_s[sha]:.2f}s", file=sys.stderr, flush=True)
    if len(failed) == len(items):
        raise RuntimeError(f"{name} failed on every video, e.g. {next(iter(failed.values()))}")
    methods = peer.methods([hashes[k] for k, _, _ in manifest["queries"]],
                           [hashes[k] for k, _, _ in manifest["database"]]) if manifest["queries"] else {}
    out = {"peer": name, "version": peer.version(), "python": sys.version.split()[0],
           "methods": methods, "encode_s": encode_s, "failed": failed}
    if manifest.get("frame_hashes"):
        out["frame_hashes"] = hashes
    Path(argv[2]).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
