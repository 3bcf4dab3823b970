"""Training data: two augmented views per video, from public features or from raw video.

`FeatureViews` reads the public pre-extracted features (HDF5 dataset `feats`, (N, T, D);
docs/research/chain_method.md §5). They are features of un-augmented frames, so only the temporal
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

from chain_sdk.errors import DataError

from .cache import build_window_cache, cache_key
from .features import LABEL_KEYS, load_labels, open_features, read_feature_rows
from .views import PCA_FRAMES, SPATIAL_UNAVAILABLE, FeatureViews, VideoWindowViews, Views
from .windows import (
    VIDEO_SUFFIXES,
    ExtractionConfig,
    Window,
    decode_overlapping_windows,
    decode_windows,
    extract_window_features,
    list_videos,
)

__all__ = [
    "DataError", "build_window_cache", "cache_key", "LABEL_KEYS", "load_labels", "open_features",
    "read_feature_rows", "PCA_FRAMES", "SPATIAL_UNAVAILABLE", "FeatureViews", "VideoWindowViews",
    "Views", "VIDEO_SUFFIXES", "ExtractionConfig", "Window", "decode_overlapping_windows",
    "decode_windows", "extract_window_features", "list_videos",
]
