"""A checkpoint for fewer frames per clip: the same weights, each of the F frames at the position
its segment centre has on the checkpoint's T-frame grid (`chain_sdk.nn.chain.with_fewer_frames`).

    chain-export frames --checkpoint CKPT_DIR --frames 12 --out CKPT_DIR2

The result is an ordinary checkpoint (T = F), so every later step (onnx, quantize, trt, triton,
Encoder) takes it as it is and samples F frames. It decodes and embeds F instead of T frames;
what that costs in retrieval is measured, not assumed (docs/default_model.md, eighth round).
"""

from __future__ import annotations

import os
from pathlib import Path

from chain_sdk.errors import CheckpointError
from chain_sdk.files import sha256_of
from chain_sdk.nn.checkpoint import WEIGHTS, load_checkpoint, save_checkpoint
from chain_sdk.nn.chain import with_fewer_frames


def fewer_frames_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, frames: int) -> Path:
    model, config = load_checkpoint(checkpoint)
    try:
        small = with_fewer_frames(model, frames)
    except ValueError as exc:
        raise CheckpointError(f"{checkpoint}: {exc}") from exc
    training = dict(config.get("training", {}))
    training["extra"] = {**training.get("extra", {}), "fewer_frames_of": {
        "checkpoint": Path(checkpoint).name, "frames": model.config.frames,
        "weights_sha256": sha256_of(Path(checkpoint) / WEIGHTS)}}
    return save_checkpoint(out, small, backbone=config.get("backbone"),
                           training=training)
