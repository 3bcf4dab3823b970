"""Raw video as training windows: decode each window once onto a dense frame grid, apply the
temporally consistent spatial augmentation draws, and embed every augmented frame with the
frozen backbone (the faithful CHAIN pipeline; the disk cache is `cache.py`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from chain_sdk.errors import DataError, EmptyVideoError, VideoOpenError
from chain_sdk.video import crop_borders, iter_frames, segment_indices

from ..augment import SpatialAugmentConfig, apply_params, draw_params

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".ts", ".flv", ".wmv"}


@dataclass(frozen=True)
class Window:
    """A training clip: [start, end) seconds of one video file."""

    path: str
    start: float
    end: float

    def __str__(self) -> str:
        return f"{Path(self.path).name}[{self.start:.1f}-{self.end:.1f}s]"


@dataclass(frozen=True)
class ExtractionConfig:
    frames: int = 25  # T
    dense_frames: int | None = None  # candidates per window; default 2T
    fps: float | None = None  # decode rate cap (None: native); the dense grid is drawn from it
    segment: float | None = 10.0  # window length in seconds (None: the whole video is one window)
    hop: float | None = None  # start a window every `hop` seconds (None: = segment, no overlap)
    time_range: tuple[float, float] | None = None  # film-time range kept, seconds
    draws: int = 4  # A: augmentation draws per window
    seed: int = 0
    short_side: int = 256  # decoded frames are downscaled to this short side before cropping
    crop_borders: bool = True  # crop each window's black bars, as Encoder does before its backbone
    spatial: SpatialAugmentConfig = field(default_factory=SpatialAugmentConfig)

    @property
    def dense(self) -> int:
        return self.dense_frames or 2 * self.frames


def list_videos(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """Video files from a mix of files and directories (directories: by suffix, sorted)."""
    paths: list[Path] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            paths += sorted(c for c in p.iterdir() if c.suffix.lower() in VIDEO_SUFFIXES)
        elif p.is_file():
            paths.append(p)
        else:
            raise VideoOpenError(str(p), "no such file or directory")
    if not paths:
        raise DataError(f"no video files found in {[str(s) for s in sources]}")
    return paths


def decode_windows(path: Path, config: ExtractionConfig) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
    """Stream one video into windows: (window, dense frames [n, h, w, 3], timestamps [n]).

    Frames are downscaled on arrival (bounded memory for long films); only the dense grid of
    each window is kept, cropped to the picture inside any black bars all its frames share
    (`config.crop_borders`, what `Encoder` does at run time). A trailing window shorter than
    half a segment is dropped unless it is the video's only one.
    """
    lo, hi = config.time_range or (0.0, math.inf)
    if hi <= lo or lo < 0:
        raise ValueError(f"time range must satisfy 0 <= START < END, got {config.time_range}")
    seg = config.segment or math.inf
    current: int = 0
    frames: list[np.ndarray] = []
    stamps: list[float] = []
    emitted = 0
    started = False

    def flush():
        idx = np.unique(segment_indices(len(frames), min(len(frames), config.dense)))
        start = lo + current * seg if seg != math.inf else lo
        end = start + seg if seg != math.inf else stamps[-1]
        window = Window(str(path), round(float(start), 3), round(float(end), 3))
        dense = np.stack([frames[i] for i in idx])
        if config.crop_borders:
            dense = np.ascontiguousarray(crop_borders(dense))
        return window, dense, np.asarray([stamps[i] for i in idx])

    for frame, t in iter_frames(str(path), config.fps):
        if t < lo:
            continue
        if t >= hi:
            break
        w = int((t - lo) // seg) if seg != math.inf else 0
        if started and w != current and frames:
            yield flush()
            emitted += 1
            frames, stamps = [], []
        current, started = w, True
        frames.append(_downscale(frame, config.short_side))
        stamps.append(t)
    if frames:
        covered = stamps[-1] - (lo + current * seg if seg != math.inf else lo)
        if emitted == 0 or seg == math.inf or covered >= seg / 2:
            yield flush()
            emitted += 1
    if emitted == 0:
        raise EmptyVideoError(str(path), f"no frames in film-time range [{lo}, {hi}) s")


def decode_overlapping_windows(path: Path, config: ExtractionConfig
                               ) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
    """`decode_windows`, plus windows starting every `hop` seconds in between.

    Overlapping windows are hard negatives for each other (half their frames are shared), which
    is what near-duplicate search must tell apart. One decode pass per offset keeps the
    streaming decoder simple; windows covering less than half a segment are dropped.
    """
    yield from decode_windows(path, config)
    if not (config.hop and config.segment and config.hop < config.segment):
        return
    lo, hi = config.time_range or (0.0, math.inf)
    for offset in np.arange(config.hop, config.segment, config.hop):
        shifted = replace(config, time_range=(lo + float(offset), hi))
        try:
            for window, frames, stamps in decode_windows(path, shifted):
                if stamps[-1] - stamps[0] >= config.segment / 2:
                    yield window, frames, stamps
        except EmptyVideoError:  # the video ends before this offset
            continue


def _downscale(frame: np.ndarray, short_side: int) -> np.ndarray:
    h, w = frame.shape[:2]
    scale = short_side / min(h, w)
    if scale >= 1:
        return frame
    return cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def extract_window_features(frames: np.ndarray, backbone: Any, config: ExtractionConfig,
                            rng: np.random.Generator, batch: int = 64) -> np.ndarray:
    """[A, n, D] features of A augmentation draws of one window's dense frames."""
    import torch

    out_size = tuple(backbone.input_size)
    rgb = getattr(backbone, "color_order", "BGR") == "RGB"
    draws = []
    for _ in range(config.draws):
        params = draw_params(rng, frames.shape[1], frames.shape[2], config.spatial)
        aug = apply_params(frames, params, out_size)
        if rgb:
            aug = aug[..., ::-1]
        feats = []
        with torch.no_grad():
            for i in range(0, len(aug), batch):
                chunk = torch.from_numpy(np.ascontiguousarray(aug[i:i + batch]))
                feats.append(backbone(chunk).float().cpu().numpy())
        draws.append(np.concatenate(feats))
    return np.stack(draws).astype(np.float32)
