"""Region tokens, measured before anything is trained on them (issue 14, point 4).

    .venv/bin/python -m benchmarks.retrieval.regions --out docs/near_duplicate_regions.md

A region token is a pooled window of the backbone's last feature map (EfficientNet-Lite0 luma:
1280 x 7 x 7 at 224 px), meant to let a shrunk or re-framed picture still match part of the
original. A temporal encoder can only learn from regions what their features hold, so this asks
the features first, on the re-upload benchmark's dev queries (the pasted video left out of each
ranking, as in the report):

- *region probes*: a video's descriptors are its global mean feature plus the mean feature of
  each region of a set (over the 25 frames `Encoder` samples); a database video's distance to a
  query is the smallest over descriptor pairs (query regions only, or both sides). Scored as
  float cosine and as 64-bit random hyperplanes (5 seeds), so the cost in bits shows next to
  the gain.
- *the insert's bound*: each picture-in-picture query cropped at the insert's known place and
  size (read from its recipe) and run through the backbone at full input size: the best any
  method that finds the insert by cropping the query can do with this backbone.

What the numbers mean for the default model: docs/default_model.md (seventh round).
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from benchmarks.retrieval import dataset, edits, features, methods, report

log = logging.getLogger("benchmarks.retrieval.regions")

BACKBONE = "efficientnet_lite0_luma"
FRAMES = 25
GRID = 7  # side of Lite0's last feature map at 224 px
MAP_OUTPUT = "/Clip_1_output_0"  # the ReLU6 before the global average pool in the exported graph
SEEDS = (0, 1, 2, 3, 4)
BITS = 64


def windows(side: int, grid: int = GRID) -> list[tuple[int, int, int]]:
    """Every side x side window (y, x, side) of the grid, stride one cell."""
    return [(y, x, side) for y in range(grid - side + 1) for x in range(grid - side + 1)]


REGION_SETS = {
    "corners5": [(0, 0, 4), (0, 3, 4), (3, 0, 4), (3, 3, 4), (1, 1, 5)],  # quadrants and the centre
    "3x3 cells": windows(3),  # 25 windows of 3/7 of the side: the size of a shrunk insert
    "5x5 cells": windows(5),
    "3-5 cells": windows(3) + windows(4) + windows(5),
}
LAYOUTS = [("global", "global"), ("corners5", "global"), ("3x3 cells", "global"), ("5x5 cells", "global"),
           ("3-5 cells", "global"), ("corners5", "corners5"), ("3-5 cells", "3-5 cells")]


@lru_cache(maxsize=None)
def map_session():
    """onnxruntime session of the exported backbone with its last feature map as a second output."""
    import onnx
    import onnxruntime as ort

    plain = features.features_dir() / f"{BACKBONE}_{features.weights_tag(BACKBONE)}_opset{features.OPSET}.onnx"
    path = plain.with_name(plain.stem + "_maps.onnx")
    if not path.is_file():
        features.backbone_session(BACKBONE)  # exports the plain graph when missing
        model = onnx.load(str(plain))
        model.graph.output.append(onnx.helper.make_tensor_value_info(MAP_OUTPUT, onnx.TensorProto.FLOAT, None))
        tmp = path.with_suffix(".part.onnx")
        onnx.save(model, str(tmp))
        tmp.replace(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = features.THREADS
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def mean_map(path: Path) -> np.ndarray:
    """float32 [D, 7, 7]: the last feature map averaged over the video's T sampled frames (cached)."""
    def compute() -> np.ndarray:
        clip = features.sample(path, FRAMES, BACKBONE)
        (maps,) = map_session().run([MAP_OUTPUT], {"frames": np.ascontiguousarray(clip)})
        return maps.mean(axis=0)

    return features.cached_array(f"{features.feature_tag(BACKBONE)}-maps_T{FRAMES}", path, compute)


