"""CHAIN's spatio-temporal augmentation on raw uint8 BGR frames (OpenCV + numpy).

Paper facts (docs/research/chain_method.md §1.1, §2.1): augmentations are applied to raw frames before the 2D
CNN; temporal augmentation is segment-sampling based; spatial augmentation is temporally
consistent (one transform for every frame of a clip, as in CVRL).
Proposals (docs/research/chain_method.md §2.3; every number is a field of `SpatialAugmentConfig`):
CVRL/SimCLR-style random resized crop (area 0.3..1, aspect 3/4..4/3), horizontal flip (p 0.5),
colour jitter (p 0.8; brightness, contrast, saturation 0.4, hue 0.1, in random order) and
greyscale (p 0.2). Temporal sampling is `chain_sdk.video.segment_indices` (random frame per
segment for training, centres at test time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

from chain_sdk.video import segment_indices

__all__ = [
    "Overlay",
    "SpatialAugmentConfig",
    "SpatialParams",
    "apply_params",
    "augment_clip",
    "draw_params",
    "segment_indices",
]


@dataclass(frozen=True)
class SpatialAugmentConfig:
    crop_scale: tuple[float, float] = (0.3, 1.0)  # fraction of the frame area kept
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio range of the crop
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1  # fraction of the hue circle
    grey_p: float = 0.2
    # Near-duplicate edits beyond CVRL (proposals of this project, off unless asked for):
    blur_p: float = 0.0  # Gaussian blur, sigma uniform in blur_sigma
    blur_sigma: tuple[float, float] = (0.5, 3.0)
    letterbox_p: float = 0.0  # shrink the picture into black bars (letterbox or pillarbox)
    letterbox_scale: tuple[float, float] = (0.6, 0.9)
    overlay_p: float = 0.0  # random text in a translucent box (captions, watermarks; AugLy-style)
    overlay_height: tuple[float, float] = (0.06, 0.2)  # box height as a fraction of the frame

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Overlay:
    """Text on a translucent band across the frame; positions and sizes are frame fractions."""

    text: str
    top: float  # box top
    height: float  # box height
    left: float  # box left edge, as a fraction of the free width
    band_grey: int  # band colour (0 black .. 255 white)
    alpha: float  # band opacity
    text_grey: int


@dataclass(frozen=True)
class SpatialParams:
    """One draw of the spatial transform; applied identically to every frame of a clip."""

    crop: tuple[int, int, int, int]  # y, x, height, width in source pixels
    flip: bool
    jitter: tuple[tuple[str, float], ...]  # (operation, factor) in application order; may be empty
    grey: bool
    blur_sigma: float = 0.0  # 0: no blur
    letterbox: tuple[float, bool] = (1.0, True)  # (kept fraction of one side, horizontal bars?)
    overlay: Overlay | None = None


def draw_params(rng: np.random.Generator, height: int, width: int,
                config: SpatialAugmentConfig = SpatialAugmentConfig()) -> SpatialParams:
    """Draw one transform for frames of `height` x `width` (torchvision-style crop sampling)."""
    params = SpatialParams(_draw_crop(rng, height, width, config), bool(rng.random() < config.flip_p),
                           _draw_jitter(rng, config), bool(rng.random() < config.grey_p))
    # Extra draws only when enabled, so the default policy's random stream is unchanged.
    if config.blur_p > 0 and rng.random() < config.blur_p:
        params = replace(params, blur_sigma=float(rng.uniform(*config.blur_sigma)))
    if config.letterbox_p > 0 and rng.random() < config.letterbox_p:
        params = replace(params, letterbox=(float(rng.uniform(*config.letterbox_scale)), bool(rng.random() < 0.5)))
    if config.overlay_p > 0 and rng.random() < config.overlay_p:
        params = replace(params, overlay=_draw_overlay(rng, config))
    return params


OVERLAY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -:."


def _draw_overlay(rng, config) -> Overlay:
    height = float(rng.uniform(*config.overlay_height))
    text = "".join(rng.choice(list(OVERLAY_CHARS), int(rng.integers(6, 28))))
    band = int(rng.choice([0, 255])) if rng.random() < 0.8 else int(rng.integers(0, 256))
    return Overlay(text, float(rng.uniform(0, 1 - height)), height, float(rng.random()), band, float(rng.uniform(0.3, 0.9)),
                   255 - band if rng.random() < 0.9 else int(rng.integers(0, 256)))


def _draw_crop(rng, height, width, config) -> tuple[int, int, int, int]:
    area = height * width
    log_ratio = np.log(config.crop_ratio)
    for _ in range(10):
        target = area * rng.uniform(*config.crop_scale)
        ratio = float(np.exp(rng.uniform(*log_ratio)))
        w = round(float(np.sqrt(target * ratio)))
        h = round(float(np.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    side = min(height, width)  # fallback: the central square
    return (height - side) // 2, (width - side) // 2, side, side


def _draw_jitter(rng, config) -> tuple[tuple[str, float], ...]:
    if rng.random() >= config.jitter_p:
        return ()
    ops = []
    for name, strength in (("brightness", config.brightness), ("contrast", config.contrast),
                           ("saturation", config.saturation)):
        if strength > 0:
            ops.append((name, float(rng.uniform(max(0.0, 1 - strength), 1 + strength))))
    if config.hue > 0:
        ops.append(("hue", float(rng.uniform(-config.hue, config.hue))))
    order = rng.permutation(len(ops))
    return tuple(ops[i] for i in order)


def apply_params(frames: np.ndarray, params: SpatialParams, out_size: tuple[int, int]) -> np.ndarray:
    """Apply one draw to uint8 BGR frames [N, H, W, 3] -> uint8 [N, out_h, out_w, 3]."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
    y, x, h, w = params.crop
    out_h, out_w = out_size
    resized = np.stack([cv2.resize(f[y:y + h, x:x + w], (out_w, out_h), interpolation=cv2.INTER_AREA)
                        for f in frames])
    if params.flip:
        resized = resized[:, :, ::-1]
    img = resized.astype(np.float32)
    for name, factor in params.jitter:
        img = _JITTER[name](img, factor)
    if params.grey:
        img = np.repeat(_grey(img)[..., None], 3, axis=-1)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if params.blur_sigma > 0:
        out = np.stack([cv2.GaussianBlur(f, (0, 0), params.blur_sigma) for f in out])
    if params.letterbox[0] < 1.0:
        out = np.stack([_letterbox(f, *params.letterbox) for f in out])
    if params.overlay is not None:
        out = _overlay(out, params.overlay)
    return out


