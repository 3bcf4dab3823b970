"""fp16 and int8 variants of a model directory, made on the CPU (only the engine build needs a GPU).

TensorRT 11 has no precision builder flags and no calibrators: precision lives in the ONNX
(deploy.md §1.3). So:

- **fp16**: AutoCast-style mixed precision with onnxruntime's `convert_float_to_float16`:
  float I/O kept (`keep_io_types`), accuracy-sensitive reductions kept in fp32
  (LayerNormalization, Softmax, ReduceMean, Gelu's erf path), everything else fp16.
- **int8**: explicit Q/DQ with `onnxruntime.quantization.quantize_static`: QDQ format,
  per-channel symmetric int8 weights, symmetric int8 activations (TensorRT wants zero points of
  0), on Conv / MatMul / Gemm only, calibrated on frames of the real sample clips.

Output: the same file set (graphs, model.json with `precision`, checkpoint copy).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from chain_sdk.contract import ModelContract, read_model_dir, write_model_json
from chain_sdk.errors import ModelError

log = logging.getLogger(__name__)

FP16_KEEP_FP32_OPS = ["LayerNormalization", "Softmax", "ReduceMean", "Gelu", "GreaterOrEqual", "ReduceSum"]
INT8_OPS = ["Conv", "MatMul", "Gemm"]
DEFAULT_CALIBRATION = ("bigbuckbunny.mp4", "bikes.mp4", "cityCC0.mpg", "carphone.mp4")


def sample_frames(videos: Sequence[str | os.PathLike], per_video: int, size: tuple[int, int]) -> np.ndarray:
    """`per_video` BGR uint8 frames spread evenly over each video, resized to (H, W) with INTER_AREA."""
    import cv2
    from tqdm.auto import tqdm

    out = []
    for video in tqdm(videos, desc="calibration frames", leave=False):
        cap = cv2.VideoCapture(str(video))
        if not cap.isOpened():
            raise ModelError(f"calibration video cannot be opened: {video}")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or per_video
        wanted = set(np.linspace(0, total - 1, per_video).astype(int).tolist())
        index, got = 0, []
        while len(got) < len(wanted):
            ok, frame = cap.read()
            if not ok:
                break
            if index in wanted:
                got.append(cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA))
            index += 1
        cap.release()
        if not got:
            raise ModelError(f"calibration video decoded to no frames: {video}")
        out.extend(got)
    return np.stack(out)


def default_calibration_videos() -> list[Path]:
    from chain_sdk import data

    return [Path(data.path(name)) for name in DEFAULT_CALIBRATION]


class ArrayReader:
    """onnxruntime CalibrationDataReader over a list of input batches."""

    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self.name, self.batches = name, batches
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self.name: batch}

    def rewind(self) -> None:
        self._it = iter(self.batches)


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


def quantize_int8(src: Path, dst: Path, reader: ArrayReader) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(dst), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=INT8_OPS,
            per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                           "AddQDQPairToWeight": False, "DedicatedQDQPair": False,
                           # TensorRT dequantizes INT8/FP8/INT4 only: keep biases float.
                           "QuantizeBias": False},
        )
    model = onnx.load(str(dst))
    meta = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
    set_metadata(model, {**meta, "precision": "int8"})
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, str(dst))


def calibration_batches(contract: ModelContract, videos: Sequence[str | os.PathLike], frames_per_video: int
                        ) -> dict[str, tuple[str, list[np.ndarray]]]:
    """Calibration inputs per graph role, all from real frames: frames, fp32 features, clips."""
    import onnxruntime as ort

    frames = sample_frames(videos, frames_per_video, contract.input_size)
    batches: dict[str, tuple[str, list[np.ndarray]]] = {
        "backbone": ("frames", [frames[i : i + 8] for i in range(0, len(frames), 8)])
    }
    if "temporal" in contract.graphs or "chain" in contract.graphs:
        session = ort.InferenceSession(str(contract.graph_path("backbone")), providers=["CPUExecutionProvider"])
        features = np.concatenate([session.run(None, {"frames": b})[0] for b in batches["backbone"][1]])
        t = contract.frames
        starts = range(0, max(len(features) - t, 0) + 1, max(1, t // 5))
        clips = np.stack([features[s : s + t] for s in starts])
        batches["temporal"] = ("features", [clips[i : i + 8] for i in range(0, len(clips), 8)])
        whole = (len(frames) // t) * t
        batches["chain"] = ("frames", [frames[:whole].reshape(-1, t, *frames.shape[1:])[i : i + 1]
                                       for i in range(whole // t)])
    return batches


def quantize_model(model_dir: str | os.PathLike, out_dir: str | os.PathLike, precision: str, *,
                   calibration: Sequence[str | os.PathLike] | None = None, frames_per_video: int = 25) -> Path:
    """Write an fp16 or int8 copy of an fp32 model directory to `out_dir`; returns it."""
    from tqdm.auto import tqdm

    if precision not in ("fp16", "int8"):
        raise ModelError(f"precision must be 'fp16' or 'int8', got {precision!r}")
    contract = read_model_dir(model_dir)
    if contract.precision != "fp32":
        raise ModelError(f"{model_dir}: quantize an fp32 model directory, this one is {contract.precision}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    batches = {}
    if precision == "int8":
        batches = calibration_batches(contract, list(calibration or default_calibration_videos()), frames_per_video)
    for role in tqdm(list(contract.graphs), desc=f"{precision} graphs", leave=False):
        src, dst = contract.graph_path(role), out / contract.graphs[role]
        if precision == "fp16":
            convert_fp16(src, dst)
        else:
            quantize_int8(src, dst, ArrayReader(*batches[role]))
        log.info("wrote %s (%.1f MB)", dst, dst.stat().st_size / 1e6)
    if (Path(model_dir) / "checkpoint").is_dir():
        shutil.copytree(Path(model_dir) / "checkpoint", out / "checkpoint", dirs_exist_ok=True)
    new = ModelContract.from_dict({**contract.to_dict(), "precision": precision})
    write_model_json(out, new)
    return out
