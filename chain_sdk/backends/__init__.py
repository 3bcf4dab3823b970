"""Inference backends behind one interface (`Backend.run(inputs) -> outputs`).

    create_backend("auto", "model/chain.onnx", device=None)

"auto" picks by probing -- it creates the session and checks what it really runs on, and counts
CUDA devices -- never by what is installed: onnxruntime-gpu advertises CUDA on machines where it
cannot use it. Order: TensorRT for an engine file (.plan/.engine); for ONNX, onnxruntime on CUDA
when a CUDA device is counted and the CUDA session really starts, else onnxruntime on CPU, else
torch eager. Each backend module is imported only when tried, so `import chain_sdk` stays light.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from chain_sdk.backends.base import Backend, available_cores, parse_device
from chain_sdk.backends.engine_dir import ENGINE_SUFFIXES
from chain_sdk.errors import BackendUnavailableError

log = logging.getLogger(__name__)

KINDS = ("auto", "onnxruntime", "tensorrt", "torch")


def cuda_device_count() -> int:
    """CUDA devices the driver reports (0 without a driver or without cuda-python)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        return 0
    try:
        err, count = runtime.cudaGetDeviceCount()
    except Exception:  # cuda-python raises when the driver library itself is missing
        return 0
    return int(count) if int(err) == 0 and count else 0


def create_backend(kind: str, graph: str | os.PathLike, *, device: str | None = None,
                   threads: int | None = None) -> Backend:
    """A backend for one graph file (`.onnx`, or `.plan`/`.engine` for TensorRT).

    The torch backend rebuilds the module of the graph's role (its file stem: backbone,
    temporal, chain) from the checkpoint in the graph's model directory.
    Raises BackendUnavailableError (with every reason, for "auto") when nothing can run it.
    """
    if kind not in KINDS:
        raise ValueError(f"backend must be one of {KINDS}, got {kind!r}")
    if device is not None:
        parse_device(device)  # "gpu0" raises here instead of running on the CPU
    path = Path(graph)
    if kind == "auto":
        return _auto(path, device, threads)
    return _create(kind, path, device, threads)


def _backend_class(kind: str) -> type[Backend]:
    if kind == "onnxruntime":
        from chain_sdk.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend
    if kind == "torch":
        from chain_sdk.backends.torch import TorchBackend

        return TorchBackend
    from chain_sdk.backends.tensorrt import TensorRTBackend

    return TensorRTBackend


def _create(kind: str, path: Path, device: str | None, threads: int | None) -> Backend:
    return _backend_class(kind)(path, device=device, threads=threads)


def _auto(path: Path, device: str | None, threads: int | None) -> Backend:
    if path.suffix in ENGINE_SUFFIXES:
        return _create("tensorrt", path, device, threads)
    reasons = []
    wants_cuda = device is None or device.startswith("cuda")
    if wants_cuda:
        count = cuda_device_count()
        if count:
            try:
                return _create("onnxruntime", path, device or "cuda", threads)
            except BackendUnavailableError as exc:
                reasons.append(f"onnxruntime cuda: {exc}")
        else:
            reasons.append("cuda: no CUDA device counted")
        if device is not None:  # asked for CUDA explicitly: do not silently run on CPU
            raise BackendUnavailableError("; ".join(reasons))
    for kind in ("onnxruntime", "torch"):
        try:
            backend = _create(kind, path, "cpu", threads)
        except BackendUnavailableError as exc:
            reasons.append(f"{kind} cpu: {exc}")
            continue
        log.debug("auto backend for %s: %r (%s)", path.name, backend, "; ".join(reasons))
        return backend
    raise BackendUnavailableError("no backend can run " + str(path) + ": " + "; ".join(reasons))


__all__ = ["KINDS", "Backend", "available_cores", "create_backend", "cuda_device_count", "parse_device"]
