"""Checkpoint directory -> model directory: backbone.onnx, temporal.onnx, chain.onnx, model.json.

Uses torch's dynamo exporter (`torch.onnx.export(..., dynamo=True)`): unlike the legacy
TorchScript exporter it keeps T dynamic in the attention reshapes and does not fail under
no_grad (docs/research/deploy.md §3). Batch is dynamic in every graph and T in 1..frames. Opset 17..20:
>= 17 keeps LayerNorm one `LayerNormalization` op (the fp16-safe form TensorRT maps to its
normalization layer), <= 20 because TensorRT 10.0-10.3 (JetPack 6) parse opsets up to 20.
Weights are embedded (`external_data=False`): one self-contained file per graph that Triton,
`trtexec` and `OnnxParser.parse(bytes)` can take without a `.onnx.data` sidecar.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from chain_sdk.contract import MODEL_JSON, ModelContract, set_onnx_metadata, write_model_json
from chain_sdk.errors import CheckpointError, ModelError, ModelMismatchError
from chain_sdk.nn.checkpoint import CONFIG, WEIGHTS, load_checkpoint

from chain_sdk.nn.backbones import FrameBackbone, OnnxFrameBackbone, get_backbone
from chain_sdk.nn.graphs import BackboneGraph, FusedChainGraph, TemporalGraph

log = logging.getLogger(__name__)

MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 17, 20, 20
GRAPH_FILES = {"backbone": "backbone.onnx", "temporal": "temporal.onnx", "chain": "chain.onnx"}
TWO_GB = 2**31


def check_opset(opset: int) -> None:
    if not (MIN_OPSET <= opset <= MAX_OPSET):
        raise ModelError(
            f"opset {opset} is not supported: use {MIN_OPSET}..{MAX_OPSET} (>= 17 keeps LayerNormalization "
            f"one op, <= 20 is what TensorRT 10.0-10.3 / JetPack 6 parse)"
        )


def model_version(checkpoint_dir: Path) -> str:
    """A stable id of the trained weights: the sha256 prefix of model.safetensors."""
    digest = hashlib.sha256((checkpoint_dir / WEIGHTS).read_bytes()).hexdigest()
    return f"sha256:{digest[:16]}"


def read_shapes_after_cast(proto: Any) -> None:
    """Make uint8 graph inputs feed nothing but their Cast: `Shape` nodes read the cast copy instead.

    TensorRT supports UINT8 only as a network input/output type; the dynamo exporter reads the
    dynamic B/T dims with `Shape(frames)`. The Cast to float keeps the shape, so rewiring is exact.
    The Cast moves to the front of the node list to keep the graph topologically sorted.
    """
    import onnx

    graph = proto.graph
    uint8_inputs = {i.name for i in graph.input if i.type.tensor_type.elem_type == onnx.TensorProto.UINT8}
    for name in uint8_inputs:
        casts = [n for n in graph.node if n.op_type == "Cast" and list(n.input) == [name]]
        if not casts:
            continue
        cast = casts[0]
        for node in graph.node:
            if node.op_type == "Shape" and list(node.input) == [name]:
                node.input[0] = cast.output[0]
        nodes = [cast] + [n for n in graph.node if n is not cast]
        copies = [onnx.NodeProto() for _ in nodes]
        for copy, node in zip(copies, nodes):
            copy.CopyFrom(node)
        del graph.node[:]
        graph.node.extend(copies)


add_metadata = set_onnx_metadata


def save_checked(proto: Any, path: Path) -> Path:
    """onnx.checker full check (shape inference included), then save embedded (or external if > 2 GB)."""
    import onnx

    big = proto.ByteSize() >= TWO_GB
    if big:
        onnx.save_model(proto, str(path), save_as_external_data=True, location=path.name + ".data")
        onnx.checker.check_model(str(path), full_check=True)
    else:
        onnx.checker.check_model(proto, full_check=True)
        onnx.save_model(proto, str(path))
    return path


def export_graph(module: torch.nn.Module, example: torch.Tensor, dynamic: dict[int, Any], opset: int,
                 input_name: str, output_names: list[str]) -> Any:
    """Dynamo export of a one-input module; returns the ONNX ModelProto (weights in memory)."""
    import warnings

    module.eval()
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch-internal deprecations, not ours
        program = torch.onnx.export(
            module, (example,), dynamo=True, opset_version=opset, external_data=False,
            input_names=[input_name], output_names=output_names,
            dynamic_shapes={list(module.forward.__code__.co_varnames)[1]: dynamic},
            verbose=False, report=False,
        )
    log.info("exported %s in %.1f s", type(module).__name__, time.perf_counter() - started)
    return program.model_proto


def load_backbone(name: str | os.PathLike, color_order: str) -> FrameBackbone:
    if str(name).endswith(".onnx"):
        return get_backbone(name)
    return get_backbone(name, color_order=color_order)


def backbone_proto(bb: FrameBackbone, opset: int) -> Any:
    """The backbone graph, torch-exported. (chain_sdk.onnxbuild builds the same graph without
    torch for the packaged defaults; chain-export keeps torch's export because the int8 recipe
    of export/quantize.py selects the nodes it keeps in float by the names torch gives them.)"""
    h, w = bb.input_size
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        proto = export_graph(BackboneGraph(bb), torch.zeros(2, h, w, 3, dtype=torch.uint8), {0: batch},
                             opset, "frames", ["features"])
    read_shapes_after_cast(proto)
    return proto


def export_backbone(
    path: str | os.PathLike,
    *,
    backbone: str = "efficientnet_lite0",
    opset: int = DEFAULT_OPSET,
    color_order: str = "BGR",
) -> Path:
    """Export a frame backbone alone (uint8 frames -> features) with its contract in the metadata.

    The result plugs in wherever a backbone name does (`get_backbone(path)`, `chain-train fit
    --backbone path`); onnxruntime runs it about 3x faster than torch eager on CPU.
    """
    check_opset(opset)
    bb = load_backbone(backbone, color_order)
    proto = backbone_proto(bb, opset)
    del proto.metadata_props[:]
    for key, value in bb.contract().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    proto.doc_string = f"chain-sdk frame backbone {bb.name}"
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_checked(proto, out)


def check_backbone_fits(ckpt: Path, declared: dict[str, Any], feature_dim: int, bb: FrameBackbone) -> None:
    """Refuse to export with a backbone other than the one the checkpoint was trained on: its
    name, feature size and input size (where config.json records them) must all agree."""
    problems = []
    if bb.feature_dim != feature_dim or declared.get("feature_dim", bb.feature_dim) != bb.feature_dim:
        problems.append(f"features {declared.get('feature_dim', feature_dim)}-d vs {bb.feature_dim}-d")
    if declared.get("name", bb.name) != bb.name:
        problems.append(f"name {declared.get('name')!r} vs {bb.name!r}")
    if declared.get("input_size") and tuple(declared["input_size"]) != tuple(bb.input_size):
        problems.append(f"input size {tuple(declared['input_size'])} vs {tuple(bb.input_size)}")
    if problems:
        raise ModelMismatchError(f"{ckpt}: trained on backbone {declared.get('name')!r}, asked to export "
                                 f"with {bb.name!r}: " + "; ".join(problems))


def export_model(
    checkpoint_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    backbone: str | os.PathLike | None = None,
    opset: int = DEFAULT_OPSET,
    color_order: str = "BGR",
    graphs: tuple[str, ...] = ("backbone", "temporal", "chain"),
) -> Path:
    """Export a checkpoint to a model directory and return its path.

    `backbone` is a registered name (default: the one the checkpoint was trained on) or a
    `backbone.onnx` that declares the contract in its metadata (then it is copied as is and no fused `chain.onnx` is made: the runtime chains the
    two graphs). Raises CheckpointError for a bad checkpoint, ModelMismatchError when the
    backbone does not fit the checkpoint, ModelError for an unsupported opset.
    """
    import onnx

    check_opset(opset)
    ckpt = Path(checkpoint_dir)
    model, config = load_checkpoint(ckpt)
    declared = config.get("backbone", {})
    bb = load_backbone(backbone or declared.get("name", "efficientnet_lite0"), color_order)
    check_backbone_fits(ckpt, declared, model.config.feature_dim, bb)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_backbone = isinstance(bb, OnnxFrameBackbone)
    wanted = [g for g in graphs if not (onnx_backbone and g == "chain")]
    unknown = set(wanted) - set(GRAPH_FILES)
    if unknown:
        raise ModelError(f"unknown graphs {sorted(unknown)}; known: {sorted(GRAPH_FILES)}")
    contract = ModelContract(
        bits=model.config.bits, frames=model.config.frames, feature_dim=bb.feature_dim,
        input_height=bb.input_size[0], input_width=bb.input_size[1], color_order=bb.color_order,
        normalization=bb.normalization, backbone=bb.name, model_version=model_version(ckpt),
        precision="fp32", graphs={g: GRAPH_FILES[g] for g in wanted},
    )
    h, w = bb.input_size
    t, d = model.config.frames, model.config.feature_dim
    batch = torch.export.Dim("batch", min=1, max=4096)
    frames_dim = torch.export.Dim("T", min=1, max=t)
    with torch.no_grad():
        for role in wanted:
            path = out / GRAPH_FILES[role]
            if role == "backbone" and onnx_backbone:
                proto = onnx.load(str(bb.onnx_path))
            elif role == "backbone":
                proto = backbone_proto(bb, opset)
            elif role == "temporal":
                example = torch.randn(2, t, d)
                proto = export_graph(TemporalGraph(model), example, {0: batch, 1: frames_dim}, opset,
                                     "features", ["code", "logits"])
            else:
                example = torch.zeros(2, t, h, w, 3, dtype=torch.uint8)
                proto = export_graph(FusedChainGraph(bb, model), example, {0: batch, 1: frames_dim}, opset,
                                     "frames", ["code", "logits"])
            read_shapes_after_cast(proto)
            add_metadata(proto, contract, f"chain-sdk {role} graph ({contract.model_version})")
            save_checked(proto, path)
            log.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
    copy_checkpoint(ckpt, out / "checkpoint")
    write_model_json(out, contract)
    log.info("wrote %s", out / MODEL_JSON)
    return out


def copy_checkpoint(src: Path, dst: Path) -> None:
    """Keep the exact weights next to the graphs, so a model directory can be re-exported."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS, CONFIG):
        if not (src / name).is_file():
            raise CheckpointError(f"{src}: no {name}")
        shutil.copy2(src / name, dst / name)


def checkpoint_key(checkpoint: Path) -> str:
    """Cache key of an export: the checkpoint's bytes and the chain-sdk version (the exporter may change)."""
    from chain_sdk import __version__

    digest = hashlib.sha256(__version__.encode())
    for name in (CONFIG, WEIGHTS):
        with open(checkpoint / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def export_cached(checkpoint_dir: str | os.PathLike, name: str | None = None) -> Path:
    """The model directory of `checkpoint_dir`, exported into the model cache once
    (`cache_dir()/models/<name>-<key>`; concurrent processes wait for one export)."""
    from chain_sdk.files import build_dir_once
    from chain_sdk.models import is_model_dir, models_cache_dir

    ckpt = Path(checkpoint_dir)
    key = checkpoint_key(ckpt)
    target = models_cache_dir() / f"{name or ckpt.name or 'model'}-{key}"
    return build_dir_once(target, lambda tmp: export_model(ckpt, tmp), is_model_dir)
