"""Query-side multi-probe rows of the near-duplicate report (`--probes grid9 corners5`).

Each query of the first draw is sampled once more with `chain_sdk.video.sample_probes` (the
ordinary clip plus one clip per crop of the probe set, exactly what `Encoder.encode_probes`
feeds the backbone), every probe clip goes through the backbone (cached like the ordinary
features), and a database video's distance to the query is the smallest over the probes, as
`chain_sdk.index.search_probes` ranks it. The database keeps its ordinary features.

Probing costs the query (1 + P) backbone passes, so it is scored on the first draw's queries
only (of the first `--probe-segments` evaluation segments), against the same methods without
probes on the same queries.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from benchmarks.retrieval import dataset, features, methods
from chain_sdk.codes import pairwise_hamming


def probe_features(path: Path, frames: int, backbone: str, probe_set: str) -> np.ndarray:
    """float32 [1 + P, T, D]: backbone features of the ordinary clip and of each probe clip."""
    from chain_sdk.video import PROBE_SETS, sample_probes

    def compute() -> np.ndarray:
        h, w = features.input_size(backbone)
        clips = sample_probes(str(path), frames, (w, h), PROBE_SETS[probe_set], crop_borders=features.CROP_BORDERS)
        flat = clips.clip.frames.reshape(-1, h, w, 3)
        return features.run_backbone(flat, backbone).reshape(clips.clip.frames.shape[0], frames, -1)

    return features.cached_array(f"{features.feature_tag(backbone)}-probes-{probe_set}_T{frames}", path, compute)


def first_draw(rs: dataset.RetrievalSet, segments: int | None = None) -> dataset.RetrievalSet:
    """The queries of draw 0 of every family (tag `<family>0`), of the first `segments`
    evaluation segments (all when None)."""
    keys = set(rs.eval_keys[:segments])
    queries = [q for q in rs.queries if q.key.endswith(f"__{q.edit}0") and q.relevant in keys]
    return replace(rs, queries=queries)


def _min_over_probes(per_probe: list[np.ndarray]) -> np.ndarray:
    return np.min(np.stack(per_probe), axis=0)


def probed_rows(sub: dataset.RetrievalSet, fs: methods.FeatureSet, backbone: str, models: list[tuple[str, Path]],
                probe_set: str, bits: int, *, progress: bool) -> list[methods.MethodResult]:
    """Rows with probes for float cosine, random hyperplanes at `bits` and each CHAIN model of
    `backbone` on its features `fs` (whose database rows are the ordinary features)."""
    probes = np.stack([probe_features(q.path, fs.queries.shape[1], backbone, probe_set)
                       for q in tqdm(sub.queries, desc=f"{probe_set} probe features", unit="query",
                                     disable=not progress)])  # [Q, 1 + P, T, D]
    per_query_s = float("nan")  # cached features carry no time; the cost is (1 + P) backbone passes
    nq, p = probes.shape[:2]
    suffix = f" + {probe_set} probes"
    notes = [f"{p - 1} probes per query ({probe_set}); min distance over the query and its probes"]
    centre = fs.train_centre

    def unit(x):
        return methods.centred_unit(x.mean(axis=-2), centre)

    db_unit = unit(fs.database)
    rows = [methods.MethodResult(
        f"float cosine, mean feature{fs.label}{suffix}", "reference", f"{fs.database.shape[2]} float32 x {p}",
        _min_over_probes([1.0 - unit(probes[:, j]) @ db_unit.T for j in range(p)]), per_query_s, notes,
        features=fs.label)]
    planes = methods.hyperplanes(fs.database.shape[2], bits, seed=0)
    db_rh = methods.sign_pack((fs.database.mean(axis=1) - centre) @ planes)
    rows.append(methods.MethodResult(
        f"random hyperplanes {bits} bits{fs.label}{suffix}", "ablation", f"{bits} bits x {p}",
        _min_over_probes([pairwise_hamming(methods.sign_pack((probes[:, j].mean(axis=1) - centre) @ planes), db_rh)
                          for j in range(p)]), per_query_s, notes + ["seed 0"], features=fs.label))
    for name, model_dir in models:
        if methods.model_frames(model_dir) != fs.queries.shape[1] or methods.model_backbone(model_dir) != backbone:
            continue
        db, _ = methods.temporal_codes(model_dir, fs.database)
        codes, _ = methods.temporal_codes(model_dir, probes.reshape(nq * p, *probes.shape[2:]))
        codes = codes.reshape(nq, p, -1)
        rows.append(methods.MethodResult(
            f"{name}{suffix}", "chain", f"{codes.shape[2] * 8} bits x {p}",
            _min_over_probes([pairwise_hamming(codes[:, j], db) for j in range(p)]), per_query_s, notes,
            features=fs.label))
    return rows
