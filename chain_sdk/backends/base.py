"""The one interface every inference backend implements (Polygraphy-style runners).

A backend wraps one graph (or engine) with named inputs and outputs. Every backend is built the
same way, `Backend(graph_path, *, device=None, threads=None)`, and fails at construction, with
`BackendUnavailableError`, when it cannot actually run there: selection probes by creating
backends, never by checking what is installed. The same mistake raises the same error in every
backend: an unknown device string `ValueError`, missing or unexpected inputs
`ModelMismatchError`, a graph file that cannot be loaded `ModelError`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import numpy as np

from chain_sdk.errors import ModelMismatchError


def available_cores() -> int:
    """CPU cores this process may run on (cgroup/affinity aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def parse_device(device: str | None) -> tuple[str, int]:
    """'cpu' | 'cuda' | 'cuda:N' (None = 'cpu') -> (kind, index)."""
    text = (device or "cpu").lower()
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return kind, int(index or 0)


class DeviceArray(NamedTuple):
    """Where an input's memory is, for backends that bind it by pointer (no copy)."""

    device_type: str  # "cuda" or "cpu"
    device_id: int
    dtype: np.dtype
    shape: tuple[int, ...]
    pointer: int


def device_array(array: Any) -> DeviceArray | None:
    """The memory of a torch tensor (any device) or of a `__cuda_array_interface__` array
    (CuPy, Numba), or None for anything else (numpy arrays: the host path).

    The array must be C-contiguous (ModelMismatchError otherwise: a strided view would be read
    as its base). A torch CUDA tensor's current stream is synchronized first, so a backend that
    reads it on a stream of its own sees finished data; other CUDA arrays must be ready."""
    if type(array).__module__.startswith("torch") and hasattr(array, "data_ptr"):
        if not array.is_contiguous():
            raise ModelMismatchError("device input must be C-contiguous")
        if array.is_cuda:
            import torch

            torch.cuda.current_stream(array.device).synchronize()
        dtype = np.dtype(str(array.dtype).removeprefix("torch."))
        return DeviceArray(array.device.type, array.device.index or 0, dtype, tuple(array.shape),
                           int(array.data_ptr()))
    interface = getattr(array, "__cuda_array_interface__", None)
    if interface is None:
        return None
    dtype, shape = np.dtype(interface["typestr"]), tuple(int(d) for d in interface["shape"])
    if interface.get("strides") not in (None, ()):
        expected = tuple(int(np.prod(shape[i + 1:])) * dtype.itemsize for i in range(len(shape)))
        if tuple(interface["strides"]) != expected:
            raise ModelMismatchError("device input must be C-contiguous")
    device = getattr(array, "device", None)
    return DeviceArray("cuda", int(getattr(device, "id", 0) or 0), dtype, shape, int(interface["data"][0]))


class Backend(ABC):
    """`run({input_name: array}) -> {output_name: array}`: inputs are host numpy arrays or, for
    the GPU backends, device arrays (`device_array`: torch CUDA tensors, CuPy) read in place;
    outputs are host numpy arrays."""

    name: str = "backend"
    device: str = "cpu"  # where the graph runs, "cpu" or "cuda:N" (set by each backend)
    _inputs: list[str]  # set by each backend from its graph or engine
    _outputs: list[str]

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def check_inputs(self, inputs: dict[str, object]) -> None:
        """Refuse (ModelMismatchError) inputs whose names are not exactly the graph's."""
        missing, unexpected = set(self._inputs) - set(inputs), set(inputs) - set(self._inputs)
        if missing or unexpected:
            raise ModelMismatchError(f"{self!r} takes inputs {self._inputs}; missing {sorted(missing)}, "
                                     f"unexpected {sorted(unexpected)}")

    def close(self) -> None:
        """Release sessions, engines and device memory. Safe to call twice."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
