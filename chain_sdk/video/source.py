"""Video sources: one cursor interface over files, URLs, GStreamer pipelines, cameras,
numpy arrays and iterators of frames.

Every source yields BGR uint8 frames of shape (H, W, 3), OpenCV's convention. Arrays and
iterators are taken as BGR too; pass `color="RGB"` to `open_video` when yours are RGB.

The cursor interface (`grab`, `retrieve`, `timestamp`, optional `seek`) mirrors
`cv2.VideoCapture` on purpose: `grab()` decodes without copying the picture out, which is what
makes skipping frames cheap, and sampling code can treat every kind of source the same way.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from chain_sdk.errors import (
    EmptyVideoError,
    NoVideoStreamError,
    UnsupportedVideoError,
    VideoDecodeError,
    VideoOpenError,
)

from chain_sdk.video.base import DEFAULT_FPS, SeekMismatch, VideoSource  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

# How long a network stream may stall (at open and between reads) before it is taken as ended;
# a file that ends early this way is a partial video (`PartialVideoWarning`, or an error when
# strict). OpenCV's own default is also 30 s.
STREAM_TIMEOUT_S = 30.0

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_STREAM_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "udp", "tcp", "srt")


def _backend_available(name: str) -> bool:
    """Whether this OpenCV build has a video I/O backend (`FFMPEG`, `GStreamer`, ...)."""
    info = cv2.getBuildInformation()
    for line in info.splitlines():
        if line.strip().lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip().upper().startswith("YES")
    return False


class CaptureSource(VideoSource):
    """A `cv2.VideoCapture`: file, URL, GStreamer pipeline or camera."""

    def __init__(self, target: str | int, api: int, description: str, *, reopenable: bool,
                 seekable: bool, params: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.description = description
        self._target, self._api, self._params = target, api, params
        self.reopenable, self.seekable = reopenable, seekable
        try:
            self._cap = cv2.VideoCapture(target, api, list(params))
        except cv2.error as exc:  # some backends raise instead of returning "not opened"
            raise VideoOpenError(description, f"OpenCV could not open it: {exc}") from exc
        if not self._cap.isOpened():
            raise VideoOpenError(description, _open_failure_reason(target))
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.fps = float(fps) if np.isfinite(fps) and 0 < fps < 1000 else None
        self.frame_count = int(count) if np.isfinite(count) and count > 0 else None
        self._last_ms = -1.0

    def grab(self) -> bool:
        try:
            ok = bool(self._cap.grab())
        except cv2.error as exc:
            raise VideoDecodeError(self.description, f"decoder failed at frame {self.index + 1}: {exc}") from exc
        if not ok:
            return False
        self.index += 1
        self.timestamp = self._frame_time()
        return True

    def _frame_time(self) -> float:
        """The container's timestamp when it is sane (increasing), else index / fps."""
        ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        if np.isfinite(ms) and ms >= 0 and (self.index == 0 or ms > self._last_ms):
            self._last_ms = ms
            return ms / 1000.0
        return self.index / (self.fps or DEFAULT_FPS)

    def retrieve(self) -> np.ndarray:
        ok, frame = self._cap.retrieve()
        if not ok or frame is None:
            raise VideoDecodeError(self.description, f"could not retrieve frame {self.index}")
        if frame.ndim == 2:  # some backends hand out grey pictures
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        return frame

    def seek(self, index: int) -> bool:
        """Position so that the next grab() returns frame `index`. Callers verify the landing
        frame's timestamp: OpenCV's seek is exact on indexed containers (MP4, MKV) but lands
        on the wrong frame in e.g. MPEG program streams (measured on cityCC0.mpg)."""
        if not self.seekable:
            return super().seek(index)
        ok = bool(self._cap.set(cv2.CAP_PROP_POS_FRAMES, float(index)))
        self.index = index - 1
        self._last_ms = -1.0
        return ok

    def reopen(self) -> "CaptureSource":
        if not self.reopenable:
            return super().reopen()  # type: ignore[return-value]
        self.close()
        again = CaptureSource(self._target, self._api, self.description,
                              reopenable=True, seekable=self.seekable, params=self._params)
        again.frame_count = self.frame_count  # the same file (the count may have been refined)
        return again

    def close(self) -> None:
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()
            self._cap = None  # type: ignore[assignment]


def _open_failure_reason(target: str | int) -> str:
    if isinstance(target, int):
        return f"no camera at index {target} (or it is busy)"
    if "!" in str(target):
        return "GStreamer could not start the pipeline (check the element names and caps)"
    if _URL.match(str(target)):
        return "the stream could not be opened (unreachable, refused, or not a video)"
    return "no decoder could open it (not a video, or an unsupported container/codec)"


