"""Two augmented views per training video: the input of every CHAIN task.

`FeatureViews` draws temporal views from public features (no spatial augmentation possible);
`VideoWindowViews` draws spatio-temporal views from the cached augmented window features.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from chain_sdk.errors import DataError
from chain_sdk.video import segment_indices

from .features import read_feature_rows
from .windows import Window

log = logging.getLogger(__name__)

SPATIAL_UNAVAILABLE = ("training from pre-extracted features: only temporal (segment-sampling) "
                       "augmentation is available; CHAIN's spatial augmentation needs raw frames "
                       "before the CNN (use --videos for the faithful pipeline)")

Views = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x1, pos1, x2, pos2
PCA_FRAMES = 20_000  # frames sampled for `--init pca`: plenty for 256 axes of 1280-d features


class FeatureViews:
    """Two temporal views per video from public features [N, T, D] (no spatial augmentation)."""

    def __init__(self, feats: Any, view_frames: int | None = None, warn: bool = True) -> None:
        self.feats = feats
        n, t, d = feats.shape
        self.n_videos, self.frames, self.feature_dim = n, t, d
        self.view_frames = view_frames or max(1, math.ceil(t / 2))
        if not 1 <= self.view_frames <= t:
            raise ValueError(f"view_frames must be in 1..{t}, got {self.view_frames}")
        if warn:
            log.warning(SPATIAL_UNAVAILABLE)

    def __len__(self) -> int:
        return self.n_videos

    def sample(self, indices: np.ndarray, rng: np.random.Generator) -> Views:
        clips = read_feature_rows(self.feats, indices)
        x1, p1 = self._view(clips, rng)
        x2, p2 = self._view(clips, rng)
        return x1, p1, x2, p2

    def _view(self, clips: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        pos = np.stack([segment_indices(self.frames, self.view_frames, rng) for _ in clips])
        return np.take_along_axis(clips, pos[..., None], axis=1), pos

    def pca_samples(self, rng: np.random.Generator, max_frames: int = PCA_FRAMES) -> tuple[np.ndarray, np.ndarray]:
        """Frame features [<= max_frames, D] and per-video mean features [N', D] (for `--init pca`)."""
        n = min(self.n_videos, max(1, max_frames // self.frames))
        clips = read_feature_rows(self.feats, np.sort(rng.choice(self.n_videos, n, replace=False)))
        return clips.reshape(-1, self.feature_dim), clips.mean(axis=1)

    def describe(self) -> dict:
        return {"kind": "features", "videos": self.n_videos, "frames": self.frames,
                "view_frames": self.view_frames, "spatial_augmentation": False}


class VideoWindowViews:
    """Two spatio-temporal views per window from cached augmented features [A, n, D].

    Each view picks a random draw and segment-samples `frames` of its n dense frames. With
    `temporal_crop` c < 1 (a proposal of this project), a view first keeps a random contiguous
    fraction in [c, 1] of the window, so the two views of a pair are also shifted and stretched
    in time against each other (cut points and playback speed of copies differ).
    """

    def __init__(self, windows: list[tuple[Window, np.ndarray]], frames: int, temporal_crop: float = 1.0) -> None:
        if not 0 < temporal_crop <= 1:
            raise ValueError(f"temporal_crop must be in (0, 1], got {temporal_crop}")
        self.temporal_crop = temporal_crop
        if len(windows) < 2:
            raise DataError(f"need at least 2 training windows (in-batch negatives), got {len(windows)}")
        self.windows = [w for w, _ in windows]
        self.feats = [f for _, f in windows]
        self.frames = frames
        self.feature_dim = int(self.feats[0].shape[-1])
        self.n_videos = len(windows)

    def __len__(self) -> int:
        return self.n_videos

    def sample(self, indices: np.ndarray, rng: np.random.Generator) -> Views:
        return self.sample_with_draws(indices, rng)[0]

    def sample_with_draws(self, indices: np.ndarray, rng: np.random.Generator) -> tuple[Views, np.ndarray]:
        """The views of `sample` (the same random draws) and the augmentation draw of each, [B, 2]."""
        x1: list[np.ndarray] = []
        x2: list[np.ndarray] = []
        draws = np.zeros((len(indices), 2), dtype=np.int64)
        for row, i in enumerate(indices):
            feats = self.feats[i]
            for view, out in enumerate((x1, x2)):
                draws[row, view] = rng.integers(len(feats))
                draw = feats[draws[row, view]]
                out.append(draw[self._frame_indices(len(draw), rng)])
        pos = np.broadcast_to(np.arange(self.frames), (len(indices), self.frames)).copy()
        return (np.stack(x1), pos, np.stack(x2), pos.copy()), draws

    def teacher_clips(self, frames: int) -> np.ndarray:
        """Every window's every draw as a model of `frames` frames sees it at run time: the
        segment centres of its dense frames, [N, A, frames, D]."""
        return np.stack([f[:, segment_indices(f.shape[1], frames)] for f in self.feats])

    def _frame_indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.temporal_crop >= 1:
            return segment_indices(n, self.frames, rng)
        kept = max(1, round(n * rng.uniform(self.temporal_crop, 1.0)))
        start = int(rng.integers(0, n - kept + 1))
        return start + segment_indices(kept, self.frames, rng)

    def pca_samples(self, rng: np.random.Generator, max_frames: int = PCA_FRAMES) -> tuple[np.ndarray, np.ndarray]:
        """Frame features [<= max_frames, D] of every draw, and the mean of each (window, draw)."""
        frames = np.concatenate([f.reshape(-1, self.feature_dim) for f in self.feats])
        if len(frames) > max_frames:
            frames = frames[np.sort(rng.choice(len(frames), max_frames, replace=False))]
        return frames, np.concatenate([f.mean(axis=1) for f in self.feats])

    def describe(self) -> dict:
        return {"kind": "videos", "windows": [str(w) for w in self.windows], "frames": self.frames,
                "temporal_crop": self.temporal_crop,
                "draws": int(self.feats[0].shape[0]), "spatial_augmentation": True}
