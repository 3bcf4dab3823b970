"""Training data: two augmented views per video, from public features or from raw video.

`FeatureViews` reads the public pre-extracted features (HDF5 dataset `feats`, (N, T, D);
chain_method.md §5). They are features of un-augmented frames, so only the temporal
augmentation is available there: each view is a segment sample of `view_frames` of the T
frames, keeping each frame's position on the T grid. Spatial augmentation needs the frames
before the CNN (the CHAIN pipeline); a warning says so.

`VideoWindowViews` is the faithful path. Each video (optionally restricted to a film-time range)
is split into fixed-length windows, each a training "video". A window's frames are decoded
once onto a dense grid (`dense_frames` >= 2T by default), A temporally consistent spatial
augmentation draws are applied, the frozen backbone turns every augmented frame into a feature,
and the result [A, N_dense, D] is cached on disk (one HDF5 file per window, keyed by the video's
path, size and mtime, the window, the backbone and every augmentation setting). A view then
picks a random draw and segment-samples T frames of the dense grid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm.auto import tqdm

from chain_sdk.errors import ChainSDKError, EmptyVideoError, VideoOpenError
from chain_sdk.video import crop_borders, iter_frames, segment_indices

from .augment import SpatialAugmentConfig, apply_params, draw_params
from .reupload import ReuploadConfig, augment_window

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".ts", ".flv", ".wmv"}
LABEL_KEYS = ("labels", "re_label", "q_label")
SPATIAL_UNAVAILABLE = ("training from pre-extracted features: only temporal (segment-sampling) "
                       "augmentation is available; CHAIN's spatial augmentation needs raw frames "
                       "before the CNN (use --videos for the faithful pipeline)")

Views = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x1, pos1, x2, pos2
DONOR_WINDOWS = 48  # windows of other videos kept as overlay / intro donors
PCA_FRAMES = 20_000  # frames sampled for `--init pca`: plenty for 256 axes of 1280-d features


class DataError(ChainSDKError):
    """Training or evaluation data is missing or malformed."""


# --------------------------------------------------------------------------- features (HDF5)

def open_features(path: str | os.PathLike) -> Any:
    """The `feats` dataset (N, T, D) of an HDF5 file, validated (lazily read, file kept open)."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise DataError(f"{path}: cannot open as HDF5 ({exc})") from exc
    if "feats" not in handle:
        keys = list(handle.keys())
        handle.close()
        raise DataError(f"{path}: no dataset 'feats' (keys: {keys}); expected (N, T, D) float features")
    feats = handle["feats"]
    if feats.ndim != 3 or min(feats.shape) < 1:
        raise DataError(f"{path}: 'feats' must be (N, T, D), got shape {feats.shape}")
    return feats


def read_feature_rows(feats: Any, indices: np.ndarray) -> np.ndarray:
    """feats[indices] as float32, in the order given (h5py wants sorted unique indices)."""
    unique, inverse = np.unique(indices, return_inverse=True)
    return np.asarray(feats[unique], dtype=np.float32)[inverse]


