"""The three deployable graphs as torch modules (what `onnx_export` exports, and what the runtime's
torch backend runs for parity and debugging).

| module            | input                              | outputs                                          |
|-------------------|------------------------------------|--------------------------------------------------|
| `BackboneGraph`   | `frames` uint8 [N, H, W, 3]        | `features` float32 [N, D]                        |
| `TemporalGraph`   | `features` float32 [B, T, D]       | `code` uint8 [B, bits/8], `logits` float32 [B, bits] |
| `FusedChainGraph` | `frames` uint8 [B, T, H, W, 3]     | `code`, `logits` as above                         |

Bits are `logit >= 0` (a zero logit is a 1 bit; never `Sign`, whose Sign(0) = 0 is a third value)
and are packed MSB-first (`numpy.packbits` order) with `pack_bits_torch`'s multiply-and-sum, because
TensorRT's ONNX parser supports neither `BitShift` nor the `Bitwise*` ops. `logits` are the video
logits (mean of the frame logits): kept as a float output so engines can be validated.
T may be anything from 1 to the checkpoint's `frames` (the position table is sliced).
"""

from __future__ import annotations

import torch
from torch import nn

from chain_sdk.errors import ModelMismatchError
from chain_sdk.nn.chain import ChainModel, pack_bits_torch

from .backbones import FrameBackbone, TorchFrameBackbone

INPUT_FRAMES = "frames"
INPUT_FEATURES = "features"
OUTPUT_FEATURES = "features"
OUTPUT_CODE = "code"
OUTPUT_LOGITS = "logits"


class BackboneGraph(nn.Module):
    """frames uint8 [N, H, W, 3] -> features float32 [N, D] (preprocessing inside the backbone)."""

    input_names = [INPUT_FRAMES]
    output_names = [OUTPUT_FEATURES]

    def __init__(self, backbone: FrameBackbone) -> None:
        super().__init__()
        self.backbone = backbone.eval()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.backbone(frames)


class TemporalGraph(nn.Module):
    """features float32 [B, T, D] -> (code uint8 [B, bits/8], logits float32 [B, bits])."""

    input_names = [INPUT_FEATURES]
    output_names = [OUTPUT_CODE, OUTPUT_LOGITS]

    def __init__(self, model: ChainModel) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(features).video_logits
        return pack_bits_torch(logits >= 0), logits


class FusedChainGraph(nn.Module):
    """frames uint8 [B, T, H, W, 3] -> (code, logits): backbone on all B*T frames, then the temporal model."""

    input_names = [INPUT_FRAMES]
    output_names = [OUTPUT_CODE, OUTPUT_LOGITS]

    def __init__(self, backbone: TorchFrameBackbone, model: ChainModel) -> None:
        super().__init__()
        self.backbone = backbone.eval()
        self.temporal = TemporalGraph(model)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if frames.dtype != torch.uint8 or frames.ndim != 5:
            raise ModelMismatchError(f"expected uint8 frames [B, T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
        self.backbone.check_frames(frames[0])
        # Cast before anything else: TensorRT allows UINT8 only at the network boundary.
        x = frames.to(torch.float32)
        features = self.backbone.features_from_float(x.flatten(0, 1))
        b, t = x.shape[0], x.shape[1]
        return self.temporal(features.reshape(b, t, features.shape[-1]))