class ArraySource(VideoSource):
    """Frames held in memory: a (T, H, W, 3) uint8 array. Seeking is exact and free."""

    seekable = True
    exact_seek = True
    reopenable = True

    def __init__(self, frames: np.ndarray, *, fps: float | None = None, color: str = "BGR",
                 description: str = "<array>") -> None:
        super().__init__()
        self.description = description
        _check_frames_array(frames, description)
        if len(frames) == 0:
            raise EmptyVideoError(description, "the array holds zero frames")
        self._frames = frames
        self._rgb = _check_color(color, description)
        self.fps = float(fps or DEFAULT_FPS)
        self.frame_count = len(frames)

    def grab(self) -> bool:
        if self.index + 1 >= len(self._frames):
            return False
        self.index += 1
        self.timestamp = self.index / self.fps  # type: ignore[operator]
        return True

    def retrieve(self) -> np.ndarray:
        frame = self._frames[self.index]
        return np.ascontiguousarray(frame[..., ::-1]) if self._rgb else frame

    def seek(self, index: int) -> bool:
        self.index = index - 1
        return 0 <= index < len(self._frames)

    def reopen(self) -> "ArraySource":
        self.index = -1
        return self


class IterableSource(VideoSource):
    """An iterable or iterator of (H, W, 3) uint8 frames, read once, front to back."""

    def __init__(self, frames: Iterable[Any], *, fps: float | None = None, color: str = "BGR",
                 description: str = "<iterator>") -> None:
        super().__init__()
        self.description = description
        self._it = iter(frames)
        self._rgb = _check_color(color, description)
        self.fps = float(fps or DEFAULT_FPS)
        self._frame: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None

    def grab(self) -> bool:
        try:
            frame = next(self._it)
        except StopIteration:
            return False
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise UnsupportedVideoError(
                self.description,
                f"frame {self.index + 1} has shape {frame.shape} dtype {frame.dtype}; "
                "expected (H, W, 3) uint8")
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise UnsupportedVideoError(
                self.description,
                f"frame {self.index + 1} has shape {frame.shape}, earlier frames {self._shape}")
        self._frame = frame
        self.index += 1
        self.timestamp = self.index / self.fps  # type: ignore[operator]
        return True

    def retrieve(self) -> np.ndarray:
        if self._frame is None:
            raise VideoDecodeError(self.description, "retrieve() before grab()")
        return np.ascontiguousarray(self._frame[..., ::-1]) if self._rgb else self._frame


def _check_color(color: str, description: str) -> bool:
    if color.upper() not in ("BGR", "RGB"):
        raise UnsupportedVideoError(description, f"color must be 'BGR' or 'RGB', got {color!r}")
    return color.upper() == "RGB"


def _check_frames_array(frames: np.ndarray, description: str) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise UnsupportedVideoError(
            description, f"array of shape {frames.shape}; expected (T, H, W, 3) frames")
    if frames.dtype != np.uint8:
        raise UnsupportedVideoError(
            description, f"array of dtype {frames.dtype}; expected uint8 (0..255) frames")
    if frames.shape[1] == 0 or frames.shape[2] == 0:
        raise UnsupportedVideoError(description, f"frames of zero size {frames.shape[1:3]}")


DECODERS = ("auto", "pyav", "opencv", "nvdec")


