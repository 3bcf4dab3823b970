"""Evaluation of a checkpoint on feature files: mAP@K (SSVH protocol), P/R@K, PR curve, t-SNE.

Codes are the model's deployed codes (packed `video_logit >= 0` over all T frames, no
augmentation). Metrics come from `chain_sdk.metrics` (numpy only, shared with the runtime).
Plots are PNGs written with matplotlib's Agg backend.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chain_sdk import metrics
from chain_sdk.errors import ModelMismatchError
from chain_sdk.files import write_text
from chain_sdk.video import segment_indices

from chain_sdk.nn.checkpoint import load_checkpoint
from .data import load_labels, open_features, read_feature_rows
from chain_sdk.nn.chain import ChainModel

log = logging.getLogger(__name__)


def encode_features(model: ChainModel, feats: Any, batch_size: int = 256) -> np.ndarray:
    """Packed codes [N, bits/8] of a (N, T, D) feature array or HDF5 dataset.

    A file with more frames than the model's T is sampled at T segment centres (the runtime's
    test-time sampling); fewer frames or another feature size is a ModelMismatchError.
    """
    n, t, d = feats.shape
    c = model.config
    if d != c.feature_dim:
        raise ModelMismatchError(f"features are {d}-d, the model expects {c.feature_dim}-d")
    if t < c.frames:
        raise ModelMismatchError(f"features have {t} frames per video, the model needs {c.frames}")
    frame_idx = segment_indices(t, c.frames) if t > c.frames else None
    model.eval()
    codes = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            rows = read_feature_rows(feats, np.arange(start, min(n, start + batch_size)))
            if frame_idx is not None:
                rows = rows[:, frame_idx]
            codes.append(model.encode(torch.from_numpy(rows)).numpy())
    return np.concatenate(codes)


def evaluate(checkpoint: str | os.PathLike, query: str | os.PathLike, query_labels: str | os.PathLike,
             database: str | os.PathLike, database_labels: str | os.PathLike,
             out_dir: str | os.PathLike, ks=metrics.DEFAULT_KS, tie_order: str = "stable",
             tsne_points: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Encode query and database, compute the metrics, write metrics.json and the two plots."""
    model, _ = load_checkpoint(checkpoint)
    q_codes = encode_features(model, open_features(query))
    db_codes = encode_features(model, open_features(database))
    q_labels, db_labels = load_labels(query_labels), load_labels(database_labels)
    result = compute_metrics(q_codes, db_codes, q_labels, db_labels, ks, tie_order)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    radii, precision, recall = metrics.pr_curve_by_radius(q_codes, db_codes, q_labels, db_labels)
    result["pr_curve"] = {"radius": radii.tolist(), "precision": _nan_to_none(precision),
                          "recall": _nan_to_none(recall)}
    plot_pr_curve(radii, precision, recall, out / "pr_curve.png", model.config.bits)
    plot_tsne(q_codes, q_labels, out / "tsne.png", max_points=tsne_points, seed=seed)
    result.update(bits=model.config.bits, queries=len(q_codes), database=len(db_codes),
                  tie_order=tie_order, checkpoint=str(checkpoint))
    write_text(out / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result


def compute_metrics(q_codes, db_codes, q_labels, db_labels, ks=metrics.DEFAULT_KS,
                    tie_order: str = "stable") -> dict[str, Any]:
    maps = metrics.map_at_k(q_codes, db_codes, q_labels, db_labels, ks, tie_order=tie_order)
    pr = metrics.precision_recall_at_k(q_codes, db_codes, q_labels, db_labels, ks, tie_order=tie_order)
    result: dict[str, Any] = {f"map@{k}": v for k, v in maps.items()}
    result.update({f"precision@{k}": p for k, (p, _) in pr.items()})
    result.update({f"recall@{k}": r for k, (_, r) in pr.items()})
    return result


def format_table(result: dict[str, Any], ks=metrics.DEFAULT_KS) -> str:
    header = "K      " + " ".join(f"{k:>7d}" for k in ks)
    row = "mAP@K  " + " ".join(f"{result[f'map@{k}']:7.4f}" for k in ks)
    return f"{header}\n{row}"


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pr_curve(radii, precision, recall, path: Path, bits: int) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ok = ~np.isnan(precision) & ~np.isnan(recall)
    ax.plot(recall[ok], precision[ok], marker="o", markersize=3)
    for r in radii[ok][:: max(1, len(radii) // 8)]:
        ax.annotate(str(r), (recall[r], precision[r]), fontsize=7, alpha=0.7)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02),
           title=f"PR by Hamming radius ({bits} bits; labels = radius)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_tsne(codes: np.ndarray, labels: np.ndarray, path: Path, max_points: int = 2000,
              seed: int = 0) -> None:
    """t-SNE (sklearn) of the +-1 codes, coloured by (first) label."""
    from sklearn.manifold import TSNE

    plt = _pyplot()
    signs = metrics.unpack_signs(codes)
    classes = labels if labels.ndim == 1 else np.asarray(labels).argmax(axis=1)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(signs))[:max_points])
    signs, classes = signs[keep], classes[keep]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if len(signs) >= 4:
        perplexity = float(min(30.0, (len(signs) - 1) / 3))
        emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(signs)
        sc = ax.scatter(emb[:, 0], emb[:, 1], c=classes, cmap="tab20", s=8)
        if len(np.unique(classes)) <= 20:
            fig.colorbar(sc, ax=ax, label="label")
    ax.set(title=f"t-SNE of {signs.shape[1]}-bit codes ({len(signs)} videos)", xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
