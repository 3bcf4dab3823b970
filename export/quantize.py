"""fp16 and int8 variants of a model directory, made on the CPU (only the engine build needs a GPU).

TensorRT 11 has no precision builder flags and no calibrators: precision lives in the ONNX
(docs/research/deploy.md §1.3). So:

- **fp16**: AutoCast-style mixed precision with onnxruntime's `convert_float_to_float16`:
  float I/O kept (`keep_io_types`), accuracy-sensitive reductions kept in fp32
  (LayerNormalization, Softmax, ReduceMean, Gelu's erf path), everything else fp16.
- **int8**: explicit Q/DQ with `onnxruntime.quantization.quantize_static`, placed the way
  TensorRT's explicit-quantization guide recommends: Q/DQ on the *inputs* of weighted ops only
  (activations per-tensor symmetric int8, weights per-channel symmetric int8 on the output-channel
  axis, biases float), never on their outputs. Calibrated (MinMax) on frames of real sample clips.
  `Int8Recipe` says which node groups stay float; the default was chosen by measurement on real
  clips (20 clips of the 5 sample videos, 64 bits; tests/test_export_quantize.py holds the gate):

  | what stays float | why |
  |---|---|
  | Conv/MatMul outputs (no output Q/DQ) | quantizing pre-ReLU6 / pre-residual conv outputs with a symmetric scale wastes most of the int8 range: feature cosine 0.87 -> 0.985 |
  | EfficientNet depthwise convs | per-tensor int8 inputs after ReLU6 starve low-range channels: cosine 0.985 -> 0.993, bit drift 1.5 -> 0.4 of 64 |
  | the stem conv (3 -> 32 channels, ~3 % of the FLOPs) | it reads the raw pixels: worst-frame cosine 0.91 -> 0.96 (the head conv measured no gain: it stays int8) |
  | the temporal transformer | ~1 % of the FLOPs of 25 frames through the CNN: int8 there buys no speed and cost 0.1-0.2 bits alone |

  Weights are 8-bit except those of the convs whose output feeds only other int8 convs (the
  projection convs without a residual Add: 2 in EfficientNet-Lite0), which are 7-bit
  (`requantized_conv_weights`). onnxruntime's CPU provider fuses exactly those into a u8 x s8
  QLinearConv, whose x86 kernel (VPMADDUBSW, AVX2 without VNNI) saturates with full-range int8
  weights: on this 2-core AVX2 VM that alone dropped feature cosine to 0.70 (worst frame 0.54) and
  code-bit agreement to 75 % on 16 unseen clips of 8 film segments (60-198 s). With the 7-bit
  weights: cosine 0.992 mean / 0.979 worst, 98.0 % of bits (1.25 of 64), the same as the unfused,
  exact Q/DQ graph (0.992 / 0.979, 97.9 %); 7-bit weights everywhere measured worse (0.980, 96.3 %).

  Residual Adds share their input's Q/DQ with the next conv (onnxruntime's placement, which lets
  TensorRT fuse the Add into the int8 conv); a float skip path measured no better (cosine +0.0004).
  Entropy and 99.99-percentile calibration, and adding 256 frames of the film (0-240 s) to the
  calibration set, measured within noise of MinMax on the sample clips, so the simplest one stays.

Output: the same file set (graphs, model.json with `precision` and, for int8, the recipe and the
nodes kept float under `extra.quantization`, checkpoint copy).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chain_sdk.contract import ModelContract, read_model_dir, write_model_json
from chain_sdk.errors import ModelError
from chain_sdk.video import sample_clip

log = logging.getLogger(__name__)

FP16_KEEP_FP32_OPS = ["LayerNormalization", "Softmax", "ReduceMean", "Gelu", "GreaterOrEqual", "ReduceSum"]
INT8_OPS = ("Conv", "MatMul", "Gemm")
DEFAULT_CALIBRATION = ("bigbuckbunny.mp4", "bikes.mp4", "cityCC0.mpg", "carphone.mp4")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# Node groups an Int8Recipe can keep in float (found by structure, so they name the same layers in
# backbone.onnx and chain.onnx): see `float_node_groups`.
FLOAT_GROUPS = ("depthwise", "stem", "head", "temporal", "hash")


@dataclass(frozen=True)
class Int8Recipe:
    """Where int8 Q/DQ goes. The default is the measured choice (module docstring)."""

    calibration_method: str = "minmax"  # entropy / percentile measured no better on real clips
    percentile: float = 99.99  # only for "percentile"
    keep_float: tuple[str, ...] = ("depthwise", "stem", "temporal")
    quantize_outputs: bool = False  # True = onnxruntime's default (Q/DQ on outputs too): not what TensorRT wants

    def __post_init__(self) -> None:
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ModelError(f"calibration_method must be one of {CALIBRATION_METHODS}, got {self.calibration_method!r}")
        unknown = set(self.keep_float) - set(FLOAT_GROUPS)
        if unknown:
            raise ModelError(f"unknown node groups {sorted(unknown)} in keep_float (known: {FLOAT_GROUPS})")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "keep_float": list(self.keep_float)}


DEFAULT_INT8 = Int8Recipe()


def sample_frames(videos: Sequence[str | os.PathLike], per_video: int, size: tuple[int, int]) -> np.ndarray:
    """`per_video` BGR uint8 frames of each video, (H, W) = `size`, exactly as the Encoder samples
    a clip of that length (segment centres, black bars cropped, INTER_AREA resize)."""
    from tqdm.auto import tqdm

    clips = [sample_clip(video, per_video, resize=(size[1], size[0]), crop_borders=True).frames
             for video in tqdm(videos, desc="calibration frames", leave=False)]
    return np.concatenate(clips)


def default_calibration_videos() -> list[Path]:
    from chain_sdk import data

    return [Path(data.path(name)) for name in DEFAULT_CALIBRATION]


class ArrayReader:
    """onnxruntime CalibrationDataReader over a list of input batches.

    `__len__` and `set_range` let quantize_static calibrate one batch at a time
    (`CalibStridedMinMax`): its calibrators otherwise hold every intermediate tensor of every
    batch in memory (~40 MB per 224x224 frame for EfficientNet-Lite0).
    """

    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self.name, self.batches = name, batches
        self._range = (0, len(batches))
        self._it: Iterator[np.ndarray] = iter(batches)

    def __len__(self) -> int:
        return len(self.batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self.name: batch}

    def set_range(self, start_index: int, end_index: int) -> None:
        self._range = (start_index, end_index)
        self.rewind()

    def rewind(self) -> None:
        self._it = iter(self.batches[self._range[0] : self._range[1]])


def convert_fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    meta = {p.key: p.value for p in model.metadata_props}
    half = convert_float_to_float16(model, keep_io_types=True, op_block_list=FP16_KEEP_FP32_OPS)
    topological_sort(half)
    del half.graph.value_info[:]  # stale fp32/fp16 annotations; the checker re-infers them
    set_metadata(half, {**meta, "precision": "fp16"})
    onnx.checker.check_model(half, full_check=True)
    onnx.save_model(half, str(dst))


def topological_sort(model) -> None:
    """Reorder graph nodes so every input is produced before use (the fp16 converter appends Casts)."""
    import onnx

    graph = model.graph
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        progressed = [n for n in pending if all(i in ready for i in n.input)]
        if not progressed:
            raise ModelError("graph has a cycle or an undefined input after fp16 conversion")
        for node in progressed:
            ready.update(node.output)
        ids = {id(n) for n in progressed}
        pending = [n for n in pending if id(n) not in ids]
        ordered.extend(progressed)
    copies = []
    for node in ordered:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copies.append(copy)
    del graph.node[:]
    graph.node.extend(copies)


def set_metadata(model, meta: dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def float_node_groups(model) -> dict[str, list[str]]:
    """Names of the Conv / MatMul / Gemm nodes of each FLOAT_GROUPS group, from the graph's structure.

    The graph is topologically sorted (ONNX requires it), so the first Conv is the stem, the last
    Conv the head (its output is pooled into the frame feature), and the last MatMul/Gemm the
    hash projection. Every MatMul/Gemm is the temporal model's: the CNN has none.
    """
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    dense = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm")]
    return {
        "depthwise": [n.name for n in convs if any(a.name == "group" and a.i > 1 for a in n.attribute)],
        "stem": [n.name for n in convs[:1]],
        "head": [n.name for n in convs[-1:]],
        "temporal": [n.name for n in dense],
        "hash": [n.name for n in dense[-1:]],
    }


def requantized_conv_weights(model, quantized: Sequence[str]) -> list[str]:
    """Weights of the quantized Convs whose output feeds only other quantized Conv / MatMul / Gemm
    nodes (EfficientNet's projection convs without a residual Add).

    Their output gets a Q right behind them, so onnxruntime's CPU provider fuses DQ -> Conv -> Q
    into a uint8 x int8 QLinearConv; on x86 without VNNI its VPMADDUBSW kernel saturates the int16
    sum of two u8 * s8 products when the weights use the full int8 range. Those convs get 7-bit
    weights (`reduce_range`), which cannot saturate (2 * 255 * 64 < 2 ** 15).
    """
    chosen = set(quantized)
    users: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node.name)

    def feeds_only_int8(node) -> bool:
        names = [user for output in node.output for user in users.get(output, [])]
        return bool(names) and all(name in chosen for name in names)

    return [node.input[1] for node in model.graph.node
            if node.op_type == "Conv" and node.name in chosen and feeds_only_int8(node)]


def quantize_int8(src: Path, dst: Path, reader: ArrayReader, recipe: Int8Recipe = DEFAULT_INT8) -> dict[str, Any]:
    """Q/DQ int8 copy of one graph; returns what was quantized and what was kept float (by group)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[recipe.calibration_method]
    meta = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        groups = float_node_groups(onnx.load(str(prepared)))
        kept = {g: groups[g] for g in recipe.keep_float if groups[g]}
        excluded = sorted({name for names in kept.values() for name in names})
        candidates = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in INT8_OPS]
        quantized = [name for name in candidates if name not in set(excluded)]
        seven_bit = requantized_conv_weights(onnx.load(str(prepared)), quantized)
        if quantized:
            quantize_static(
                str(prepared), str(dst), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(INT8_OPS),
                nodes_to_exclude=excluded, per_channel=True, activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8, calibrate_method=method,
                extra_options={
                    # TensorRT: zero points of 0, per-channel weights on the output-channel axis.
                    "ActivationSymmetric": True, "WeightSymmetric": True,
                    "CalibTensorRangeSymmetric": True, "CalibPercentile": recipe.percentile,
                    "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "MatMul": 1},
                    "OpTypesToExcludeOutputQuantization": [] if recipe.quantize_outputs else list(INT8_OPS),
                    "AddQDQPairToWeight": False, "DedicatedQDQPair": False,
                    # TensorRT dequantizes INT8/FP8/INT4 only: keep biases float.
                    "QuantizeBias": False,
                    "CalibStridedMinMax": 1,  # one batch at a time (memory, see ArrayReader)
                    "TensorQuantOverrides": {w: [{"axis": 0, "reduce_range": True}] for w in seven_bit},
                })
        else:  # nothing left to quantize (e.g. temporal.onnx with the temporal model kept float)
            shutil.copyfile(src, dst)
    model = onnx.load(str(dst))
    report = {"quantized_nodes": len(quantized), "seven_bit_weights": len(seven_bit), "float_nodes": {g: len(v) for g, v in kept.items()},
              "float_node_names": kept}
    set_metadata(model, {**meta, "precision": "int8",
                         "chain_sdk.int8_recipe": json.dumps(recipe.to_dict(), sort_keys=True),
                         "chain_sdk.int8_quantized_nodes": str(len(quantized))})
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, str(dst))
    return report


