"""Re-upload augmentation: the edits real copies carry, one draw per clip on raw frames.

A proposal of this project for near-duplicate search (chain_method.md §2.3 leaves the policy
open; the paper's facts are only "raw frames before the 2D CNN" and "temporally consistent").
Each call draws one transform and applies it to every frame of a window, as CHAIN does:

- re-framing: zoom (random resized crop), crops to portrait, square and other aspect ratios,
  shown as they are, padded with black bars, or centred on a blurred fill; mirror;
- photometric (albumentations 2.x, one draw for all frames via its `images` target): colour
  jitter, hue/saturation, gamma, tone curves, greyscale, sepia, noise, blur, sharpening;
- quality: downscaling, JPEG blocking, and ffmpeg (imageio-ffmpeg) H.264 at a high CRF with an
  optional frame-rate drop, so codec artefacts and duplicated frames are real ones;
- overlays composited from OTHER training footage ("donors"): a logo-sized patch, a round
  sticker, a caption band with text, a coloured border;
- temporal: an intro or outro of donor frames, dropped (repeated) frames.

Two families are deliberately absent, so the benchmark can measure them as unseen
(benchmarks/retrieval/edits.py): the clip shrunk inside another video (picture-in-picture) and
rotation / perspective. Every probability and range is a field of `ReuploadConfig`.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from chain_sdk.video import crop_borders

from .augment import _draw_overlay, _overlay, SpatialAugmentConfig


@dataclass(frozen=True)
class ReuploadConfig:
    zoom_p: float = 0.5
    zoom_scale: tuple[float, float] = (0.45, 1.0)  # kept area of a random resized crop
    reframe_p: float = 0.4
    reframe_aspects: tuple[float, ...] = (9 / 16, 3 / 4, 1.0, 4 / 3, 2.0)  # width / height
    flip_p: float = 0.5
    photometric_p: float = 0.85
    quality_p: float = 0.4
    codec_p: float = 0.3
    codec_crf: tuple[int, int] = (30, 44)
    overlay_p: float = 0.5
    border_p: float = 0.15
    intro_p: float = 0.2
    intro_fraction: tuple[float, float] = (0.08, 0.25)
    drop_p: float = 0.2

    def to_dict(self) -> dict:
        return asdict(self)


def photometric(seed: int):
    """The albumentations pipeline of colour and quality edits (one draw per call)."""
    import albumentations as A

    pipe = A.Compose([
        A.SomeOf([
            A.ColorJitter(brightness=0.35, contrast=0.35, saturation=0.5, hue=0.08, p=1.0),
            A.HueSaturationValue(hue_shift_limit=20, sat_shift_limit=40, val_shift_limit=25, p=1.0),
            A.RandomGamma(gamma_limit=(60, 160), p=1.0),
            A.RandomToneCurve(scale=0.2, p=1.0),
            A.ToGray(p=1.0),
            A.ToSepia(p=1.0),
            A.GaussNoise(std_range=(0.02, 0.12), p=1.0),
            A.GaussianBlur(blur_limit=(3, 11), p=1.0),
            A.Sharpen(alpha=(0.2, 0.6), p=1.0),
        ], n=2, replace=False, p=1.0),
    ], seed=seed)
    return pipe


def quality(seed: int):
    import albumentations as A

    return A.Compose([A.OneOf([
        A.Downscale(scale_range=(0.2, 0.5), p=1.0),
        A.ImageCompression(quality_range=(8, 35), p=1.0),
    ], p=1.0)], seed=seed)


def _albu(pipe, frames: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(pipe(images=frames)["images"])


def _zoom(frames: np.ndarray, rng: np.random.Generator, scale: tuple[float, float]) -> np.ndarray:
    h, w = frames.shape[1:3]
    area = rng.uniform(*scale)
    ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ch = int(np.clip(round(h * np.sqrt(area / ratio)), 8, h))
    cw = int(np.clip(round(w * np.sqrt(area * ratio)), 8, w))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return np.stack([cv2.resize(f[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA) for f in frames])


def _reframe(frames: np.ndarray, rng: np.random.Generator, aspects: tuple[float, ...]) -> np.ndarray:
    """Crop to another aspect ratio; show it bare, in black bars, or over a blurred fill."""
    h, w = frames.shape[1:3]
    aspect = float(rng.choice(aspects))
    cw, ch = (min(w, round(h * aspect)), h) if aspect < w / h else (w, min(h, round(w / aspect)))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    cropped = frames[:, y:y + ch, x:x + cw]
    mode = rng.choice(["bare", "black", "blur"])
    if mode == "bare":
        return np.ascontiguousarray(cropped)
    scale = min(w / cw, h / ch)
    nw, nh = max(1, round(cw * scale)), max(1, round(ch * scale))
    oy, ox = (h - nh) // 2, (w - nw) // 2
    out = []
    for f, c in zip(frames, cropped):
        canvas = (np.zeros_like(f) if mode == "black"
                  else cv2.GaussianBlur(cv2.resize(c, (w, h)), (0, 0), max(h, w) / 30))
        canvas[oy:oy + nh, ox:ox + nw] = cv2.resize(c, (nw, nh), interpolation=cv2.INTER_AREA)
        out.append(canvas)
    return np.stack(out)


def _donor_frames(donors: list[np.ndarray], rng: np.random.Generator, n: int, size: tuple[int, int]) -> np.ndarray:
    """n frames of one donor clip (other training footage) resized to (h, w); grey noise if none."""
    h, w = size
    if not donors:
        return np.full((n, h, w, 3), rng.integers(0, 256), np.uint8)
    clip = donors[int(rng.integers(len(donors)))]
    idx = np.linspace(0, len(clip) - 1, n).round().astype(int)
    return np.stack([cv2.resize(clip[i], (w, h), interpolation=cv2.INTER_AREA) for i in idx])


def _patch_overlay(frames: np.ndarray, rng: np.random.Generator, donors: list[np.ndarray], round_mask: bool) -> np.ndarray:
    """A logo-sized patch of donor footage (or a round sticker), pasted at one place for all frames."""
    n, h, w = frames.shape[:3]
    side = int(min(h, w) * rng.uniform(0.12, 0.3))
    ph, pw = side, int(side * (1.0 if round_mask else rng.uniform(1.0, 2.0)))
    pw = min(pw, w)
    patch = _donor_frames(donors, rng, n, (ph, pw)).astype(np.float32)
    mask = np.ones((ph, pw), np.float32)
    if round_mask:
        mask = np.zeros((ph, pw), np.float32)
        cv2.ellipse(mask, (pw // 2, ph // 2), (pw // 2, ph // 2), 0, 0, 360, 1.0, -1)
    alpha = float(rng.uniform(0.5, 1.0)) * mask[None, :, :, None]
    y, x = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    out = frames.copy()
    region = out[:, y:y + ph, x:x + pw].astype(np.float32)
    out[:, y:y + ph, x:x + pw] = np.rint(region * (1 - alpha) + patch * alpha).astype(np.uint8)
    return out


def _border(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = frames.shape[1:3]
    t = max(1, int(min(h, w) * rng.uniform(0.03, 0.1)))
    colour = [int(c) for c in rng.integers(40, 256, 3)]  # not black: the bar crop would undo it
    return np.stack([cv2.copyMakeBorder(cv2.resize(f, (w - 2 * t, h - 2 * t)), t, t, t, t,
                                        cv2.BORDER_CONSTANT, value=colour) for f in frames])


def _intro(frames: np.ndarray, rng: np.random.Generator, donors: list[np.ndarray],
           fraction: tuple[float, float]) -> np.ndarray:
    n, h, w = frames.shape[:3]
    k = max(1, int(round(n * rng.uniform(*fraction))))
    inserted = _donor_frames(donors, rng, k, (h, w))
    if rng.random() < 0.5:  # intro: the clip starts later; outro: it ends earlier
        return np.concatenate([inserted, frames[: n - k]])
    return np.concatenate([frames[k:], inserted])


def _drop(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dropped frames: each frame is replaced by its predecessor with probability 0.1-0.4."""
    p = rng.uniform(0.1, 0.4)
    idx = np.arange(len(frames))
    for i in range(1, len(idx)):
        if rng.random() < p:
            idx[i] = idx[i - 1]
    return frames[idx]


