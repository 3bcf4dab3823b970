"""Parity of a candidate model (fp16 / int8 ONNX, or a TensorRT engine) against a reference, on real video.

Hash codes are compared the way they are used: bit agreement (fraction of equal bits) and mean
Hamming drift (bits flipped per code), never `allclose` on ±1 outputs (deploy.md §5). Runs on
CPU through onnxruntime; an engine directory candidate runs through the TensorRT backend.

    python -m chain_sdk.export.verify --reference MODEL --candidate MODEL_INT8 --videos a.mp4 b.mp4
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from chain_sdk.contract import ENGINE_JSON, ModelContract, read_model_dir
from chain_sdk.errors import ModelError, ModelMismatchError

log = logging.getLogger(__name__)


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
    """Parity of packed uint8 codes [N, bits/8] (the numpy reference of the metrics)."""
    if reference.shape != candidate.shape or reference.dtype != np.uint8 or candidate.dtype != np.uint8:
        raise ModelMismatchError(f"codes differ in shape/dtype: {reference.shape} {reference.dtype} vs "
                                 f"{candidate.shape} {candidate.dtype}")
    diff = np.unpackbits(reference ^ candidate, axis=1).sum(axis=1)
    bits = reference.shape[1] * 8
    return ParityReport(clips=len(diff), bits=bits, bit_agreement=float(1 - diff.sum() / (len(diff) * bits)),
                        mean_hamming=float(diff.mean()), max_hamming=int(diff.max(initial=0)),
                        identical_codes=float((diff == 0).mean()))


def video_clips(videos: Sequence[str | os.PathLike], frames: int, size: tuple[int, int], *,
                clips_per_video: int = 4, step: int = 3, max_seconds: float | None = 300.0) -> np.ndarray:
    """Clips [N, T, H, W, 3] (BGR uint8) of `frames` frames taken every `step` frames, starts spread
    evenly over each video (limited to the first `max_seconds`: the film's held-out part is not used)."""
    import cv2
    from tqdm.auto import tqdm

    clips = []
    for video in tqdm(list(videos), desc="decoding clips", leave=False):
        cap = cv2.VideoCapture(str(video))
        if not cap.isOpened():
            raise ModelError(f"video cannot be opened: {video}")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        if max_seconds:
            total = min(total, int(max_seconds * fps))
        span = frames * step
        starts = np.linspace(0, max(total - span, 0), clips_per_video).astype(int)
        for start in starts:
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(start))
            got = []
            for i in range(span):
                ok, frame = cap.read()
                if not ok:
                    break
                if i % step == 0:
                    got.append(cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA))
            while got and len(got) < frames:  # a short clip: hold the last frame
                got.append(got[-1])
            if got:
                clips.append(np.stack(got))
        cap.release()
    if not clips:
        raise ModelError("no clips could be decoded from the given videos")
    return np.stack(clips)


def onnx_encoder(contract: ModelContract, threads: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """clips uint8 [B, T, H, W, 3] -> codes, through chain.onnx or backbone.onnx + temporal.onnx."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads

    def session(role: str):
        return ort.InferenceSession(str(contract.graph_path(role)), options, providers=["CPUExecutionProvider"])

    if "chain" in contract.graphs:
        chain = session("chain")
        return lambda clips: chain.run(["code"], {"frames": clips})[0]
    backbone, temporal = session("backbone"), session("temporal")

    def two_stage(clips: np.ndarray) -> np.ndarray:
        b, t = clips.shape[:2]
        (features,) = backbone.run(["features"], {"frames": clips.reshape(b * t, *clips.shape[2:])})
        return temporal.run(["code"], {"features": features.reshape(b, t, -1)})[0]

    return two_stage


def engine_encoder(model_dir: Path) -> Callable[[np.ndarray], np.ndarray]:
    from chain_sdk.backends.tensorrt import TensorRTBackend

    backend = TensorRTBackend(model_dir)
    return lambda clips: backend.run({"frames": clips})["code"]


def encoder_for(model_dir: Path) -> tuple[ModelContract, Callable[[np.ndarray], np.ndarray]]:
    contract = read_model_dir(model_dir)
    if (Path(model_dir) / ENGINE_JSON).is_file():
        return contract, engine_encoder(Path(model_dir))
    return contract, onnx_encoder(contract)


def encode_all(encode: Callable[[np.ndarray], np.ndarray], clips: np.ndarray, batch: int) -> np.ndarray:
    from tqdm.auto import tqdm

    return np.concatenate([encode(clips[i : i + batch])
                           for i in tqdm(range(0, len(clips), batch), desc="encoding", leave=False)])


def verify(reference: str | os.PathLike, candidate: str | os.PathLike, videos: Sequence[str | os.PathLike], *,
           clips_per_video: int = 4, batch: int = 4) -> ParityReport:
    """Encode the same real clips with both models and compare their codes."""
    ref_contract, ref_encode = encoder_for(Path(reference))
    cand_contract, cand_encode = encoder_for(Path(candidate))
    for key in ("bits", "frames", "input_height", "input_width", "color_order", "normalization", "model_version"):
        if getattr(ref_contract, key) != getattr(cand_contract, key):
            raise ModelMismatchError(f"reference and candidate differ in {key}: "
                                     f"{getattr(ref_contract, key)!r} vs {getattr(cand_contract, key)!r}")
    clips = video_clips(videos, ref_contract.frames, ref_contract.input_size, clips_per_video=clips_per_video)
    report = compare_codes(encode_all(ref_encode, clips, batch), encode_all(cand_encode, clips, batch))
    log.info("%s vs %s: %s", reference, candidate, report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import main as cli_main

    return cli_main(["verify", *(argv or [])]) if argv is not None else cli_main(None, default_command="verify")


if __name__ == "__main__":
    raise SystemExit(main())
