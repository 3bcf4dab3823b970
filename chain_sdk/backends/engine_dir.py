"""What makes a TensorRT engine directory valid on this machine: its build record.

Engines are not portable. `engine.json` records the cache key (TensorRT version, GPU compute
capability, precision, optimization profile, graph role, model version, DLA core);
`check_engine_dir` refuses (EngineError) an engine built under another key, and the builder
(`chain_sdk.export.tensorrt_build`) rebuilds one. Shared by the runtime backend and the builder;
`import tensorrt` happens inside functions, so this module imports without TensorRT.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

from chain_sdk.contract import ENGINE_JSON, ModelContract, read_model_dir
from chain_sdk.errors import BackendUnavailableError, EngineError

ENGINE_SUFFIXES = (".plan", ".engine")  # a serialized engine's file name ends so
STRONG_TYPING_SINCE = (10, 12)


@dataclass(frozen=True)
class Profile:
    """Batch range of the optimization profile; T is fixed to the contract's frames."""

    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 32

    def __post_init__(self) -> None:
        if not (1 <= self.min_batch <= self.opt_batch <= self.max_batch):
            raise EngineError(f"profile needs 1 <= min <= opt <= max batch, got {self}")


def require_tensorrt() -> str:
    """TensorRT's version, or BackendUnavailableError (type stubs alone import as a namespace package).

    Callers then `import tensorrt as trt` themselves, so mypy checks every call against the stubs.
    """
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError(f"TensorRT is not installed ({exc})") from exc
    if not hasattr(trt, "Builder"):
        raise BackendUnavailableError("TensorRT is not installed (only type stubs found)")
    return str(trt.__version__)


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def cuda_runtime() -> Any:
    """cuda-python's runtime module, once a CUDA device is known to exist (else BackendUnavailableError)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as exc:
        raise BackendUnavailableError(f"cuda-python is not installed ({exc})") from exc
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or not count:
        raise BackendUnavailableError(f"no CUDA device ({err})")
    return cudart


def compute_capability(device: int = 0) -> str:
    """'8.7' etc. via cuda-python; BackendUnavailableError without a usable GPU."""
    cudart = cuda_runtime()
    err, props = cudart.cudaGetDeviceProperties(device)
    if err != cudart.cudaError_t.cudaSuccess:
        raise BackendUnavailableError(f"cannot query CUDA device {device} ({err})")
    return f"{props.major}.{props.minor}"


def cache_key(trt_version: str, capability: str, precision: str, profile: Profile, role: str, model_version: str,
              dla_core: int | None) -> str:
    """Engines built under a different key are stale."""
    text = json.dumps([trt_version, capability, precision, asdict(profile), role, model_version, dla_core])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def engine_info(contract: ModelContract, profile: Profile, role: str, dla_core: int | None) -> dict[str, Any]:
    trt_version = require_tensorrt()
    capability = compute_capability()
    return {
        "tensorrt_version": trt_version,
        "compute_capability": capability,
        "precision": contract.precision,
        "profile": asdict(profile),
        "role": role,
        "dla_core": dla_core,
        "strongly_typed": version_tuple(trt_version) >= STRONG_TYPING_SINCE,
        "cache_key": cache_key(trt_version, capability, contract.precision, profile, role,
                               contract.model_version, dla_core),
    }


def check_engine_dir(engine_dir: str | os.PathLike) -> ModelContract:
    """Read an engine directory and refuse it (EngineError) if it was built for another setup."""
    contract = read_model_dir(engine_dir)
    info = contract.extra.get("engine")
    if not info:
        raise EngineError(f"{engine_dir}: {ENGINE_JSON} has no engine build record")
    current = engine_info(contract, Profile(**info["profile"]), info["role"], info.get("dla_core"))
    if current["cache_key"] != info["cache_key"]:
        raise EngineError(
            f"{engine_dir}: engine built for TensorRT {info['tensorrt_version']} on compute capability "
            f"{info['compute_capability']}, this machine has TensorRT {current['tensorrt_version']} on "
            f"{current['compute_capability']}: rebuild it (chain-export trt)"
        )
    return contract