def ffmpeg_reencode(frames: np.ndarray, crf: int, fps_in: float = 25.0, fps_out: float | None = None) -> np.ndarray:
    """Frames through a real H.264 encode/decode (imageio-ffmpeg's ffmpeg), same count out.

    With `fps_out` < `fps_in` the encode also drops to that frame rate; the decoded frames are
    mapped back onto the input grid (each input slot shows the frame playing at that time).
    """
    import imageio_ffmpeg

    n, h, w = frames.shape[:3]
    h2, w2 = h - h % 2, w - w % 2
    vf = [f"fps={fps_out:g}"] if fps_out else []
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-f", "rawvideo",
           "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", f"{fps_in:g}", "-i", "-",
           "-vf", ",".join(vf + [f"crop={w2}:{h2}:0:0"]), "-c:v", "libx264", "-preset", "ultrafast",
           "-crf", str(crf), "-pix_fmt", "yuv420p", "-f", "matroska", "-"]
    encoded = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True, check=True).stdout
    decode = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", "-",
              "-f", "rawvideo", "-pix_fmt", "bgr24", "-"]
    raw = subprocess.run(decode, input=encoded, capture_output=True, check=True).stdout
    out = np.frombuffer(raw, np.uint8).reshape(-1, h2, w2, 3)
    idx = np.minimum((np.arange(n) * len(out) / n).astype(int), len(out) - 1)
    return np.ascontiguousarray(out[idx])


