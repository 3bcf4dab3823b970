"""GPU decoding: NVDEC through torchcodec's CUDA decoder, frames kept on the GPU.

`NvdecSource` picks the frames exactly as the CPU path does and decodes them on the GPU:

- the frame index (every frame's presentation time, the frame count, damaged packets) comes
  from demuxing the file with PyAV (`PyAVSource.frame_times`, packets only, no decoding), so
  sampling chooses the same frame indices as with the CPU decoders;
- `decode_at(indices)` asks torchcodec's CUDA decoder (`VideoDecoder(device="cuda:N")`, its
  default "nvdec" backend) for the frames played at those frames' stream times, and checks that
  each frame that comes back has the wanted presentation time (else `SeekMismatch`, and the
  sampler decodes sequentially: on the CPU, through the PyAV cursor, frames uploaded; so are
  MPEG program and transport streams, whose timestamps do not name frames one to one);
- frames are uint8 [H, W, 3] BGR torch tensors on the GPU (torchcodec's RGB, channels
  reversed): `chain_sdk.video.tensor_fit.TensorFrameFit` resizes and crops them there and the
  clip goes to onnxruntime-CUDA or TensorRT as a device tensor.

Pixels differ a little from the CPU decoders' (NVDEC's YUV -> RGB conversion is not swscale's
BT.601 bicubic one), so codes can differ in bits whose logits are near 0: scripts/gpu_check.sh
step 6 measures the agreement with the CPU path on the sample clips. Damage is found as on the
CPU where the packets show it (corrupt or missing packets: no frame index, so sequential CPU
decoding with its counters); frames NVDEC conceals errors in are not counted.

Needs torch with CUDA and torchcodec (the `nvdec` extra) and an NVIDIA GPU with NVDEC; where any
is missing, opening raises `DecoderUnavailableError` saying which. torch and torchcodec are
imported only here, when a GPU decoder is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from chain_sdk.backends.base import parse_device
from chain_sdk.errors import DecoderUnavailableError, VideoOpenError
from chain_sdk.video.base import SeekMismatch, VideoSource
from chain_sdk.video.pyav import PyAVSource

log = logging.getLogger(__name__)

DECODE_CHUNK = 8  # frames asked of the decoder at once: bounds GPU memory at 4K (8 x 24 MB)
PTS_TOLERANCE_S = 1e-4  # a returned frame is the wanted one when its pts is this close


def require() -> Any:
    """torchcodec's VideoDecoder class, or DecoderUnavailableError naming what is missing."""
    try:
        import torch
    except ImportError as exc:
        raise DecoderUnavailableError(f"GPU decoding needs torch with CUDA ({exc}); "
                                      "pip install \".[nvdec]\"") from exc
    if not torch.cuda.is_available():
        raise DecoderUnavailableError(
            f"GPU decoding needs a CUDA device; torch {torch.__version__} sees none "
            f"(CUDA build: {torch.version.cuda or 'no, a CPU wheel'})")
    try:
        from torchcodec.decoders import VideoDecoder
    except ImportError as exc:
        raise DecoderUnavailableError(f"GPU decoding needs torchcodec ({exc}); "
                                      "pip install \".[nvdec]\"") from exc
    except (OSError, RuntimeError) as exc:  # its libraries: FFmpeg, CUDA libraries of the wheel
        raise DecoderUnavailableError(f"torchcodec is installed but cannot load: {exc}") from exc
    return VideoDecoder


def available() -> bool:
    """Whether a GPU decoder can be opened here (torch with CUDA, a device, torchcodec)."""
    try:
        require()
    except DecoderUnavailableError:
        return False
    return True


