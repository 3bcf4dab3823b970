"""Triton Inference Server model repository from a model directory (ONNX) or engine directory (plan).

Layout: `<repo>/<name>/config.pbtxt` and `<repo>/<name>/<version>/model.onnx|model.plan`.
With `max_batch_size > 0` Triton owns the batch dimension, so `dims` omit it. Dynamic batching
groups single-clip requests into engine-sized batches; `instance_group` picks GPU or CPU.
The config is text protobuf of Triton's `ModelConfig` (parsed back in the tests).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from chain_sdk.contract import ENGINE_JSON, ModelContract, read_model_dir
from chain_sdk.errors import ModelError
from chain_sdk.files import write_text

TRITON_TYPES = {"uint8": "TYPE_UINT8", "float32": "TYPE_FP32"}


def io_spec(contract: ModelContract, role: str) -> tuple[list[tuple[str, str, list[int]]], list[tuple[str, str, list[int]]]]:
    """(inputs, outputs) as (name, dtype, dims without the batch dim)."""
    h, w, t, d, n = contract.input_height, contract.input_width, contract.frames, contract.feature_dim, contract.bits
    outputs = [("code", "uint8", [n // 8]), ("logits", "float32", [n])]
    if role == "chain":
        return [("frames", "uint8", [t, h, w, 3])], outputs
    if role == "temporal":
        return [("features", "float32", [t, d])], outputs
    return [("frames", "uint8", [h, w, 3])], [("features", "float32", [d])]


def tensor_block(kind: str, specs: list[tuple[str, str, list[int]]]) -> str:
    items = ",\n".join(f'  {{ name: "{name}" data_type: {TRITON_TYPES[dtype]} dims: [ {", ".join(map(str, dims))} ] }}'
                       for name, dtype, dims in specs)
    return f"{kind} [\n{items}\n]\n"


def config_pbtxt(name: str, contract: ModelContract, role: str, *, platform: str, max_batch_size: int,
                 preferred_batch_sizes: list[int], max_queue_delay_us: int, instances: int, kind: str) -> str:
    inputs, outputs = io_spec(contract, role)
    preferred = ", ".join(str(b) for b in preferred_batch_sizes if b <= max_batch_size)
    params = "".join(f'parameters {{ key: "chain_sdk.{k}" value: {{ string_value: "{v}" }} }}\n'
                     for k, v in contract.metadata().items() if not k.startswith("chain_sdk."))
    return (
        f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {max_batch_size}\n'
        + tensor_block("input", inputs) + tensor_block("output", outputs)
        + f"dynamic_batching {{\n  preferred_batch_size: [ {preferred} ]\n"
          f"  max_queue_delay_microseconds: {max_queue_delay_us}\n}}\n"
        + f"instance_group [ {{ count: {instances} kind: {kind} }} ]\n"
        + params
    )


def write_triton_repository(model_dir: str | os.PathLike, repo: str | os.PathLike, *, name: str = "chain",
                            role: str = "chain", version: int = 1, max_batch_size: int | None = None,
                            preferred_batch_sizes: tuple[int, ...] = (4, 8, 16), max_queue_delay_us: int = 2000,
                            instances: int = 1, kind: str = "KIND_GPU") -> Path:
    """Write `<repo>/<name>/` for the TensorRT plan (engine dir) or the ONNX graph (model dir)."""
    contract = read_model_dir(model_dir)
    engine = (Path(model_dir) / ENGINE_JSON).is_file()
    if engine:
        role, plan = next(iter(contract.graphs.items()))
        source, target, platform = contract.graph_path(role), "model.plan", "tensorrt_plan"
        profile_max = contract.extra["engine"]["profile"]["max_batch"]
        if max_batch_size is not None and max_batch_size > profile_max:
            raise ModelError(f"max_batch_size {max_batch_size} exceeds the engine profile's max batch {profile_max}")
        max_batch_size = max_batch_size or profile_max
    else:
        source, target, platform = contract.graph_path(role), "model.onnx", "onnxruntime_onnx"
        max_batch_size = max_batch_size or 16
    if kind not in ("KIND_GPU", "KIND_CPU"):
        raise ModelError(f"instance kind must be KIND_GPU or KIND_CPU, got {kind!r}")
    folder = Path(repo) / name
    (folder / str(version)).mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, folder / str(version) / target)
    write_text(folder / "config.pbtxt", config_pbtxt(
        name, contract, role, platform=platform, max_batch_size=max_batch_size,
        preferred_batch_sizes=list(preferred_batch_sizes), max_queue_delay_us=max_queue_delay_us,
        instances=instances, kind=kind))
    return folder