def calibration_batches(contract: ModelContract, videos: Sequence[str | os.PathLike], frames_per_video: int, *,
                        temporal: bool = True) -> dict[str, tuple[str, list[np.ndarray]]]:
    """Calibration inputs per graph role, all from real frames: frames, clips and (if `temporal`,
    the temporal graph is to be quantized) fp32 features of those frames."""
    import onnxruntime as ort

    frames = sample_frames(videos, frames_per_video, contract.input_size)
    batches: dict[str, tuple[str, list[np.ndarray]]] = {
        "backbone": ("frames", [frames[i : i + 4] for i in range(0, len(frames), 4)])
    }
    t = contract.frames
    if temporal and ("temporal" in contract.graphs or "chain" in contract.graphs):
        session = ort.InferenceSession(str(contract.graph_path("backbone")), providers=["CPUExecutionProvider"])
        features = np.concatenate([session.run(None, {"frames": b})[0] for b in batches["backbone"][1]])
        starts = range(0, max(len(features) - t, 0) + 1, max(1, t // 5))
        clips = np.stack([features[s : s + t] for s in starts])
        batches["temporal"] = ("features", [clips[i : i + 8] for i in range(0, len(clips), 8)])
    whole = (len(frames) // t) * t
    batches["chain"] = ("frames", [frames[:whole].reshape(-1, t, *frames.shape[1:])[i : i + 1]
                                   for i in range(whole // t)])
    return batches


def quantize_model(model_dir: str | os.PathLike, out_dir: str | os.PathLike, precision: str, *,
                   calibration: Sequence[str | os.PathLike] | None = None, frames_per_video: int = 25,
                   recipe: Int8Recipe | None = None) -> Path:
    """Write an fp16 or int8 copy of an fp32 model directory to `out_dir`; returns it.

    int8 follows `recipe` (default `DEFAULT_INT8`); model.json's `extra.quantization` records the
    recipe, the calibration videos and, per graph, the nodes quantized and those kept float.
    """
    from tqdm.auto import tqdm

    if precision not in ("fp16", "int8"):
        raise ModelError(f"precision must be 'fp16' or 'int8', got {precision!r}")
    contract = read_model_dir(model_dir)
    if contract.precision != "fp32":
        raise ModelError(f"{model_dir}: quantize an fp32 model directory, this one is {contract.precision}")
    recipe = recipe or DEFAULT_INT8
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    videos = [Path(v) for v in (calibration or default_calibration_videos())]
    batches = {}
    if precision == "int8":
        batches = calibration_batches(contract, videos, frames_per_video, temporal="temporal" not in recipe.keep_float)
    graphs: dict[str, Any] = {}
    for role in tqdm(list(contract.graphs), desc=f"{precision} graphs", leave=False):
        src, dst = contract.graph_path(role), out / contract.graphs[role]
        if precision == "fp16":
            convert_fp16(src, dst)
        else:
            graphs[role] = quantize_int8(src, dst, ArrayReader(*batches.get(role, ("features", []))), recipe)
        log.info("wrote %s (%.1f MB)", dst, dst.stat().st_size / 1e6)
    if (Path(model_dir) / "checkpoint").is_dir():
        shutil.copytree(Path(model_dir) / "checkpoint", out / "checkpoint", dirs_exist_ok=True)
    extra = dict(contract.extra)
    if precision == "int8":
        extra["quantization"] = {"recipe": recipe.to_dict(), "graphs": graphs,
                                 "calibration": {"videos": [v.name for v in videos],
                                                 "frames_per_video": frames_per_video}}
    new = ModelContract.from_dict({**contract.to_dict(), "precision": precision, "extra": extra})
    write_model_json(out, new)
    return out
