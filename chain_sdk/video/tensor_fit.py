"""`FrameFit` on torch tensors: frames resized and bar-cropped where they already are (a GPU).

Frames decoded on the GPU (`chain_sdk.video.nvdec`) stay there: the resize to the model's input
size, the black-bar crop and the clip stack run as torch ops on the frames' device, and the
clip goes to the inference backend as a device tensor (no host copy). The same class takes the
host frames of the CPU decoders (numpy, uploaded to `device`), so one sampler serves both.

It computes what `FrameFit` computes with OpenCV and numpy, to within rounding:

- `area_resize` is OpenCV's INTER_AREA as a linear map: when both axes shrink (or keep their
  size), output pixel i averages the source interval [i * s, (i + 1) * s) with weights equal
  to the overlap of each source pixel (OpenCV's `computeResizeAreaTab`), applied as one matrix
  per axis; when an axis grows, OpenCV's INTER_AREA interpolates between two source pixels with
  weights of its own (`linear_weights`), here the same weights as matrices. Rounding follows
  OpenCV's (half to even; ties up on its 2x2 path); what remains is OpenCV's fixed-point
  arithmetic on the enlarging path, within 1 grey level (tests/test_tensor_fit.py).
- the bar box is `chain_sdk.video.borders.content_box`'s rule on the same row and column
  profiles (only the two profile vectors, not the frames, are read back to the host).

torch is imported lazily: `import chain_sdk` does not need it.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from chain_sdk.video.borders import BAR_LIMIT, MIN_KEEP, Box, _span


def _torch() -> Any:
    import torch

    return torch


@functools.lru_cache(maxsize=64)
def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """float64 [n_out, n_in]: OpenCV's INTER_AREA weights along one axis (n_out <= n_in)."""
    scale = n_in / n_out
    w = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
            overlap = min(hi, j + 1) - max(lo, j)
            if overlap > 1e-3:  # OpenCV drops slivers under 1e-3 of a pixel
                w[i, j] = overlap
        w[i] /= w[i].sum()
    return w


@functools.lru_cache(maxsize=64)
def linear_weights(n_in: int, n_out: int) -> np.ndarray:
    """float64 [n_out, n_in]: the two-tap weights OpenCV's INTER_AREA uses when the image
    does not shrink on both axes (resize.cpp: sx = floor(dx * s), fx = frac((dx + 1) - (sx + 1) / s),
    0 when negative; taps past the edge clamped to it)."""
    inv_scale = n_out / n_in
    scale = 1.0 / inv_scale  # OpenCV's double arithmetic: 42 * scale is 26.999.. for 144 -> 224
    w = np.zeros((n_out, n_in), dtype=np.float64)
    for dx in range(n_out):
        sx = int(np.floor(dx * scale))
        fx = float(np.float32((dx + 1) - (sx + 1) * inv_scale))
        fx = 0.0 if fx <= 0 else fx - np.floor(fx)
        if sx >= n_in - 1:
            sx, fx = n_in - 1, 0.0
        w[dx, sx] += 1.0 - fx
        w[dx, min(sx + 1, n_in - 1)] += fx
    return w


@functools.lru_cache(maxsize=64)
def _weights_on(n_in: int, n_out: int, shrink: bool, device: str) -> Any:
    weights = area_weights(n_in, n_out) if shrink else linear_weights(n_in, n_out)
    return _torch().from_numpy(weights.astype(np.float32)).to(device)


def area_resize(frame: Any, size: tuple[int, int]) -> Any:
    """uint8 [H, W, C] torch tensor resized to `size` = (W, H) as cv2.resize(INTER_AREA)."""
    torch = _torch()
    h, w = int(frame.shape[0]), int(frame.shape[1])
    ow, oh = int(size[0]), int(size[1])
    if (w, h) == (ow, oh):
        return frame
    shrink, dev = ow <= w and oh <= h, str(frame.device)
    x = torch.einsum("oh,hwc->owc", _weights_on(h, oh, shrink, dev), frame.to(torch.float32))
    x = torch.einsum("pw,owc->opc", _weights_on(w, ow, shrink, dev), x)
    if (w, h) == (2 * ow, 2 * oh):  # OpenCV's 2x2 path rounds ties up: (a + b + c + d + 2) >> 2
        x = (x + 0.5).floor_()
    else:  # elsewhere cvRound: half to even, as torch.round
        x = x.round_()
    return x.clamp_(0, 255).to(torch.uint8)