def descriptors(maps: np.ndarray, region_set: str) -> np.ndarray:
    """[V, D, 7, 7] -> [V, 1 + R, D]: the global mean feature, then each region's mean."""
    boxes = [(0, 0, GRID)] + (REGION_SETS[region_set] if region_set != "global" else [])
    return np.stack([maps[:, :, y:y + s, x:x + s].mean(axis=(2, 3)) for y, x, s in boxes], axis=1)


def min_distances(queries: np.ndarray, database: np.ndarray, centre: np.ndarray,
                  planes: np.ndarray | None = None) -> np.ndarray:
    """[Q, P, D] x [N, R, D] -> [Q, N]: the smallest cosine distance (planes None) or Hamming
    distance of the sign of the projection over all P x R descriptor pairs."""
    q, db = methods.centred_unit(queries, centre), methods.centred_unit(database, centre)
    if planes is None:
        return np.concatenate([(1.0 - np.einsum("qpd,nrd->qnpr", block, db)).min(axis=(2, 3))
                               for block in np.array_split(q, max(1, len(q) // 64))])
    # as +-1 vectors, Hamming distance = (bits - dot) / 2
    qs, dbs = np.where(q @ planes >= 0, 1.0, -1.0), np.where(db @ planes >= 0, 1.0, -1.0)
    return np.concatenate([((planes.shape[1] - np.einsum("qpb,nrb->qnpr", block, dbs)) / 2).min(axis=(2, 3))
                           for block in np.array_split(qs, max(1, len(qs) // 64))])


def insert_features(rs: dataset.RetrievalSet) -> tuple[list[int], np.ndarray]:
    """Indices of the picture-in-picture queries and [Qpip, D] backbone features of each cropped
    at its insert (place and size from its recipe), mean over the T sampled frames."""
    import cv2

    from chain_sdk.video import sample_clip

    h, w = features.input_size(BACKBONE)
    rows, out = [i for i, q in enumerate(rs.queries) if q.edit == "pip"], []
    relevant = rs.relevant_indices()
    for i in tqdm(rows, desc="insert crops", unit="query"):
        q = rs.queries[i]
        width, x, y = edits.pip_placement(q.description)
        clip = sample_clip(str(q.path), frames=FRAMES).frames
        frame_h, frame_w = clip.shape[1:3]
        original = sample_clip(str(rs.database[relevant[i]].path), frames=1).frames
        fw = int(frame_w * width) // 2 * 2
        fh = int(round(fw * original.shape[1] / original.shape[2] / 2)) * 2
        x0, y0 = int((frame_w - fw) * x), int((frame_h - fh) * y)
        crops = np.stack([cv2.resize(f[y0:y0 + fh, x0:x0 + fw], (w, h), interpolation=cv2.INTER_AREA) for f in clip])
        out.append(features.run_backbone(crops, BACKBONE).mean(axis=0))
    return rows, np.stack(out)


def evaluate(name: str, distances: np.ndarray, rs: dataset.RetrievalSet) -> report.Evaluated:
    return report.evaluate(methods.MethodResult(name, "ablation", "", distances, float("nan")), rs)


def _mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


FAMILY_COLUMNS = ["pip", "reframe", "zoom", "rotate", "noise_blur", "quality", "overlay"]


def layout_rows(rs, db_maps, q_maps, centre) -> list[str]:
    lines = ["| query descriptors | database descriptors | database bits per video (RH-64) | float top-1 | "
             "float mAP@5 | RH-64 top-1 | RH-64 mAP@5 | RH-64 unseen top-1 | "
             + " | ".join(f"RH-64 {f}" for f in FAMILY_COLUMNS) + " |",
             "|---" * (8 + len(FAMILY_COLUMNS)) + "|"]
    for q_set, db_set in LAYOUTS:
        q, db = descriptors(q_maps, q_set), descriptors(db_maps, db_set)
        fl = evaluate("float", min_distances(q, db, centre), rs)
        rh = [evaluate(f"rh#{s}", min_distances(q, db, centre, methods.hyperplanes(q.shape[2], BITS, s)), rs)
              for s in SEEDS]
        cells = [_mean_sd([e.overall["top1"] for e in rh]), _mean_sd([e.overall["map@5"] for e in rh]),
                 _mean_sd([e.unseen["top1"] for e in rh])]
        cells += [f"{np.mean([e.per_edit[f]['top1'] for e in rh]):.2f}" for f in FAMILY_COLUMNS]
        lines.append(f"| {q_set} ({q.shape[1]}) | {db_set} ({db.shape[1]}) | {BITS * db.shape[1]} | "
                     f"{fl.overall['top1']:.3f} | {fl.overall['map@5']:.3f} | " + " | ".join(cells) + " |")
        log.info("%s", lines[-1])
    return lines


def insert_bound_rows(rs, fs, centre) -> list[str]:
    rows, inserts = insert_features(rs)
    sub = dataset.RetrievalSet(rs.split, rs.database, [rs.queries[i] for i in rows], rs.eval_keys)
    db = fs.database.mean(axis=1)[:, None]
    whole = fs.queries[rows].mean(axis=1)[:, None]
    lines = ["| picture-in-picture query as | float cosine top-1 | float mAP@5 | RH-64 top-1 (5 seeds) | RH-64 mAP@5 |",
             "|---|---|---|---|---|"]
    for label, q in [("the whole frame (global mean feature)", whole), ("the insert, cropped at its known place", inserts[:, None])]:
        fl = evaluate("float", min_distances(q, db, centre), sub)
        rh = [evaluate(f"rh#{s}", min_distances(q, db, centre, methods.hyperplanes(q.shape[2], BITS, s)), sub)
              for s in SEEDS]
        lines.append(f"| {label} | {fl.overall['top1']:.3f} | {fl.overall['map@5']:.3f} | "
                     f"{_mean_sd([e.overall['top1'] for e in rh])} | {_mean_sd([e.overall['map@5'] for e in rh])} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=5, help="queries per family and segment (5: 1045 dev queries)")
    parser.add_argument("--out", type=Path, default=Path("docs/near_duplicate_regions.md"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t0 = time.time()
    rs = dataset.build("dev", draws=args.draws, progress=False)
    fs = report.feature_set(rs, FRAMES, BACKBONE, progress=False)
    db_maps = np.stack([mean_map(v.path) for v in tqdm(rs.database, desc="database maps", unit="video")])
    q_maps = np.stack([mean_map(v.path) for v in tqdm(rs.queries, desc="query maps", unit="video")])
    centre = fs.train_centre
    table = layout_rows(rs, db_maps, q_maps, centre)
    bound = insert_bound_rows(rs, fs, centre)
    command = "python -m benchmarks.retrieval.regions " + " ".join(sys.argv[1:] if argv is None else argv)
    md = ["# Region tokens: what pooled regions of the last feature map find (issue 14, point 4)", "",
          "```", command.strip(), "```", "",
          f"Dev split of the re-upload benchmark: {len(rs.queries)} queries, database {len(rs.database)} videos; "
          f"EfficientNet-Lite0 luma features of the 25 frames `Encoder` samples (bar crop on). Machine: "
          f"{platform.machine()}, 2 CPU cores. Whole run: {time.time() - t0:.0f} s (feature maps extracted on a "
          "first run, then cached).", "",
          "## Region probes", "",
          "Descriptors of a video: its global mean feature plus the mean of each window of the 7 x 7 last "
          "feature map (count in brackets, global included); distance: the smallest over descriptor pairs. "
          "RH-64: 64 random hyperplanes per descriptor, mean ± sd over seeds 0-4 (so a video with R "
          "descriptors stores 64 R bits). The first row is the report's float cosine and random-hyperplane rows.", "",
          *table, "",
          "## The picture-in-picture insert's bound", "",
          "The same picture-in-picture queries, the backbone run on the whole frame or on the insert cropped at "
          "its recipe's place and size (resized to 224 x 224): the best that finding the insert by cropping "
          "the query can do with this backbone.", "", *bound, "",
          "What these numbers mean for the default model: docs/default_model.md (seventh round).", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(md))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
