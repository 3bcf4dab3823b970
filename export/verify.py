"""Parity of a candidate model (fp16 / int8 ONNX, or a TensorRT engine) against a reference, on real video.

Hash codes are compared the way they are used: bit agreement (fraction of equal bits) and mean
Hamming drift (bits flipped per code), never `allclose` on ±1 outputs. Both models see the
clips the Encoder itself would hash (`chain_sdk.video.sample_windows`, black bars cropped) and
run through the Encoder's own backends (onnxruntime, or TensorRT for an engine directory).

    chain-export verify --reference MODEL --candidate MODEL_INT8 --videos a.mp4 b.mp4
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from chain_sdk.codes import hamming_distance
from chain_sdk.contract import ModelContract, read_model_dir
from chain_sdk.encoder import Encoder
from chain_sdk.errors import ModelError, ModelMismatchError
from chain_sdk.video import sample_windows

log = logging.getLogger(__name__)

CONTRACT_KEYS = ("bits", "frames", "input_height", "input_width", "color_order", "normalization",
                 "model_version")


@dataclass
class ParityReport:
    clips: int
    bits: int
    bit_agreement: float  # fraction of equal bits over all clips
    mean_hamming: float  # mean number of differing bits per code
    max_hamming: int
    identical_codes: float  # fraction of clips whose codes are bit-identical

    def __str__(self) -> str:
        return (f"clips={self.clips} bits={self.bits} bit_agreement={self.bit_agreement:.5f} "
                f"mean_hamming={self.mean_hamming:.3f} max_hamming={self.max_hamming} "
                f"identical_codes={self.identical_codes:.3f}")


def compare_codes(reference: np.ndarray, candidate: np.ndarray) -> ParityReport:
    """Parity of packed uint8 codes [N, bits/8]."""
    if reference.shape != candidate.shape or reference.dtype != np.uint8 or candidate.dtype != np.uint8:
        raise ModelMismatchError(f"codes differ in shape/dtype: {reference.shape} {reference.dtype} vs "
                                 f"{candidate.shape} {candidate.dtype}")
    diff = np.asarray(hamming_distance(reference, candidate)).reshape(-1)
    bits = reference.shape[1] * 8
    return ParityReport(clips=len(diff), bits=bits, bit_agreement=float(1 - diff.sum() / max(1, len(diff) * bits)),
                        mean_hamming=float(diff.mean()) if len(diff) else 0.0,
                        max_hamming=int(diff.max(initial=0)), identical_codes=float((diff == 0).mean()))


def parity_clips(videos: Sequence[str | os.PathLike], frames: int, size: tuple[int, int], *,
                 clips_per_video: int = 4, window: float = 3.0) -> np.ndarray:
    """Clips [N, T, H, W, 3] (BGR uint8) as the Encoder prepares them: the first `clips_per_video`
    windows of `window` seconds of each video (`size` is (H, W)). Taking the first windows keeps
    the film's held-out time (>= 300 s) out of every parity run."""
    from tqdm.auto import tqdm

    clips = []
    for video in tqdm(list(videos), desc="sampling clips", leave=False):
        for i, clip in enumerate(sample_windows(video, frames, window, window, resize=(size[1], size[0]),
                                                crop_borders=True)):
            if i == clips_per_video:
                break
            clips.append(clip.frames)
    if not clips:
        raise ModelError("no clips could be sampled from the given videos")
    return np.stack(clips)


def encode_clips(model_dir: str | os.PathLike, clips: np.ndarray, *, backend: str = "auto",
                 threads: int | None = None, batch: int = 4) -> np.ndarray:
    """Codes of prepared clips through the Encoder's backends; the fused graph where it exists,
    so an fp16 / int8 model is judged as the one-engine deployment runs it."""
    graphs = "fused" if "chain" in read_model_dir(model_dir).graphs else "split"
    with Encoder(model_dir, backend=backend, threads=threads or None, graphs=graphs) as encoder:
        return np.concatenate([encoder.encode_clips(clips[i:i + batch]) for i in range(0, len(clips), batch)])


def check_comparable(reference: ModelContract, candidate: ModelContract) -> None:
    for key in CONTRACT_KEYS:
        if getattr(reference, key) != getattr(candidate, key):
            raise ModelMismatchError(f"reference and candidate differ in {key}: "
                                     f"{getattr(reference, key)!r} vs {getattr(candidate, key)!r}")


def verify(reference: str | os.PathLike, candidate: str | os.PathLike, videos: Sequence[str | os.PathLike], *,
           clips_per_video: int = 4, batch: int = 4) -> ParityReport:
    """Encode the same real clips with both models and compare their codes."""
    ref_contract = read_model_dir(reference)
    check_comparable(ref_contract, read_model_dir(candidate))
    clips = parity_clips(videos, ref_contract.frames, ref_contract.input_size, clips_per_video=clips_per_video)
    report = compare_codes(encode_clips(reference, clips, batch=batch), encode_clips(candidate, clips, batch=batch))
    log.info("%s vs %s: %s", reference, candidate, report)
    return report


def video_clips(videos: Sequence[str | os.PathLike], frames: int, size: tuple[int, int], *,
                clips_per_video: int = 4, **_: object) -> np.ndarray:
    """Deprecated: use `parity_clips` (the Encoder's own sampling, bars cropped)."""
    warnings.warn("video_clips is deprecated; use parity_clips", DeprecationWarning, stacklevel=2)
    return parity_clips(videos, frames, size, clips_per_video=clips_per_video)


def onnx_encoder(contract: ModelContract, threads: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """Deprecated: use `encode_clips(model_dir, clips)`."""
    warnings.warn("onnx_encoder is deprecated; use encode_clips", DeprecationWarning, stacklevel=2)
    return lambda clips: encode_clips(contract.root, clips, backend="onnxruntime", threads=threads)
