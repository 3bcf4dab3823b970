"""ONNX Runtime backend, CPU or CUDA execution provider.

CUDA is verified after the session is created: onnxruntime-gpu lists CUDAExecutionProvider even
without a GPU or without the CUDA libraries, and then silently runs on CPU (docs/research/deploy.md §2). A
session asked for CUDA that did not get it raises BackendUnavailableError instead.

Device inputs (torch tensors, `__cuda_array_interface__` arrays: `base.device_array`) are bound
by pointer with onnxruntime's IOBinding (`bind_input(name, device_type, device_id, element_type,
shape, buffer_ptr)`), so frames decoded and resized on the GPU are read where they are; outputs
(features, codes: small) are copied to the host.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from chain_sdk.backends.base import Backend, DeviceArray, available_cores, device_array, parse_device
from chain_sdk.errors import BackendUnavailableError, ModelError, ModelMismatchError

log = logging.getLogger(__name__)


class OnnxRuntimeBackend(Backend):
    """One `onnxruntime.InferenceSession` over one graph file."""

    name = "onnxruntime"

    def __init__(self, graph_path: str | os.PathLike, *, device: str | None = None,
                 threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError(
                f"onnxruntime is not installed ({exc}); pip install \".[cpu]\" "
                "(or \".[gpu]\" for CUDA; distribution chain-video-hash)") from exc
        path = Path(graph_path)
        if not path.is_file():
            raise ModelError(f"{path}: graph file not found")
        kind, index = parse_device(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or available_cores()
        options.inter_op_num_threads = 1  # the graphs are sequential chains; no branch parallelism
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: ORT's warnings are about its own internals
        # ORT's worker threads spin after each run by default; on a small CPU that spinning
        # starves the decoder threads that should be preparing the next batch.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if kind == "cuda":
            providers: list = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
            if kind == "cuda":
                raise BackendUnavailableError(f"onnxruntime CUDA session failed: {exc}") from exc
            raise ModelError(f"{path}: onnxruntime cannot load it: {exc}") from exc
        if kind == "cuda" and "CUDAExecutionProvider" not in self._session.get_providers():
            raise BackendUnavailableError(
                "onnxruntime could not start its CUDA provider (no GPU, or the CUDA/cuDNN "
                f"libraries of this onnxruntime-gpu are missing); available: {ort.get_available_providers()}")
        self.device = f"{kind}:{index}" if kind == "cuda" else "cpu"
        self.threads = options.intra_op_num_threads
        self.graph_path = path
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._outputs = [o.name for o in self._session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.check_inputs(inputs)
        bound = {k: device_array(inputs[k]) for k in self._inputs}
        if any(b is not None for b in bound.values()):
            return self._run_bound(inputs, bound)
        results = self._session.run(self._outputs, {k: inputs[k] for k in self._inputs})
        return dict(zip(self._outputs, results))

    def _run_bound(self, inputs: dict[str, np.ndarray], bound: dict[str, DeviceArray | None]
                   ) -> dict[str, np.ndarray]:
        """IOBinding: device inputs by pointer (zero copy), host inputs as they are."""
        binding = self._session.io_binding()
        for name, where in bound.items():
            if where is None:
                binding.bind_cpu_input(name, np.ascontiguousarray(inputs[name]))
                continue
            if where.device_type == "cuda" and self.device == "cpu":
                raise ModelMismatchError(f"input {name} is on cuda:{where.device_id}; this session runs on the CPU")
            if where.device_type == "cuda" and f"cuda:{where.device_id}" != self.device:
                raise ModelMismatchError(f"input {name} is on cuda:{where.device_id}; this session runs on {self.device}")
            binding.bind_input(name, where.device_type, where.device_id, where.dtype.type, list(where.shape),
                               where.pointer)
        for name in self._outputs:
            binding.bind_output(name, "cpu")
        self._session.run_with_iobinding(binding)
        return dict(zip(self._outputs, binding.copy_outputs_to_cpu()))

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"OnnxRuntimeBackend({self.graph_path.name!r}, device={self.device!r}, threads={self.threads})"
