"""Reading and sampling frames with bounded memory.

`sample_clip` picks T frames at the centres of T equal segments (TSN-style; random within each
segment for training via `segment_indices(..., rng=...)`). It trusts the container's frame count
only after verifying it, and chooses between seeking and sequential `grab()` by cost:

Measured on this project's sample clips (OpenCV 5.0 FFmpeg backend, 2 shared CPU cores):
`grab()` costs about 1.1 ms per 720p H.264 frame (0.4 ms at 640x272), a seek plus read 25 to
130 ms at 720p (13 to 60 ms on the small clips), because a seek decodes forward from the
previous keyframe. A seek therefore pays off only when it skips more than about 50 to 100
frames, hence the rule: seek when the stride between wanted frames is at least
`SEEK_MIN_STRIDE` frames, grab() sequentially otherwise. (The 10-minute film at T=25 has a
stride of 572 frames: 26 seeks take about 2 s instead of about 16 s of grabbing.)

Seeking is verified frame by frame (the landing timestamp must be the wanted frame's): it is
exact on indexed containers (MP4) but lands several frames off in MPEG program streams
(cityCC0.mpg), and then sampling falls back to a sequential pass.

Files opened with PyAV (the default, `chain_sdk.video.pyav`) skip all of this: their packets
give every frame's time without decoding (`VideoSource.frame_times`), and only the packets the
wanted frames depend on are decoded (`VideoSource.decode_at`), the same frames either way.

Partial videos: when fewer frames decode than the container claims (beyond `CLAIM_SLACK`), or
the decoder rejects packets, the clip is sampled from what decoded and `sample_clip` warns
(`PartialVideoWarning`; `strict=True` raises `PartialVideoError`). `sample_video` returns the
reason instead, for callers that report it themselves (the Encoder's batch results).
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from collections.abc import Iterator
from typing import Any, NamedTuple

import cv2
import numpy as np

from chain_sdk.errors import EmptyVideoError, PartialVideoError, PartialVideoWarning, VideoDecodeError
from chain_sdk.video.borders import content_box, has_dark_edge
from chain_sdk.video.base import SeekMismatch, VideoSource
from chain_sdk.video.source import open_video

log = logging.getLogger(__name__)

SEEK_MIN_STRIDE = 96  # frames; see the module docstring for the measurement behind it
# Sequential sampling of a stream of unknown length keeps at most this many bytes of frames.
RESERVOIR_BYTES = 256 << 20
# A video is partial when it decodes to fewer frames than its container claims by more than
# this fraction and this many frames (container counts of intact files estimated from the
# duration, as in MPEG program streams, can be a frame or two off).
CLAIM_SLACK = 0.02
CLAIM_SLACK_FRAMES = 2


class Frames(NamedTuple):
    frames: np.ndarray  # uint8 [N, H, W, 3], BGR
    timestamps: np.ndarray  # float64 [N], seconds


class ShortVideoWarning(UserWarning):
    """A video had fewer frames than the clip length, so frames were repeated."""


def segment_indices(n: int, frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of `frames` samples from `n` frames: split [0, n) into `frames` equal segments and
    take each centre (rng None) or a uniformly random frame of each (TSN training sampling).

    With n < frames, segments are shorter than a frame and indices repeat (the nearest frame).
    """
    if n < 1 or frames < 1:
        raise ValueError(f"need n >= 1 and frames >= 1, got n={n}, frames={frames}")
    i = np.arange(frames, dtype=np.int64)
    if rng is None:
        return ((2 * i + 1) * n) // (2 * frames)  # floor((i + 0.5) * n / T), exact in integers
    start = (i * n) // frames
    end = np.maximum(((i + 1) * n) // frames, start + 1)
    return rng.integers(start, end)


def _time_centre_indices(ts: np.ndarray, frames: int) -> np.ndarray:
    """Segment centres in *time* (for variable frame rate): the frame shown at each centre."""
    last = float(ts[-1] - ts[-2]) if len(ts) > 1 else 0.0  # the last frame shows this long
    start, end = float(ts[0]), float(ts[-1]) + last
    centres = start + (np.arange(frames) + 0.5) * (end - start) / frames
    # 1 us of slack: a centre that lands on a frame's start (up to float error) picks that frame
    return np.clip(np.searchsorted(ts, centres + 1e-6, side="right") - 1, 0, len(ts) - 1)


def _is_uniform(ts: np.ndarray) -> bool:
    """Constant frame rate: every timestamp within half a frame of ts[0] + k * step."""
    if len(ts) < 3:
        return True
    step = float(np.median(np.diff(ts)))
    if step <= 0:
        return False
    expected = ts[0] + step * np.arange(len(ts))
    return bool(np.max(np.abs(ts - expected)) < 0.5 * step)


def _resize(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    return cv2.resize(frame, tuple(size), interpolation=cv2.INTER_AREA)


class FrameFit:
    """How decoded frames become a clip: each frame is resized to `size` (W, H) as it arrives,
    so memory holds only small frames, and with `crop_borders` the clip is cropped to the
    picture inside the black bars all its frames share (`chain_sdk.video.borders`).

    The bars are a property of the clip, known only once all its frames are in. A frame whose
    four edges are lit proves the clip has none, and is kept as its resize alone (the common
    case: the result is exactly what it is without crop mode). A frame with a dark edge also
    keeps a work copy at up to twice `size`; when every frame has one, the box is found on the
    resized frames and the cropped picture is resized from the work copies.
    """

    def __init__(self, size: tuple[int, int] | None = None, crop_borders: bool = False) -> None:
        self.size = tuple(size) if size is not None else None
        self.crop_borders = crop_borders

    def frame(self, bgr: np.ndarray) -> Any:
        """What is kept of one decoded frame (pass it to `clip` later)."""
        direct = _resize(bgr, self.size)
        if not self.crop_borders or self.size is None or not has_dark_edge(direct):
            return direct
        h, w = bgr.shape[:2]
        return direct, _resize(bgr, (min(w, 2 * self.size[0]), min(h, 2 * self.size[1])))

    def clip(self, kept: list[Any]) -> np.ndarray:
        """uint8 [T, H, W, 3] from the kept frames, in order."""
        if self.crop_borders and self.size is None:  # native size: crop the frames themselves
            frames = np.stack(kept)
            box = content_box(frames)
            return frames[:, box.top:box.bottom, box.left:box.right]
        if not self.crop_borders or any(isinstance(k, np.ndarray) for k in kept):
            # a frame with four lit edges: the clip has no bars
            return np.stack([k if isinstance(k, np.ndarray) else k[0] for k in kept])
        direct = np.stack([d for d, _ in kept])
        box = content_box(direct)
        if box.is_whole(*direct.shape[1:3]):
            return direct
        work = [w for _, w in kept]
        (h, w), (wh, ww) = direct.shape[1:3], work[0].shape[:2]
        b = box.scaled(wh / h, ww / w)
        return np.stack([_resize(f[b.top:b.bottom, b.left:b.right], self.size) for f in work])

    @staticmethod
    def nbytes(kept: Any) -> int:
        return sum(f.nbytes for f in kept) if isinstance(kept, tuple) else kept.nbytes


class Sampled(NamedTuple):
    """What `sample_video` found: the clip, the frames the video really has (as far as
    sampling found out), and why the video is only partly decodable (None: it is whole)."""

    clip: Frames
    n: int
    partial: str | None = None



def iter_frames(source: Any, fps: float | None = None) -> Any:
    """Yield (frame, timestamp) sequentially, subsampled to at most `fps` frames per second.

    A frame is kept when its timestamp reaches the next slot of the target rate, so the kept
    frames track wall-clock time even for variable frame rate input. Closes what it opened.
    """
    src = open_video(source)
    owned = src is not source
    try:
        next_t: float | None = None
        period = 1.0 / fps if fps else 0.0
        for frame, t in src:
            if period:
                if next_t is not None and t < next_t - 1e-6:
                    continue
                next_t = t + period if next_t is None else next_t + period
                while next_t <= t:
                    next_t += period
            yield frame, t
    finally:
        if owned:
            src.close()


def read_frames(source: Any, fps: float | None = None, max_frames: int | None = None) -> Frames:
    """Decode sequentially (subsampled to `fps` when given), stopping after `max_frames`."""
    src = open_video(source)
    frames: list[np.ndarray] = []
    stamps: list[float] = []
    try:
        for frame, t in iter_frames(src, fps):
            if max_frames is not None and len(frames) >= max_frames:
                break
            frames.append(frame)
            stamps.append(t)
    finally:
        if src is not source:
            src.close()
    if not frames:
        _raise_empty(src)
    return Frames(np.stack(frames), np.asarray(stamps, dtype=np.float64))


def _raise_empty(src: VideoSource) -> None:
    if src.frame_count:
        raise VideoDecodeError(src.description, f"the container claims {src.frame_count} frames "
                               "but none could be decoded (corrupt or truncated data)")
    raise EmptyVideoError(src.description, "no frames")


def sample_clip(source: Any, frames: int = 25, resize: tuple[int, int] | None = None,
                rng: np.random.Generator | None = None, crop_borders: bool = False,
                strict: bool = False, device: str | None = None) -> Frames:
    """`frames` frames at segment centres (random within segments with `rng`), each resized to
    `resize=(W, H)` with INTER_AREA when given, after cropping the clip's black bars with
    `crop_borders` (see `FrameFit`). Memory is bounded whatever the video length.

    A video that decodes only partly (truncated, corrupt packets, a stream that stalled) is
    sampled from the frames that decode, with a `PartialVideoWarning`; `strict=True` raises
    `PartialVideoError` instead.

    `device` ("cpu", "cuda:N"; needs torch): frames are resized and cropped there by torch ops
    (`chain_sdk.video.tensor_fit.TensorFrameFit`) and the clip is a uint8 torch tensor on it;
    with a GPU decoder (`open_video(path, decoder="nvdec")`) the frames never leave the GPU."""
    found = sample_video(source, frames, resize, rng, crop_borders, device)
    description = getattr(source, "description", None) or str(source)
    if found.partial:
        if strict:
            raise PartialVideoError(description, found.partial)
        warnings.warn(PartialVideoWarning(description, found.partial), stacklevel=2)
    if found.n < frames:
        warnings.warn(f"{description}: only {found.n} frames for a {frames}-frame clip; "
                      "repeating the nearest frames", ShortVideoWarning, stacklevel=2)
    return found.clip


def sample_video(source: Any, frames: int = 25, resize: tuple[int, int] | None = None,
                 rng: np.random.Generator | None = None, crop_borders: bool = False,
                 device: str | None = None) -> Sampled:
    """`sample_clip` without warnings: the clip, the frame count and the partial-decode reason,
    for callers that report them their own way (`Encoder.encode_batch`)."""
    if device is None:
        fit: Any = FrameFit(resize, crop_borders)
    else:
        from chain_sdk.video.tensor_fit import TensorFrameFit

        fit = TensorFrameFit(resize, crop_borders, device)
    src = open_video(source)
    try:
        return _sample(src, frames, fit, rng)
    finally:
        if src is not source:
            src.close()


class WindowClip(NamedTuple):
    """One window of a stream: [start, end) in seconds and its clip uint8 [T, H, W, 3]."""

    start: float
    end: float
    frames: np.ndarray


def sample_windows(source: Any, frames: int, window: float = 10.0, hop: float = 5.0,
                   resize: tuple[int, int] | None = None, crop_borders: bool = False) -> Iterator[WindowClip]:
    """Clips of sliding windows [start, start + window) every `hop` seconds, decoded once.

    A window's `frames` frames are the frames shown at its segment centres (in time), the rule
    `sample_clip` applies to a whole clip, with the same `FrameFit`. Memory holds only the open
    windows' kept frames (window / hop windows of T frames), whatever the stream length. A
    stream shorter than one window yields one clip over what there was.
    """
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive, got {window}, {hop}")
    fit = FrameFit(resize, crop_borders)
    offsets = (np.arange(frames) + 0.5) * window / frames
    open_windows: deque[dict] = deque()
    next_start: float | None = None
    previous: tuple[Any, float] | None = None  # (raw frame, time) shown until the next one
    emitted = 0
    src = open_video(source)
    try:
        for frame, t in iter_frames(src):
            if next_start is None:
                next_start = t
            while next_start <= t:
                open_windows.append({"start": next_start, "wanted": next_start + offsets, "frames": []})
                next_start += hop
            shown = previous if previous is not None else (frame, t)
            kept: Any = None
            for win in open_windows:  # wanted times before t are showing `shown`
                while len(win["frames"]) < frames and win["wanted"][len(win["frames"])] < t:
                    if kept is None:
                        kept = fit.frame(shown[0])
                    win["frames"].append(kept)
            while open_windows and len(open_windows[0]["frames"]) == frames:
                win = open_windows.popleft()
                emitted += 1
                yield WindowClip(float(win["start"]), float(win["start"] + window), fit.clip(win["frames"]))
            previous = (frame, t)
    finally:
        if src is not source:
            src.close()
    if emitted == 0 and open_windows and previous is not None:
        win = open_windows[0]  # shorter than one window: fill the tail with the last frame
        last = fit.frame(previous[0])
        win["frames"].extend([last] * (frames - len(win["frames"])))
        yield WindowClip(float(win["start"]), float(previous[1]), fit.clip(win["frames"]))


def partial_reason(src: VideoSource, n: int) -> str | None:
    """Why `src` decoded only partly, or None: fewer frames than the container claims
    (beyond `CLAIM_SLACK`), or packets the decoder rejected."""
    reasons = []
    claimed = src.frame_count
    if claimed and n < claimed - max(CLAIM_SLACK_FRAMES, CLAIM_SLACK * claimed):
        reasons.append(f"the container claims {claimed} frames but only {n} decoded "
                       f"({100 * n / claimed:.0f} %): truncated, corrupt or stalled")
    errors = getattr(src, "decode_errors", 0)
    if errors:
        reasons.append(f"{errors} packets could not be decoded (corrupt data)")
    damaged = getattr(src, "damaged_frames", 0)
    if damaged:
        reasons.append(f"{damaged} decoded frames are damaged (the decoder concealed corrupt data)")
    return "; ".join(reasons) or None


def _sample(src: VideoSource, frames: int, fit: FrameFit, rng) -> Sampled:
    found = _sample_any(src, frames, fit, rng)
    return Sampled(found.clip, found.n, partial_reason(found.source, found.n))


class _Found(NamedTuple):
    clip: Frames
    n: int
    source: VideoSource  # the source that was read last (sampling may reopen)


def _sample_any(src: VideoSource, frames: int, fit: FrameFit, rng) -> _Found:
    if src.exact_seek and src.frame_count:
        wanted = segment_indices(src.frame_count, frames, rng)
        return _Found(_sample_by_seeking(src, wanted, fit), src.frame_count, src)
    times = src.frame_times()
    if times is not None and len(times):
        try:
            return _Found(_sample_indexed(src, times, frames, fit, rng), len(times), src)
        except SeekMismatch as exc:
            log.info("%s: %s; sampling sequentially", src.description, exc)
            src = src.reopen()
    claimed = src.frame_count
    if src.seekable and src.fps and claimed and claimed / frames >= SEEK_MIN_STRIDE:
        if _header_verified(src, claimed):
            wanted = segment_indices(claimed, frames, rng)
            try:
                return _Found(_sample_by_seeking(src, wanted, fit, verify_fps=src.fps), claimed, src)
            except SeekMismatch as exc:
                log.info("%s: %s; sampling sequentially", src.description, exc)
        else:
            log.info("%s: header claims %d frames but does not hold up; counting by decoding",
                     src.description, claimed)
        src = src.reopen()
    if src.reopenable:
        return _sample_sequential(src, frames, fit, rng, claimed)
    return _sample_reservoir(src, frames, fit, rng)


def _wanted(ts: np.ndarray, frames: int, rng) -> np.ndarray:
    """Segment centres by index for constant frame rate (or random training samples), by time
    for variable frame rate."""
    n = len(ts)
    return (segment_indices(n, frames, rng) if rng is not None or _is_uniform(ts)
            else _time_centre_indices(ts, frames))


def _sample_indexed(src: VideoSource, ts: np.ndarray, frames: int, fit: FrameFit, rng) -> Frames:
    """Frame times known from the container: decode only the wanted frames."""
    wanted = _wanted(ts, frames, rng)
    got = {i: fit.frame(frame) for i, frame in src.decode_at(np.unique(wanted).tolist())}
    return Frames(fit.clip([got[i] for i in wanted.tolist()]), ts[wanted])


def _header_verified(src: VideoSource, claimed: int) -> bool:
    """The claimed count holds when the last claimed frame decodes at the time the claimed
    rate puts it and nothing follows it (catches truncation, padded headers and VFR)."""
    src.seek(claimed - 1)
    if not src.grab():
        return False
    expected = (claimed - 1) / src.fps  # type: ignore[operator]
    on_time = abs(src.timestamp - expected) <= 0.5 / src.fps  # type: ignore[operator]
    return on_time and not src.grab()


def _sample_by_seeking(src: VideoSource, wanted: np.ndarray, fit: FrameFit,
                       verify_fps: float | None = None) -> Frames:
    out, stamps = [], []
    cache: dict[int, tuple[Any, float]] = {}
    for idx in wanted.tolist():
        if idx not in cache:
            src.seek(idx)
            if not src.grab():
                raise SeekMismatch(f"seek to frame {idx} failed")
            if verify_fps and abs(src.timestamp - idx / verify_fps) > 0.5 / verify_fps:
                raise SeekMismatch(f"seek to frame {idx} landed at t={src.timestamp:.3f}s")
            cache = {idx: (fit.frame(src.retrieve()), src.timestamp)}  # keep only the last
        out.append(cache[idx][0])
        stamps.append(cache[idx][1])
    return Frames(fit.clip(out), np.asarray(stamps, dtype=np.float64))


def _sample_sequential(src: VideoSource, frames: int, fit: FrameFit, rng, claimed: int | None
                       ) -> _Found:
    """One grab() pass that retrieves the frames the claimed count asks for and records every
    timestamp; a second pass only when the count was wrong or the frame rate variable."""
    first_guess = segment_indices(claimed, frames, rng) if claimed else np.zeros(0, np.int64)
    got, ts = _grab_pass(src, set(first_guess.tolist()), fit)
    n = len(ts)
    if n == 0:
        _raise_empty(src)
    uniform = _is_uniform(ts)
    wanted = first_guess
    if claimed != n or not uniform:
        if claimed:
            log.info("%s: container claims %s frames, decoded %d%s", src.description, claimed, n,
                     "" if uniform else " (variable frame rate: sampling by time)")
        wanted = _wanted(ts, frames, rng)
        if not set(wanted.tolist()) <= set(got):
            first = src
            src = src.reopen()
            got, _ = _grab_pass(src, set(wanted.tolist()), fit, stop=int(wanted.max()) + 1)
            for count in ("decode_errors", "damaged_frames"):  # seen in the first pass
                setattr(src, count, getattr(first, count, 0))
    return _Found(Frames(fit.clip([got[i] for i in wanted.tolist()]), ts[wanted]), n, src)


def _grab_pass(src: VideoSource, wanted: set[int], fit: FrameFit, stop: int | None = None
               ) -> tuple[dict[int, Any], np.ndarray]:
    got: dict[int, Any] = {}
    ts: list[float] = []
    while (stop is None or len(ts) < stop) and src.grab():
        ts.append(src.timestamp)
        if src.index in wanted:
            got[src.index] = fit.frame(src.retrieve())
    return got, np.asarray(ts, dtype=np.float64)


def _sample_reservoir(src: VideoSource, frames: int, fit: FrameFit, rng) -> _Found:
    """One pass over a stream that cannot be read twice and whose length is unknown: keep every
    `stride`-th frame, doubling the stride whenever the kept frames exceed the memory budget,
    then take the kept frame nearest each wanted index (exact while the stream fits)."""
    kept: dict[int, tuple[Any, float]] = {}
    stride, capacity = 1, None
    n = 0
    while src.grab():
        n += 1
        if src.index % stride:
            continue
        frame = fit.frame(src.retrieve())
        if capacity is None:
            capacity = max(4 * frames, RESERVOIR_BYTES // max(fit.nbytes(frame), 1))
        kept[src.index] = (frame, src.timestamp)
        if len(kept) > capacity:
            stride *= 2
            kept = {i: v for i, v in kept.items() if i % stride == 0}
    if n == 0:
        _raise_empty(src)
    if stride > 1:
        log.info("%s: %d frames exceeded the sampling buffer; frames are the nearest kept "
                 "(every %d-th)", src.description, n, stride)
    keys = np.fromiter(kept, dtype=np.int64)
    wanted = segment_indices(n, frames, rng)
    nearest = keys[np.abs(keys[None, :] - wanted[:, None]).argmin(axis=1)]
    clip = Frames(fit.clip([kept[i][0] for i in nearest.tolist()]),
                  np.asarray([kept[i][1] for i in nearest.tolist()], dtype=np.float64))
    return _Found(clip, n, src)