def load_labels(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Label matrix (N, C) from a .mat file (keys `labels`, `re_label`, `q_label` tried in order).

    MATLAB v7.3 files are HDF5 and store matrices transposed; both kinds are read.
    """
    keys = (key,) if key else LABEL_KEYS
    try:
        import scipy.io

        data = scipy.io.loadmat(path)
    except NotImplementedError:  # v7.3
        import h5py

        with h5py.File(path, "r") as f:
            data = {k: np.asarray(f[k]).T for k in f}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read labels ({exc})") from exc
    for k in keys:
        if k in data:
            labels = np.asarray(data[k])
            if labels.ndim == 1 or 1 in labels.shape and labels.ndim == 2 and labels.shape[1] == 1:
                return labels.reshape(-1).astype(np.int64)
            if labels.ndim != 2:
                raise DataError(f"{path}: '{k}' must be (N, C), got {labels.shape}")
            return labels.astype(np.float32)
    found = [k for k in data if not k.startswith("__")]
    raise DataError(f"{path}: none of the label keys {list(keys)} found (keys: {found})")


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


# --------------------------------------------------------------------------- raw video

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
    reupload: ReuploadConfig | None = None  # the re-upload policy (train/reupload.py) instead of `spatial`

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


def cache_key(window: Window, config: ExtractionConfig, backbone_name: str,
              input_size: tuple[int, int], path_stat: os.stat_result) -> str:
    desc = {
        "path": os.path.abspath(window.path), "size": path_stat.st_size,
        "mtime_ns": path_stat.st_mtime_ns, "window": [window.start, window.end],
        "backbone": backbone_name, "input_size": list(input_size), "fps": config.fps,
        "dense": config.dense, "draws": config.draws, "seed": config.seed,
        "short_side": config.short_side, "spatial": config.spatial.to_dict(), "v": 2,
        "crop_borders": config.crop_borders,
        **({"reupload": config.reupload.to_dict()} if config.reupload else {}),
    }
    return hashlib.sha1(json.dumps(desc, sort_keys=True).encode()).hexdigest()


def extract_window_features(frames: np.ndarray, backbone: Any, config: ExtractionConfig,
                            rng: np.random.Generator, batch: int = 64,
                            donors: list[np.ndarray] | None = None) -> np.ndarray:
    """[A, n, D] features of A augmentation draws of one window's dense frames (`donors`:
    frames of other training videos, for the re-upload policy's overlays and intros)."""
    import torch

    out_size = tuple(backbone.input_size)
    rgb = getattr(backbone, "color_order", "BGR") == "RGB"
    draws = []
    for _ in range(config.draws):
        if config.reupload is not None:
            aug = augment_window(frames, rng, out_size, donors or [], config.reupload)
        else:
            aug = apply_params(frames, draw_params(rng, frames.shape[1], frames.shape[2], config.spatial), out_size)
        if rgb:
            aug = aug[..., ::-1]
        feats = []
        with torch.no_grad():
            for i in range(0, len(aug), batch):
                chunk = torch.from_numpy(np.ascontiguousarray(aug[i:i + batch]))
                feats.append(backbone(chunk).float().cpu().numpy())
        draws.append(np.concatenate(feats))
    return np.stack(draws).astype(np.float32)


def build_window_cache(videos: Sequence[str | os.PathLike], backbone: Any, config: ExtractionConfig,
                       cache_dir: str | os.PathLike) -> list[tuple[Window, np.ndarray]]:
    """Decode, augment and embed every window of every video, reusing the on-disk cache.

    A video may be given as `(path, (start, end))` to use its own time range (the data split of
    `chain_sdk.data.SOURCES`); a plain path uses `config.time_range`. Donor frames for the
    re-upload overlays are the windows of OTHER videos decoded earlier in the same pass.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    name = getattr(backbone, "name", type(backbone).__name__)
    input_size = tuple(backbone.input_size)
    results: list[tuple[Window, np.ndarray]] = []
    hits = 0
    plain = [v for v in videos if not isinstance(v, tuple)]
    paths = [(p, config) for p in (list_videos(plain) if plain or not videos else [])]
    paths += [(Path(v[0]), replace(config, time_range=tuple(v[1]))) for v in videos if isinstance(v, tuple)]
    donors: list[tuple[int, np.ndarray]] = []  # (video index, a few frames)
    for vi, (path, vconfig) in enumerate(tqdm(paths, desc="videos", unit="video")):
        stat = path.stat()
        probe = _cached_windows(cache, path, vconfig, name, input_size, stat)
        if probe is not None:
            results += probe
            hits += len(probe)
            continue
        entries: list[tuple[Window, np.ndarray]] = []
        for window, frames, _ in tqdm(decode_overlapping_windows(path, vconfig), desc=path.name,
                                      unit="window", leave=False):
            target = cache / f"{cache_key(window, vconfig, name, input_size, stat)}.h5"
            if target.is_file():  # extracted before under another window layout
                feats = _read_h5(target)
            else:
                rng = np.random.default_rng([vconfig.seed, vi, len(entries)])
                feats = extract_window_features(frames, backbone, vconfig, rng,
                                                donors=[d for v, d in donors if v != vi])
                _write_h5(target, feats, window)
            if vconfig.reupload is not None:
                donors = (donors + [(vi, frames[:: max(1, len(frames) // 8)])])[-DONOR_WINDOWS:]
            entries.append((window, feats))
        _write_index(cache, path, vconfig, name, input_size, stat, [w for w, _ in entries])
        results += entries
    log.info("feature cache %s: %d windows (%d from cache)", cache, len(results), hits)
    return results


def _index_path(cache: Path, path: Path, config, name, input_size, stat) -> Path:
    # The window list of a video depends on decoding; an index file remembers it.
    dummy = Window(str(path), -1.0, -1.0)
    layout = json.dumps([config.segment, config.hop, config.time_range]).encode()
    tag = hashlib.sha1(cache_key(dummy, config, name, input_size, stat).encode() + layout).hexdigest()
    return cache / f"index-{tag}.json"


def _write_index(cache, path, config, name, input_size, stat, windows: list[Window]) -> None:
    target = _index_path(cache, path, config, name, input_size, stat)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps([[w.start, w.end] for w in windows]))
    os.replace(tmp, target)


def _cached_windows(cache, path, config, name, input_size, stat):

    index = _index_path(cache, path, config, name, input_size, stat)
    if not index.is_file():
        return None
    out = []
    for start, end in json.loads(index.read_text()):
        window = Window(str(path), start, end)
        file = cache / f"{cache_key(window, config, name, input_size, stat)}.h5"
        if not file.is_file():
            return None
        out.append((window, _read_h5(file)))
    return out


def _read_h5(path: Path) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        return np.asarray(f["feats"], dtype=np.float32)


def _write_h5(target: Path, feats: np.ndarray, window: Window) -> None:
    import h5py

    tmp = target.with_suffix(".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("feats", data=feats)
        f.attrs["window"] = json.dumps([window.path, window.start, window.end])
    os.replace(tmp, target)


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
        x1: list[np.ndarray] = []
        x2: list[np.ndarray] = []
        for i in indices:
            feats = self.feats[i]
            for out in (x1, x2):
                draw = feats[rng.integers(len(feats))]
                out.append(draw[self._frame_indices(len(draw), rng)])
        pos = np.broadcast_to(np.arange(self.frames), (len(indices), self.frames)).copy()
        return np.stack(x1), pos, np.stack(x2), pos.copy()

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
