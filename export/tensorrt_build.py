"""ONNX model directory -> TensorRT engine directory (`engine.json` + `<role>.plan`).

Written for TensorRT >= 10.12 and 11.x the strongly typed way: precision comes from the ONNX
itself (fp16 AutoCast graph, int8 Q/DQ graph, see `quantize.py`), no precision builder flags and
no calibrators (both removed in TensorRT 11). Only for TensorRT < 10.12 (JetPack 6 ships 10.3)
does an fp16 request on an fp32 graph fall back to the legacy weakly typed `BuilderFlag.FP16`.

Engines are not portable: the cache key is (TensorRT version, GPU compute capability, precision,
profile), recorded in `engine.json`; `check_engine_dir` refuses (EngineError) or `build_engine`
rebuilds a mismatched engine, never runs it silently. DLA (Jetson AGX Orin / Orin NX) is optional
and meant for the per-frame CNN (`backbone` graph) only: it needs static shapes (min = opt = max
batch) and fp16/int8, and layers it cannot run fall back to the GPU.

`import tensorrt` happens inside functions: this module imports on machines without TensorRT.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from chain_sdk.contract import ENGINE_JSON, ModelContract, read_model_dir, write_model_json
from chain_sdk.backends.engine_dir import (
    STRONG_TYPING_SINCE,
    Profile,
    check_engine_dir,
    compute_capability,
    engine_info,
    require_tensorrt,
    version_tuple,
)
from chain_sdk.errors import EngineError
from chain_sdk.files import write_bytes

log = logging.getLogger(__name__)

# The engine's build record lives with the runtime (chain_sdk.backends.engine_dir); re-exported here.
__all__ = ["Profile", "build_engine", "build_plan", "check_engine_dir", "compute_capability", "engine_info",
           "require_tensorrt", "input_shapes"]

PLAN_SUFFIX = ".plan"


def input_shapes(contract: ModelContract, role: str, batch: int) -> tuple[str, tuple[int, ...]]:
    h, w, t = contract.input_height, contract.input_width, contract.frames
    if role == "backbone":
        return "frames", (batch, h, w, 3)  # batch counts frames here
    if role == "temporal":
        return "features", (batch, t, contract.feature_dim)
    return "frames", (batch, t, h, w, 3)


def build_plan(onnx_path: Path, contract: ModelContract, role: str, profile: Profile, *,
               workspace_bytes: int, optimization_level: int, timing_cache: Path | None,
               dla_core: int | None) -> bytes:
    """Parse and build one graph; returns the serialized engine."""
    require_tensorrt()
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = version_tuple(trt.__version__) >= STRONG_TYPING_SINCE
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineError(f"{onnx_path}: TensorRT cannot parse the graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    config.builder_optimization_level = optimization_level
    if not strongly_typed and contract.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # legacy weak typing (TensorRT < 10.12, e.g. JetPack 6)
    if not strongly_typed and contract.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # Q/DQ graph: explicit quantization, no calibrator
    if dla_core is not None:
        if role != "backbone":
            raise EngineError("DLA is for the per-frame CNN (backbone graph) only")
        if contract.precision == "fp32":
            raise EngineError("DLA runs fp16/int8 only: quantize the model first")
        if profile.min_batch != profile.max_batch:
            raise EngineError("DLA needs a static batch: min_batch = opt_batch = max_batch")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    name, _ = input_shapes(contract, role, 1)
    optimization = builder.create_optimization_profile()
    optimization.set_shape(name, trt.Dims(list(input_shapes(contract, role, profile.min_batch)[1])),
                           trt.Dims(list(input_shapes(contract, role, profile.opt_batch)[1])),
                           trt.Dims(list(input_shapes(contract, role, profile.max_batch)[1])))
    config.add_optimization_profile(optimization)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
    if timing_cache is not None:
        write_bytes(timing_cache, bytes(memoryview(cache.serialize())))
    return bytes(memoryview(plan))


def build_engine(model_dir: str | os.PathLike, out_dir: str | os.PathLike, profile: Profile = Profile(), *,
                 role: str = "chain", workspace_bytes: int = 2 << 30, optimization_level: int = 3,
                 timing_cache: str | os.PathLike | None = None, dla_core: int | None = None,
                 rebuild: bool = False) -> Path:
    """Build `<role>.plan` from a model directory into `out_dir` (reused if its cache key still matches)."""
    contract = read_model_dir(model_dir)
    if role not in contract.graphs:
        raise EngineError(f"{model_dir}: has no {role!r} graph (has {sorted(contract.graphs)})")
    out = Path(out_dir)
    info = engine_info(contract, profile, role, dla_core)
    if not rebuild and (out / ENGINE_JSON).is_file():
        try:
            existing = read_model_dir(out).extra.get("engine", {})
            if existing.get("cache_key") == info["cache_key"]:
                log.info("engine %s is up to date (key %s)", out, info["cache_key"])
                return out
            log.warning("engine in %s is stale (key %s, need %s): rebuilding", out, existing.get("cache_key"),
                        info["cache_key"])
        except Exception as exc:  # an unreadable engine dir is rebuilt, never used
            log.warning("engine in %s is unreadable (%s): rebuilding", out, exc)
    out.mkdir(parents=True, exist_ok=True)
    plan = build_plan(contract.graph_path(role), contract, role, profile, workspace_bytes=workspace_bytes,
                      optimization_level=optimization_level,
                      timing_cache=Path(timing_cache) if timing_cache else out / "timing.cache", dla_core=dla_core)
    plan_name = role + PLAN_SUFFIX
    write_bytes(out / plan_name, plan)
    shutil.copy2(contract.graph_path(role), out / contract.graphs[role])  # the source graph, for Triton/ORT
    engine_contract = ModelContract.from_dict({**contract.to_dict(), "graphs": {role: plan_name},
                                               "extra": {"engine": info, "onnx": contract.graphs[role]}})
    write_model_json(out, engine_contract, name=ENGINE_JSON)
    log.info("wrote %s (%.1f MB, key %s)", out / plan_name, len(plan) / 1e6, info["cache_key"])
    return out
