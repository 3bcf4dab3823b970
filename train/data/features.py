"""Public pre-extracted features: HDF5 `feats` (N, T, D) and `.mat` label files.

The format of the FCVID / UCF101 / ActivityNet / HMDB51 feature releases the CHAIN paper trains
and evaluates on (docs/training.md says where users get them).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from chain_sdk.errors import DataError

LABEL_KEYS = ("labels", "re_label", "q_label")


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