def _overlay(frames: np.ndarray, o: Overlay) -> np.ndarray:
    """Blend a box of `o.band_grey` at `o.alpha` over every frame and write `o.text` in it."""
    h, w = frames.shape[1:3]
    font = cv2.FONT_HERSHEY_SIMPLEX
    y0, box_h = round(o.top * h), max(1, round(o.height * h))
    scale = 0.7 * box_h / cv2.getTextSize("Ag", font, 1.0, 1)[0][1]
    thickness = max(1, round(scale * 1.5))
    text_w = cv2.getTextSize(o.text, font, scale, thickness)[0][0]
    box_w = min(w, text_w + box_h // 2)
    x0 = round(o.left * (w - box_w))
    out = frames.copy()
    box = out[:, y0:y0 + box_h, x0:x0 + box_w].astype(np.float32)
    out[:, y0:y0 + box_h, x0:x0 + box_w] = np.rint(box * (1 - o.alpha) + o.band_grey * o.alpha).astype(np.uint8)
    origin = (x0 + box_h // 4, y0 + round(0.8 * box_h))
    for frame in out:
        cv2.putText(frame, o.text, origin, font, scale, (o.text_grey,) * 3, thickness, cv2.LINE_AA)
    return out


def _letterbox(frame: np.ndarray, keep: float, horizontal_bars: bool) -> np.ndarray:
    """Shrink one side of the picture to `keep` of its size and pad it with black bars."""
    h, w = frame.shape[:2]
    new_h, new_w = (max(1, round(h * keep)), w) if horizontal_bars else (h, max(1, round(w * keep)))
    out = np.zeros_like(frame)
    y, x = (h - new_h) // 2, (w - new_w) // 2
    out[y:y + new_h, x:x + new_w] = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return out


def _grey(img: np.ndarray) -> np.ndarray:
    # ITU-R 601 luma on BGR channels (what cv2.COLOR_BGR2GRAY computes).
    return img[..., 0] * 0.114 + img[..., 1] * 0.587 + img[..., 2] * 0.299


def _brightness(img: np.ndarray, f: float) -> np.ndarray:
    return np.clip(img * f, 0, 255)


def _contrast(img: np.ndarray, f: float) -> np.ndarray:
    mean = _grey(img).mean(axis=(1, 2), keepdims=True)[..., None]
    return np.clip(mean + f * (img - mean), 0, 255)


def _saturation(img: np.ndarray, f: float) -> np.ndarray:
    grey = _grey(img)[..., None]
    return np.clip(grey + f * (img - grey), 0, 255)


def _hue(img: np.ndarray, shift: float) -> np.ndarray:
    steps = round(shift * 180)
    if steps == 0:  # below OpenCV's hue resolution: skip the lossy 8-bit HSV round trip
        return img
    out = np.empty_like(img)
    for i, frame in enumerate(np.clip(np.rint(img), 0, 255).astype(np.uint8)):
        hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)  # OpenCV hue is 0..179
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + steps) % 180).astype(np.uint8)
        out[i] = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    return out


_JITTER = {"brightness": _brightness, "contrast": _contrast, "saturation": _saturation, "hue": _hue}


def augment_clip(frames: np.ndarray, rng: np.random.Generator, out_size: tuple[int, int],
                 config: SpatialAugmentConfig = SpatialAugmentConfig()) -> np.ndarray:
    """One temporally consistent random transform of a whole clip [N, H, W, 3]."""
    params = draw_params(rng, frames.shape[1], frames.shape[2], config)
    return apply_params(frames, params, out_size)
