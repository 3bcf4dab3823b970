"""Black bars (letterbox, pillarbox, windowbox) around a clip's picture, found and cropped.

Re-publishing a film in another aspect ratio pads it with black bars; the CNN then sees a
smaller, shifted picture, and letterbox was the edit every hash found hardest in the
near-duplicate benchmark (docs/near_duplicate_report.md). Cropping the bars first, as ffmpeg's
`cropdetect` does, brings the copy back to (a resampling of) the original picture.

The box is decided once per clip, not per frame: a row or column is a bar when it stays dark
in *every* frame of the clip, so a night scene or a fade is not cut into, while encoder ringing
at the bar edge (a few grey levels) is tolerated. A line is dark when the mean of its pixels
over all channels is at most `BAR_LIMIT` (ffmpeg cropdetect's default limit, 24 of 255). When
less than `MIN_KEEP` of a side would remain (a black or nearly black clip), the clip is left
whole: there is no picture to trust.

It follows that a clip has no bars as soon as one of its frames has all four edge lines lit
(`has_dark_edge` is False), which lets the sampler skip the crop machinery for most clips.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

BAR_LIMIT = 24.0  # mean brightness (0-255) at or under which a whole line counts as bar
MIN_KEEP = 0.5  # never keep less than this fraction of the height or the width


class Box(NamedTuple):
    """The picture inside the bars: rows [top, bottom), columns [left, right)."""

    top: int
    bottom: int
    left: int
    right: int

    def is_whole(self, height: int, width: int) -> bool:
        return self == (0, height, 0, width)

    def scaled(self, sy: float, sx: float) -> "Box":
        """The same box on a frame resized by (sy, sx), rounded inwards so no bar is kept."""
        return Box(int(np.ceil(self.top * sy - 1e-9)), int(np.floor(self.bottom * sy + 1e-9)),
                   int(np.ceil(self.left * sx - 1e-9)), int(np.floor(self.right * sx + 1e-9)))


def _span(dark: np.ndarray, min_keep: float) -> tuple[int, int]:
    """[first, last + 1) of the non-dark run between the leading and trailing dark lines."""
    n = len(dark)
    lit = np.flatnonzero(~dark)
    if len(lit) == 0:
        return 0, n
    first, end = int(lit[0]), int(lit[-1]) + 1
    return (first, end) if end - first >= min_keep * n else (0, n)


def content_box(frames: np.ndarray, limit: float = BAR_LIMIT,
                min_keep: float = MIN_KEEP) -> Box:
    """The box inside the black bars common to all `frames` (uint8 [N, H, W, C] or [N, H, W])."""
    if frames.ndim not in (3, 4) or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty [N, H, W(, C)] array, got {frames.shape}")
    n, h, w = frames.shape[:3]
    rows = frames.reshape(n, h, -1).mean(axis=2, dtype=np.float32).max(axis=0)  # brightest frame
    top, bottom = _span(rows <= limit, min_keep)
    inside = frames[:, top:bottom].reshape(n, bottom - top, w, -1)
    cols = inside.mean(axis=(1, 3), dtype=np.float32).max(axis=0)
    left, right = _span(cols <= limit, min_keep)
    return Box(top, bottom, left, right)


def has_dark_edge(frame: np.ndarray, limit: float = BAR_LIMIT) -> bool:
    """Whether any of the four edge lines of one frame ([H, W, C] or [H, W]) is dark; a clip
    with one frame where none is has no bars."""
    f = frame.reshape(frame.shape[0], frame.shape[1], -1)
    return min(f[0].mean(), f[-1].mean(), f[:, 0].mean(), f[:, -1].mean()) <= limit


def crop_borders(frames: np.ndarray, limit: float = BAR_LIMIT,
                 min_keep: float = MIN_KEEP) -> np.ndarray:
    """`frames` cropped to their `content_box` (a view; the input itself when there are no bars)."""
    box = content_box(frames, limit, min_keep)
    return frames[:, box.top:box.bottom, box.left:box.right]
