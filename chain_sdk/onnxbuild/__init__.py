"""ONNX graphs built without torch (numpy + the `onnx` package): the deployed frame backbone.

    from chain_sdk.onnxbuild import build_backbone_file
    build_backbone_file("backbone.onnx", "efficientnet_lite0_luma")

The runtime uses it to complete the packaged default models on first use. chain-export keeps
torch's export of the backbone (the int8 recipe of export/quantize.py picks the nodes it keeps in
float by torch's node names); the torch EfficientNet-Lite0 (chain_sdk.nn) is the reference this
builder is tested against (tests/test_onnxbuild.py: same features, same codes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from chain_sdk.onnxbuild.efficientnet_lite import BACKBONES, build_backbone


def save_model(proto: Any, path: str | os.PathLike) -> Path:
    import onnx

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(out))
    return out


def build_backbone_file(path: str | os.PathLike, name: str = "efficientnet_lite0", **kwargs: Any) -> Path:
    """Write the backbone graph `name` (contract in its metadata) to `path`."""
    return save_model(build_backbone(name, **kwargs), path)


__all__ = ["BACKBONES", "build_backbone", "build_backbone_file", "save_model"]
