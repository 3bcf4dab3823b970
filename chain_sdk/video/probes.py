"""Query-side multi-probe: crops of a query's picture, each hashed as if it were a video.

A re-upload that shows the original *inside* another picture (picture-in-picture, a reaction
video, a shrunk clip on a banner) keeps little of the original's global feature: the mean of a
CNN's last feature map is dominated by the surrounding picture. Cropping the query to the part
that holds the original, and resizing that to the backbone's input, brings the original back.
Where the inset sits is unknown, so a query is probed with a fixed set of standard crops and
matched by the smallest distance over its probes (`chain_sdk.index.search_probes`). Only the
query pays: the database keeps one code per video.

A region is (x0, y0, x1, y1) in fractions of the picture inside the clip's black bars. The
probe sets are fixed in advance rather than fitted to a benchmark:

- `GRID9`: the 3 x 3 grid of half-size crops at strides of a quarter picture (the four corner
  quadrants, the four edge midpoints and the centre), as multi-crop image retrieval uses;
- `CORNERS5`: its four quadrants and the centre, about half the cost (`Encoder.encode_probes`'
  default, the set the near-duplicate benchmark scores).

`ProbeFit` is the frame fit (`FrameFit`) of a probe clip: it returns the ordinary clip first,
bit for bit what `sample_clip` gives, then one clip per region, cropped from a work copy of each
frame at up to twice the input size (the same resolution the bar crop works from).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from chain_sdk.video.borders import content_box
from chain_sdk.video.sampling import FrameFit, Sampled, _resize, _sample
from chain_sdk.video.source import open_video


class Region(NamedTuple):
    """A crop of the picture: [x0, x1) x [y0, y1) in fractions of its width and height."""

    x0: float
    y0: float
    x1: float
    y1: float

    def pixels(self, height: int, width: int) -> tuple[slice, slice]:
        """Rows and columns of the crop on a picture of height x width (at least one pixel)."""
        top, left = int(round(self.y0 * height)), int(round(self.x0 * width))
        bottom = max(int(round(self.y1 * height)), top + 1)
        right = max(int(round(self.x1 * width)), left + 1)
        return slice(top, bottom), slice(left, right)


def _half_grid(offsets: tuple[float, ...]) -> tuple[Region, ...]:
    return tuple(Region(x, y, x + 0.5, y + 0.5) for y in offsets for x in offsets)


GRID9 = _half_grid((0.0, 0.25, 0.5))
CORNERS5 = _half_grid((0.0, 0.5)) + (Region(0.25, 0.25, 0.75, 0.75),)
PROBE_SETS = {"grid9": GRID9, "corners5": CORNERS5}


def check_regions(regions: Any) -> tuple[Region, ...]:
    """The regions as a tuple of `Region`, or a ValueError naming the first bad one."""
    out = []
    for r in regions:
        if len(r) != 4:
            raise ValueError(f"a probe region is (x0, y0, x1, y1), got {r!r}")
        region = Region(*(float(v) for v in r))
        if not (0.0 <= region.x0 < region.x1 <= 1.0 and 0.0 <= region.y0 < region.y1 <= 1.0):
            raise ValueError(f"probe region {tuple(r)} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
        out.append(region)
    return tuple(out)


class ProbeFit(FrameFit):
    """`FrameFit` that keeps a work copy of every frame and returns uint8 [1 + P, T, H, W, 3]:
    the ordinary clip, then one clip per region."""

    def __init__(self, size: tuple[int, int], crop_borders: bool, regions: Any) -> None:
        super().__init__(size, crop_borders)
        self.regions = check_regions(regions)

    def frame(self, bgr: np.ndarray) -> Any:
        h, w = bgr.shape[:2]
        work = _resize(bgr, (min(w, 2 * self.size[0]), min(h, 2 * self.size[1])))
        return super().frame(bgr), work

    def clip(self, kept: list[Any]) -> np.ndarray:
        whole = super().clip([ordinary for ordinary, _ in kept])
        work = np.stack([w for _, w in kept])
        if self.crop_borders:
            box = content_box(work)
            work = work[:, box.top:box.bottom, box.left:box.right]
        h, w = work.shape[1:3]
        probes = []
        for region in self.regions:
            rows, cols = region.pixels(h, w)
            probes.append(np.stack([_resize(np.ascontiguousarray(f[rows, cols]), self.size) for f in work]))
        return np.stack([whole, *probes])

    @staticmethod
    def nbytes(kept: Any) -> int:
        ordinary, work = kept
        return FrameFit.nbytes(ordinary) + work.nbytes


def sample_probes(source: Any, frames: int, resize: tuple[int, int], regions: Any = GRID9,
                  crop_borders: bool = False) -> Sampled:
    """`sample_video` for a probed query: `clip.frames` is uint8 [1 + P, T, H, W, 3], row 0
    exactly the clip `sample_video(source, frames, resize, crop_borders=...)` gives."""
    src = open_video(source)
    try:
        return _sample(src, frames, ProbeFit(resize, crop_borders, regions), None)
    finally:
        if src is not source:
            src.close()