class NvdecSource(VideoSource):
    """A video file decoded on an NVIDIA GPU (first video stream); see the module docstring.

    `decode_at` yields uint8 [H, W, 3] BGR CUDA tensors; the sequential cursor (`grab`,
    `retrieve`: the fallback where the frame index cannot be trusted) yields host numpy frames.
    """

    seekable = False  # sampling uses frame_times() / decode_at()
    reopenable = True

    def __init__(self, path: str, description: str, device: str = "cuda") -> None:
        super().__init__()
        kind, index = parse_device(device)
        if kind != "cuda":
            raise DecoderUnavailableError(f"the NVDEC decoder runs on a CUDA device, not {device!r}")
        decoder_class = require()
        self.description, self._path, self.device = description, path, f"cuda:{index}"
        self._index = PyAVSource(path, description)  # VideoOpenError etc. as for the CPU path
        self.fps, self.frame_count = self._index.fps, self._index.frame_count
        try:
            self._decoder = decoder_class(path, device=self.device, dimension_order="NHWC",
                                          seek_mode="exact")
        except (RuntimeError, ValueError) as exc:
            self._index.close()
            raise VideoOpenError(description, f"torchcodec could not open it on {self.device}: {exc}") from exc
        fallback = getattr(self._decoder, "cpu_fallback", None)
        if fallback:  # torchcodec decodes on the CPU when NVDEC lacks the codec
            log.warning("%s: %s", description, fallback)

    # Damage is counted by the PyAV side, which reads every packet (see chain_sdk.video.pyav).
    @property
    def decode_errors(self) -> int:
        return self._index.decode_errors

    @decode_errors.setter
    def decode_errors(self, n: int) -> None:
        self._index.decode_errors = n

    @property
    def damaged_frames(self) -> int:
        return self._index.damaged_frames

    @damaged_frames.setter
    def damaged_frames(self, n: int) -> None:
        self._index.damaged_frames = n

    def frame_times(self) -> np.ndarray | None:
        times = self._index.frame_times()
        self.frame_count = self._index.frame_count
        return times

    def decode_at(self, indices: Sequence[int]) -> Iterator[tuple[int, Any]]:
        """(index, BGR CUDA tensor) of each wanted frame, ascending; `SeekMismatch` when the
        decoder returns a frame other than the one asked for (by presentation time)."""
        times = self._index.frame_times()
        assert times is not None, "decode_at needs the frame index (frame_times() is None)"
        if self._index.in_order_only:  # timestamps there do not name frames one to one
            raise SeekMismatch("MPEG program/transport stream: frames are found by decoding in order")
        wanted = sorted(set(int(i) for i in indices))
        request = stream_times(times, wanted, self._index.origin_seconds)
        for start in range(0, len(wanted), DECODE_CHUNK):
            chunk = wanted[start:start + DECODE_CHUNK]
            try:
                batch = self._decoder.get_frames_played_at(request[start:start + DECODE_CHUNK].tolist())
            except (RuntimeError, IndexError) as exc:
                raise SeekMismatch(f"torchcodec could not decode frames {chunk[:3]}...: {exc}") from exc
            got = np.asarray(batch.pts_seconds.cpu(), dtype=np.float64)
            expected = times[chunk] + self._index.origin_seconds
            off = np.flatnonzero(np.abs(got - expected) > PTS_TOLERANCE_S)
            if len(off):
                i = int(off[0])
                raise SeekMismatch(f"frame {chunk[i]}: asked for t={expected[i]:.4f}s, "
                                   f"the GPU decoder gave t={got[i]:.4f}s")
            for i, idx in enumerate(chunk):
                yield idx, batch.data[i].flip(-1)  # RGB -> BGR, as the CPU decoders give

    # The sequential cursor: PyAV on the CPU (only where the frame index cannot be trusted).
    def grab(self) -> bool:
        ok = self._index.grab()
        self.index, self.timestamp = self._index.index, self._index.timestamp
        return ok

    def retrieve(self) -> np.ndarray:
        return self._index.retrieve()

    def reopen(self) -> "NvdecSource":
        self.close()
        return NvdecSource(self._path, self.description, self.device)

    def close(self) -> None:
        index = getattr(self, "_index", None)
        if index is not None:
            index.close()
        self._decoder = None


def stream_times(times: np.ndarray, indices: Sequence[int], origin_s: float) -> np.ndarray:
    """The stream times (s) to ask a decoder's "frame played at t" for frames `indices` of a
    video whose frames start at `times` (from frame 0, at stream time `origin_s`): a quarter of
    the way into each frame, so float rounding of t never lands on the frame before."""
    times = np.asarray(times, dtype=np.float64)
    idx = np.asarray(indices, dtype=np.int64)
    gaps = np.diff(times)
    last = float(np.median(gaps)) if len(gaps) else 0.04
    shown = np.append(gaps, last)[idx]  # how long each wanted frame is shown
    return origin_s + times[idx] + 0.25 * shown