def open_video(source: Any, *, fps: float | None = None, color: str = "BGR",
               decoder: str = "auto", device: str = "cuda") -> VideoSource:
    """Open anything that is a video as a `VideoSource`.

    - `str` / `os.PathLike`: a file path; a URL (`http(s)://`, `rtsp://`, ...) opened with
      FFmpeg; a string containing `!` that is not an existing path is a GStreamer pipeline
      (needs an OpenCV built with GStreamer, e.g. the distribution's python3-opencv; it should
      end in `appsink`).
    - `int`: a camera index (>= 0).
    - `numpy.ndarray` (T, H, W, 3) uint8, or an iterable/iterator of (H, W, 3) uint8 frames;
      BGR unless `color="RGB"`; timed at `fps` (default 25).
    - an existing `VideoSource` is returned as is.

    Files are decoded with PyAV when it is installed (`decoder="auto"`: it decodes only the
    frames sampling needs, see `chain_sdk.video.pyav`), else with OpenCV; `decoder="opencv"`
    or `"pyav"` forces one. `decoder="nvdec"` decodes files on the NVIDIA GPU `device`
    (`chain_sdk.video.nvdec`: frames as CUDA tensors; `DecoderUnavailableError` where it cannot
    run). URLs, pipelines and cameras always go through OpenCV.

    Raises `VideoOpenError` (missing/unopenable), `EmptyVideoError` (zero-byte file, empty
    array), `NoVideoStreamError` (a media file without video, e.g. audio only),
    `UnsupportedVideoError` (wrong array layout, unknown input kind, no GStreamer).
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    if isinstance(source, VideoSource):
        return source
    if isinstance(source, np.ndarray):
        return ArraySource(source, fps=fps, color=color, description=f"<array {source.shape}>")
    if isinstance(source, bool):
        raise UnsupportedVideoError(repr(source), "a bool is not a video source")
    if isinstance(source, (int, np.integer)):
        return _open_camera(int(source))
    if isinstance(source, (str, os.PathLike)):
        return _open_string(os.fspath(source), decoder, device)
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise UnsupportedVideoError("<bytes>", "encoded bytes are not supported; write them to a file")
    if isinstance(source, Iterable):
        return IterableSource(source, fps=fps, color=color, description=f"<{type(source).__name__}>")
    raise UnsupportedVideoError(
        repr(source)[:80],
        f"unsupported input kind {type(source).__name__}; pass a path, URL, GStreamer pipeline, "
        "camera index, (T,H,W,3) uint8 array or an iterable of (H,W,3) uint8 frames")


def _open_camera(index: int) -> VideoSource:
    if index < 0:  # OpenCV's "any camera" (-1) crashes the process in its V4L2 backend
        raise UnsupportedVideoError(f"camera {index}", "camera indices start at 0 "
                                    "(the device number, e.g. 0 for /dev/video0)")
    return CaptureSource(index, cv2.CAP_ANY, f"camera {index}", reopenable=False, seekable=False)


def _open_string(text: str, decoder: str, device: str = "cuda") -> VideoSource:
    if "!" in text and not os.path.exists(text):  # an existing file named "a!b.mp4" is a file
        if not _backend_available("GStreamer"):
            raise UnsupportedVideoError(
                text, "this OpenCV build has no GStreamer support (pip's opencv wheels lack it); "
                "use an OpenCV built with GStreamer, e.g. the system python3-opencv")
        return CaptureSource(text, cv2.CAP_GSTREAMER, text, reopenable=False, seekable=False)
    ffmpeg = cv2.CAP_FFMPEG if _backend_available("FFMPEG") else cv2.CAP_ANY
    if _URL.match(text) and not text.lower().startswith("file://"):
        scheme = text.split(":", 1)[0].lower()
        if scheme not in _STREAM_SCHEMES:
            raise UnsupportedVideoError(text, f"unsupported URL scheme {scheme!r}")
        files = scheme in ("http", "https")  # a file over HTTP can be read again; a live stream not
        ms = int(STREAM_TIMEOUT_S * 1000)
        return CaptureSource(text, ffmpeg, text, reopenable=files, seekable=files,
                             params=(cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms))
    path = Path(text[len("file://"):] if text.lower().startswith("file://") else text)
    if not path.exists():
        raise VideoOpenError(text, "no such file")
    if path.is_dir():
        raise VideoOpenError(text, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise EmptyVideoError(text, "the file is empty (0 bytes)")
    from chain_sdk.video import pyav  # a subclass of VideoSource; av itself is imported lazily

    if decoder == "nvdec":
        from chain_sdk.video.nvdec import NvdecSource  # torch and torchcodec imported there

        return NvdecSource(str(path), text, device)
    if decoder != "opencv" and pyav.available():
        try:
            return pyav.PyAVSource(str(path), text)
        except VideoOpenError:
            if decoder == "pyav":
                raise
            # FFmpeg through PyAV refused it: let OpenCV try (and explain) below
    elif decoder == "pyav":
        raise UnsupportedVideoError(text, "decoder='pyav' needs PyAV: pip install av")
    try:
        capture = CaptureSource(str(path), ffmpeg, text, reopenable=True, seekable=True)
    except VideoOpenError:
        kinds = pyav.stream_kinds(str(path)) if pyav.available() else None
        if kinds is not None and "video" not in kinds:  # a valid media file, but no pictures
            raise NoVideoStreamError(text, f"no video stream (has {', '.join(kinds) or 'no streams'})") from None
        container = _sniff_container(path)
        if container:  # a known container that no decoder accepts: damaged, not foreign
            raise VideoDecodeError(text, f"looks like {container} but cannot be opened: corrupt or "
                                   "truncated data (e.g. an MP4 whose index, the moov box, is "
                                   "missing)") from None
        raise
    if pyav.available():  # OpenCV's count includes the frames an edit list hides: use the packets'
        capture.frame_count = pyav.count_frames(str(path)) or capture.frame_count
    return capture


def _sniff_container(path: Path) -> str | None:
    """Name the container from its magic bytes, or None."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "an MP4/QuickTime file"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "an AVI file"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "a Matroska/WebM file"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "an MPEG program/elementary stream"
    if head[:3] == b"FLV":
        return "an FLV file"
    return None