def has_dark_edge(frame: Any, limit: float = BAR_LIMIT) -> bool:
    """`borders.has_dark_edge` of one [H, W, C] tensor."""
    f = frame.reshape(frame.shape[0], frame.shape[1], -1).float()
    edges = _torch().stack([f[0].mean(), f[-1].mean(), f[:, 0].mean(), f[:, -1].mean()])
    return bool(edges.min() <= limit)


def content_box(frames: Any, limit: float = BAR_LIMIT, min_keep: float = MIN_KEEP) -> Box:
    """`borders.content_box` of a uint8 [N, H, W, C] tensor."""
    n, h, w = (int(d) for d in frames.shape[:3])
    rows = frames.reshape(n, h, -1).float().mean(dim=2).amax(dim=0)
    top, bottom = _span(rows.cpu().numpy() <= limit, min_keep)
    cols = frames[:, top:bottom].reshape(n, bottom - top, w, -1).float().mean(dim=(1, 3)).amax(dim=0)
    left, right = _span(cols.cpu().numpy() <= limit, min_keep)
    return Box(top, bottom, left, right)


class TensorFrameFit:
    """`chain_sdk.video.sampling.FrameFit` with torch ops on `device`: `frame(bgr)` keeps one
    decoded frame (a uint8 [H, W, 3] BGR tensor on any device, or a numpy frame, uploaded),
    `clip(kept)` stacks the kept frames into a uint8 [T, H, W, 3] tensor on `device`.

    The clip is ready when `clip` returns (the device is synchronized): backends that read it on
    their own CUDA stream (onnxruntime, TensorRT) see the finished pixels."""

    def __init__(self, size: tuple[int, int] | None = None, crop_borders: bool = False,
                 device: str = "cpu") -> None:
        self.size = tuple(size) if size is not None else None
        self.crop_borders = crop_borders
        self.device = device

    def _on_device(self, bgr: Any) -> Any:
        torch = _torch()
        if isinstance(bgr, np.ndarray):
            bgr = torch.from_numpy(np.ascontiguousarray(bgr))
        return bgr.to(self.device)

    def _resize(self, frame: Any, size: tuple[int, int] | None) -> Any:
        return frame if size is None else area_resize(frame, size)

    def frame(self, bgr: Any) -> Any:
        bgr = self._on_device(bgr)
        direct = self._resize(bgr, self.size)
        if not self.crop_borders or self.size is None or not has_dark_edge(direct):
            return direct
        h, w = int(bgr.shape[0]), int(bgr.shape[1])
        return direct, self._resize(bgr, (min(w, 2 * self.size[0]), min(h, 2 * self.size[1])))

    def clip(self, kept: list[Any]) -> Any:
        clip = self._clip(kept)
        torch = _torch()
        if clip.is_cuda:
            torch.cuda.synchronize(clip.device)
        return clip.contiguous()

    def _clip(self, kept: list[Any]) -> Any:
        torch = _torch()
        if self.crop_borders and self.size is None:
            frames = torch.stack(kept)
            box = content_box(frames)
            return frames[:, box.top:box.bottom, box.left:box.right]
        if not self.crop_borders or any(not isinstance(k, tuple) for k in kept):
            return torch.stack([k[0] if isinstance(k, tuple) else k for k in kept])
        direct = torch.stack([d for d, _ in kept])
        box = content_box(direct)
        if box.is_whole(int(direct.shape[1]), int(direct.shape[2])):
            return direct
        work = [w for _, w in kept]
        (h, w), (wh, ww) = direct.shape[1:3], work[0].shape[:2]
        b = box.scaled(int(wh) / int(h), int(ww) / int(w))
        return torch.stack([self._resize(f[b.top:b.bottom, b.left:b.right], self.size) for f in work])

    @staticmethod
    def nbytes(kept: Any) -> int:
        parts = kept if isinstance(kept, tuple) else (kept,)
        return sum(int(p.numel()) * p.element_size() for p in parts)
