"""Read a legacy (pre-1.6, non-zip) `torch.save` state_dict into numpy arrays, without torch.

The file is five pickles followed by raw storages (torch/serialization.py `_legacy_save`):
magic number, protocol version, sys info, the object (tensors refer to storages by key through
persistent ids), the list of storage keys; then per key an int64 element count and the
little-endian bytes. The object pickle is read by an unpickler that can build nothing but an
OrderedDict and tensors (`torch._utils._rebuild_tensor_v2` over `torch.*Storage`), so a crafted
file raises instead of running code.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
from typing import Any

import numpy as np

from chain_sdk.errors import ModelError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _Storage:
    """A storage named in the object pickle; its bytes arrive after the pickles."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype, self.numel = dtype, numel
        self.array: np.ndarray | None = None


class _LazyTensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self) -> np.ndarray:
        base = self.storage.array
        if base is None:
            raise ModelError("torch pickle: a tensor's storage is missing from the file")
        item = base.itemsize
        needed = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride)) + 1
        if any(s == 0 for s in self.size):
            return np.zeros(self.size, base.dtype)
        if self.offset < 0 or needed > base.size:
            raise ModelError("torch pickle: a tensor reaches past its storage")
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=tuple(st * item for st in self.stride))
        return np.array(view)  # own, contiguous copy


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise ModelError("torch pickle: a tensor is not backed by a storage")
    return _LazyTensor(storage, int(storage_offset), size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only what a plain state_dict needs; every other global is refused."""

    def __init__(self, file: io.BufferedIOBase, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise ModelError(f"torch pickle: refusing to load {module}.{name} (not part of a state_dict)")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise ModelError(f"torch pickle: unsupported persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel, view = pid
        if view is not None:
            raise ModelError("torch pickle: storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, int(numel))
        return self.storages[key]


def _plain_load(f: io.BufferedIOBase) -> Any:
    """The header pickles hold only ints and dicts: refuse any global there too."""

    class Plain(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            raise ModelError(f"torch pickle: unexpected {module}.{name} in a header")

    return Plain(f).load()


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """name -> numpy array of a legacy torch state_dict file. Raises ModelError on anything else."""
    try:
        with open(path, "rb") as f:
            return _load(f)
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: not a legacy torch state_dict ({type(exc).__name__}: {exc})") from exc


def _load(f: io.BufferedIOBase) -> dict[str, np.ndarray]:
    if _plain_load(f) != MAGIC_NUMBER:
        raise ModelError("torch pickle: wrong magic number (a zip-format or foreign file)")
    if _plain_load(f) != PROTOCOL_VERSION:
        raise ModelError("torch pickle: unsupported protocol version")
    info = _plain_load(f)
    if not (isinstance(info, dict) and info.get("little_endian", False)):
        raise ModelError("torch pickle: only little-endian files are supported")
    storages: dict[str, _Storage] = {}
    state = _RestrictedUnpickler(f, storages).load()
    keys = _plain_load(f)
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise ModelError("torch pickle: the object is not a state_dict")
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise ModelError(f"torch pickle: storage {key!r} is listed but not used")
        (numel,) = struct.unpack("<q", f.read(8))
        if numel != storage.numel:
            raise ModelError(f"torch pickle: storage {key!r} has {numel} elements, expected {storage.numel}")
        raw = f.read(numel * storage.dtype.itemsize)
        if len(raw) != numel * storage.dtype.itemsize:
            raise ModelError("torch pickle: the file is truncated")
        storage.array = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    out = {}
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, _LazyTensor):
            raise ModelError(f"torch pickle: entry {name!r} is not a tensor")
        out[name] = tensor.materialise()
    return out
