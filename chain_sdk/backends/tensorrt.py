"""TensorRT backend: runs an engine directory (`chain-export trt`) with the name-based v3 API.

`set_input_shape` / `set_tensor_address` / `execute_async_v3` (TensorRT 10 and 11), cuda-python
(`cuda.bindings.runtime`) for device memory, pinned host buffers and the stream. Buffers are
allocated once for the profile's max batch. Inputs may be host numpy arrays (copied through a
pinned staging buffer) or device arrays exposing `__cuda_array_interface__` (CuPy, Numba,
PyTorch CUDA tensors; `base.device_array`), whose pointer is bound directly: zero copy.

Construction raises BackendUnavailableError where TensorRT, cuda-python or a GPU is missing, and
EngineError for an engine built for another TensorRT / GPU / precision (never run silently).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from chain_sdk.backends.base import Backend, device_array, parse_device
from chain_sdk.backends.engine_dir import ENGINE_SUFFIXES, check_engine_dir, cuda_runtime, require_tensorrt
from chain_sdk.errors import BackendUnavailableError, EngineError

log = logging.getLogger(__name__)


def _check(result: Any, what: str) -> Any:
    """cuda-python returns (err, *values): raise EngineError on failure, return the values."""
    from cuda.bindings import runtime as cudart

    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise EngineError(f"CUDA {what} failed: {err}")
    return values[0] if len(values) == 1 else values


class _Buffer:
    """A device allocation plus its pinned host mirror, sized for the profile's max shape."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        from cuda.bindings import runtime as cudart

        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize
        self.device = int(_check(cudart.cudaMalloc(self.nbytes), "cudaMalloc"))
        self.host_ptr = int(_check(cudart.cudaMallocHost(self.nbytes), "cudaMallocHost"))
        import ctypes

        raw = (ctypes.c_byte * self.nbytes).from_address(self.host_ptr)
        self.host = np.frombuffer(memoryview(raw).cast("B"), dtype=self.dtype)

    def free(self) -> None:
        from cuda.bindings import runtime as cudart

        if self.device:
            cudart.cudaFree(self.device)
            cudart.cudaFreeHost(self.host_ptr)
            self.device = self.host_ptr = 0


class TensorRTBackend(Backend):
    """Runs `<role>.plan` of an engine directory; `run({"frames": uint8 array}) -> {"code", "logits"}`."""

    name = "tensorrt"

    def __init__(self, graph_path: str | os.PathLike, *, device: str | None = None,
                 threads: int | None = None) -> None:
        """`graph_path`: an engine directory or its `<role>.plan`; `device`: "cuda[:N]"
        (`threads` is accepted for the common constructor shape; TensorRT runs on the GPU)."""
        kind, index = parse_device(device or "cuda")
        if kind != "cuda":
            raise BackendUnavailableError("TensorRT runs on a CUDA device only")
        path = Path(graph_path)
        engine_dir = path.parent if path.suffix in ENGINE_SUFFIXES else path
        require_tensorrt()
        import tensorrt as trt

        cudart = cuda_runtime()
        _check(cudart.cudaSetDevice(index), "cudaSetDevice")
        self.device = f"cuda:{index}"
        self.contract = check_engine_dir(engine_dir)
        role, plan_name = next(iter(self.contract.graphs.items()))
        self.role = role
        plan = (Path(engine_dir) / plan_name).read_bytes()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise EngineError(f"{engine_dir}: TensorRT could not deserialize {plan_name}")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._stream = int(_check(cudart.cudaStreamCreate(), "cudaStreamCreate"))
        self._buffers: dict[str, _Buffer] = {}
        self.max_shapes: dict[str, tuple[int, ...]] = {}
        for name in self._inputs:
            _, _, max_shape = self._engine.get_tensor_profile_shape(name, 0)
            self.max_shapes[name] = tuple(max_shape)
        self.max_batch = next(iter(self.max_shapes.values()))[0]
        for name in self._inputs + self._outputs:
            shape = self.max_shapes.get(name) or (self.max_batch, *tuple(self._engine.get_tensor_shape(name))[1:])
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            self._buffers[name] = _Buffer(shape, dtype)
            self._context.set_tensor_address(name, self._buffers[name].device)

    def run(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        from cuda.bindings import runtime as cudart

        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.check_inputs(inputs)
        for name in self._inputs:
            array, buffer = inputs[name], self._buffers[name]
            shape = tuple(int(d) for d in array.shape)
            if shape[0] > self.max_batch or shape[1:] != self.max_shapes[name][1:]:
                raise EngineError(f"input {name} {shape} is outside the engine profile (max {self.max_shapes[name]})")
            if not self._context.set_input_shape(name, shape):
                raise EngineError(f"TensorRT refused input shape {shape} for {name}")
            on_device = device_array(array)
            if on_device is not None and on_device.device_type == "cuda":
                if on_device.dtype != buffer.dtype:
                    raise EngineError(f"input {name} is {on_device.dtype} on the device; the engine takes {buffer.dtype}")
                self._context.set_tensor_address(name, on_device.pointer)  # zero copy
                continue
            host = np.ascontiguousarray(array, dtype=buffer.dtype)
            buffer.host[: host.size] = host.reshape(-1)
            self._context.set_tensor_address(name, buffer.device)
            _check(cudart.cudaMemcpyAsync(buffer.device, buffer.host_ptr, host.nbytes, h2d, self._stream), "H2D copy")
        if not self._context.execute_async_v3(self._stream):
            raise EngineError("TensorRT execute_async_v3 failed")
        shapes = {}
        for name in self._outputs:
            shape = tuple(self._context.get_tensor_shape(name))
            nbytes = int(np.prod(shape)) * self._buffers[name].dtype.itemsize
            _check(cudart.cudaMemcpyAsync(self._buffers[name].host_ptr, self._buffers[name].device, nbytes, d2h,
                                          self._stream), "D2H copy")
            shapes[name] = shape
        _check(cudart.cudaStreamSynchronize(self._stream), "stream synchronize")
        return {name: self._buffers[name].host[: int(np.prod(shape))].reshape(shape).copy()
                for name, shape in shapes.items()}

    def close(self) -> None:
        from cuda.bindings import runtime as cudart

        for buffer in getattr(self, "_buffers", {}).values():
            buffer.free()
        self._buffers = {}
        if getattr(self, "_stream", 0):
            cudart.cudaStreamDestroy(self._stream)
            self._stream = 0
