"""The on-disk cache of augmented window features: one HDF5 file per window, keyed by the video's
path, size and mtime, the window, the backbone and every augmentation setting, plus one index
file per video that remembers its window layout. Files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from chain_sdk.files import atomic_path, write_text

from .windows import ExtractionConfig, Window, decode_overlapping_windows, extract_window_features, list_videos

log = logging.getLogger(__name__)


def cache_key(window: Window, config: ExtractionConfig, backbone_name: str,
              input_size: tuple[int, int], path_stat: os.stat_result) -> str:
    desc = {
        "path": os.path.abspath(window.path), "size": path_stat.st_size,
        "mtime_ns": path_stat.st_mtime_ns, "window": [window.start, window.end],
        "backbone": backbone_name, "input_size": list(input_size), "fps": config.fps,
        "dense": config.dense, "draws": config.draws, "seed": config.seed,
        "short_side": config.short_side, "spatial": config.spatial.to_dict(), "v": 2,
        "crop_borders": config.crop_borders,
    }
    return hashlib.sha1(json.dumps(desc, sort_keys=True).encode()).hexdigest()


def build_window_cache(videos: Sequence[str | os.PathLike], backbone: Any, config: ExtractionConfig,
                       cache_dir: str | os.PathLike) -> list[tuple[Window, np.ndarray]]:
    """Decode, augment and embed every window of every video, reusing the on-disk cache."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    name = getattr(backbone, "name", type(backbone).__name__)
    input_size = tuple(backbone.input_size)
    results: list[tuple[Window, np.ndarray]] = []
    hits = 0
    paths = list_videos(videos)
    for vi, path in enumerate(tqdm(paths, desc="videos", unit="video")):
        stat = path.stat()
        probe = _cached_windows(cache, path, config, name, input_size, stat)
        if probe is not None:
            results += probe
            hits += len(probe)
            continue
        entries: list[tuple[Window, np.ndarray]] = []
        for window, frames, _ in tqdm(decode_overlapping_windows(path, config), desc=path.name,
                                      unit="window", leave=False):
            target = cache / f"{cache_key(window, config, name, input_size, stat)}.h5"
            if target.is_file():  # extracted before under another window layout
                feats = _read_h5(target)
            else:
                rng = np.random.default_rng([config.seed, vi, len(entries)])
                feats = extract_window_features(frames, backbone, config, rng)
                _write_h5(target, feats, window)
            entries.append((window, feats))
        _write_index(cache, path, config, name, input_size, stat, [w for w, _ in entries])
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
    write_text(_index_path(cache, path, config, name, input_size, stat),
               json.dumps([[w.start, w.end] for w in windows]))


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

    with atomic_path(target) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("feats", data=feats)
        f.attrs["window"] = json.dumps([window.path, window.start, window.end])
