"""The compared methods that run on the cached EfficientNet-Lite0 features.

- float cosine on the mean frame feature (centred by the training mean): an upper reference,
  not a hash;
- PCA-sign: PCA fitted on TRAINING window means only (film 0-240 s + small clips), sign of the
  projection onto the top `bits` components;
- random hyperplanes: a seeded Gaussian projection of the centred mean feature, sign;
- CHAIN: a model directory's `temporal.onnx` run on the same cached per-frame features
  (what `chain_sdk.Encoder` computes after its backbone; checked on a few videos against
  `Encoder.encode` itself when the runtime is importable).

Every method returns a distance matrix [Q, N] (lower is more similar) and an encode time per
video; hashes are ranked by Hamming distance.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chain_sdk.codes import pairwise_hamming as hamming_distances

log = logging.getLogger(__name__)


@dataclass
class MethodResult:
    name: str
    family: str  # "reference", "ablation", "chain", "peer"
    code_size: str
    distances: np.ndarray  # [Q, N], lower = more similar
    encode_s: float  # mean seconds per video (database and queries)
    notes: list[str] = field(default_factory=list)
    failed: np.ndarray | None = None  # [Q] bool: queries the method could not encode (never found)
    features: str = ""  # the FeatureSet label of feature-based rows: which backbone's features


@dataclass
class FeatureSet:
    """Per-frame features of the database and the queries, and the training window means."""

    database: np.ndarray  # [N, T, D]
    queries: np.ndarray  # [Q, T, D]
    train_means: np.ndarray  # [M, D]
    feature_s: np.ndarray  # [N + Q] decode + backbone seconds per video
    label: str = ""  # appended to the row names: which backbone variant made the features

    @property
    def train_centre(self) -> np.ndarray:
        return self.train_means.mean(axis=0)


def sign_pack(projected: np.ndarray) -> np.ndarray:
    """Bits `value >= 0` packed MSB-first (numpy.packbits), the CHAIN code convention."""
    return np.packbits(projected >= 0, axis=1)


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def centred_unit(x: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Vectors along the last axis minus the training centre, scaled to unit length."""
    x = x - centre
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)


def float_cosine(fs: FeatureSet) -> MethodResult:
    def unit(x):
        return centred_unit(x.mean(axis=1), fs.train_centre)

    (q, db), t = _timed(lambda: (unit(fs.queries), unit(fs.database)))
    n = len(fs.queries) + len(fs.database)
    return MethodResult(f"float cosine, mean feature{fs.label}", "reference", f"{fs.database.shape[2]} float32",
                        1.0 - q @ db.T, float(fs.feature_s.mean() + t / n), features=fs.label)


def fit_pca(train_means: np.ndarray, bits: int):
    from sklearn.decomposition import PCA

    if len(train_means) <= bits:
        raise ValueError(f"PCA with {bits} components needs more than {bits} training vectors, got {len(train_means)}")
    return PCA(n_components=bits, svd_solver="full", random_state=0).fit(train_means)


def pca_sign(fs: FeatureSet, bits: int) -> MethodResult:
    pca = fit_pca(fs.train_means, bits)
    (q, db), t = _timed(lambda: (sign_pack(pca.transform(fs.queries.mean(axis=1))),
                                 sign_pack(pca.transform(fs.database.mean(axis=1)))))
    n = len(fs.queries) + len(fs.database)
    return MethodResult(f"PCA-sign {bits} bits{fs.label}", "ablation", f"{bits} bits",
                        hamming_distances(q, db), float(fs.feature_s.mean() + t / n),
                        [f"PCA fitted on {len(fs.train_means)} training window means"], features=fs.label)


def hyperplanes(dim: int, bits: int, seed: int) -> np.ndarray:
    """[dim, bits] seeded Gaussian projection of the random-hyperplane hash."""
    return np.random.default_rng(seed).standard_normal((dim, bits)).astype(np.float32)


def random_hyperplanes(fs: FeatureSet, bits: int, seed: int = 0) -> MethodResult:
    planes = hyperplanes(fs.database.shape[2], bits, seed)
    centre = fs.train_centre

    def codes(x):
        return sign_pack((x.mean(axis=1) - centre) @ planes)

    (q, db), t = _timed(lambda: (codes(fs.queries), codes(fs.database)))
    n = len(fs.queries) + len(fs.database)
    # named RECIPE#SEED like the CHAIN seeds: the report compares recipes by their mean over seeds
    return MethodResult(f"random hyperplanes {bits} bits{fs.label}#{seed}", "ablation", f"{bits} bits",
                        hamming_distances(q, db), float(fs.feature_s.mean() + t / n), [f"seed {seed}"], features=fs.label)


def read_model_json(model_dir: Path) -> dict:
    path = Path(model_dir) / "model.json"
    if not path.is_file():
        from chain_sdk.errors import ModelError

        raise ModelError(f"{model_dir}: no model.json (not a chain-export model directory)")
    return json.loads(path.read_text())


def model_frames(model_dir: Path) -> int:
    return int(read_model_json(model_dir)["frames"])


def model_backbone(model_dir: Path) -> str:
    return str(read_model_json(model_dir).get("backbone", "efficientnet_lite0"))


def temporal_codes(model_dir: Path, features: np.ndarray, batch: int = 32) -> tuple[np.ndarray, float]:
    """Run the model's temporal.onnx on features [B, T, D] -> (packed codes, seconds per video)."""
    import onnxruntime as ort

    meta = read_model_json(model_dir)
    graph = Path(model_dir) / meta.get("graphs", {}).get("temporal", "temporal.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
    out, t0 = [], time.perf_counter()
    for i in range(0, len(features), batch):
        out.append(session.run(["code"], {"features": features[i:i + batch].astype(np.float32)})[0])
    return np.concatenate(out), (time.perf_counter() - t0) / max(len(features), 1)


def chain_model(name: str, model_dir: Path, fs: FeatureSet) -> MethodResult:
    """A CHAIN row from the cached features (fs must hold the model's T frames per video)."""
    meta = read_model_json(model_dir)
    q, tq = temporal_codes(model_dir, fs.queries)
    db, tdb = temporal_codes(model_dir, fs.database)
    n_q, n_db = len(fs.queries), len(fs.database)
    per_video = float(fs.feature_s.mean() + (tq * n_q + tdb * n_db) / (n_q + n_db))
    bits = int(meta["bits"])
    return MethodResult(name, "chain", f"{bits} bits", hamming_distances(q, db), per_video,
                        [f"model {Path(model_dir).name}", f"T={meta['frames']}"], features=fs.label)


def verify_against_encoder(model_dir: Path, paths: list[Path], features: np.ndarray) -> str:
    """Compare temporal.onnx-on-cached-features with `chain_sdk.Encoder(...).encode(path)`."""
    try:
        from chain_sdk import Encoder  # type: ignore[attr-defined]
    except ImportError as exc:
        return f"not checked: chain_sdk.Encoder is not importable here ({exc})"
    codes, _ = temporal_codes(model_dir, features)
    from benchmarks.retrieval.features import CROP_BORDERS

    encoder = Encoder(model=str(model_dir), backend="onnxruntime", crop_borders=CROP_BORDERS)
    bit_diffs = []
    for path, code in zip(paths, codes):
        direct = np.asarray(encoder.encode(str(path)), dtype=np.uint8).reshape(-1)
        bit_diffs.append(int(np.unpackbits(direct ^ code).sum()))
    same = sum(d == 0 for d in bit_diffs)
    return (f"checked on {len(paths)} videos: {same} identical to Encoder.encode, "
            f"bit differences {bit_diffs}")