def augment_window(frames: np.ndarray, rng: np.random.Generator, out_size: tuple[int, int],
                   donors: list[np.ndarray], config: ReuploadConfig = ReuploadConfig()) -> np.ndarray:
    """One re-upload draw applied to every frame [N, H, W, 3] uint8 BGR -> [N, out_h, out_w, 3].

    The result is cropped to the picture inside any black bars (`chain_sdk.video.crop_borders`),
    as `Encoder` does at run time, before the resize to the backbone's input.
    """
    out = frames
    if rng.random() < config.zoom_p:
        out = _zoom(out, rng, config.zoom_scale)
    if rng.random() < config.reframe_p:
        out = _reframe(out, rng, config.reframe_aspects)
    if rng.random() < config.flip_p:
        out = np.ascontiguousarray(out[:, :, ::-1])
    seed = int(rng.integers(2**31))
    if rng.random() < config.photometric_p:
        out = _albu(photometric(seed), out)
    if rng.random() < config.quality_p:
        out = _albu(quality(seed + 1), out)
    if rng.random() < config.overlay_p:
        kind = rng.choice(["caption", "logo", "sticker"])
        if kind == "caption":
            out = _overlay(out, _draw_overlay(rng, SpatialAugmentConfig()))
        else:
            out = _patch_overlay(out, rng, donors, round_mask=kind == "sticker")
    if rng.random() < config.border_p:
        out = _border(out, rng)
    if rng.random() < config.intro_p:
        out = _intro(out, rng, donors, config.intro_fraction)
    if rng.random() < config.drop_p:
        out = _drop(out, rng)
    if rng.random() < config.codec_p:
        fps_out = float(rng.choice([0, 8, 12])) or None
        out = ffmpeg_reencode(out, int(rng.integers(config.codec_crf[0], config.codec_crf[1] + 1)), 25.0, fps_out)
    out = crop_borders(out)
    h, w = out_size
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in out])
