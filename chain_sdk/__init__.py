"""chain-sdk: CHAIN self-supervised video hashing -- video in, short binary code out.

    import chain_sdk
    enc = chain_sdk.Encoder()                 # packaged default model, best available backend
    code = enc.encode("clip.mp4")             # uint8 [bits/8], MSB-first
    index = chain_sdk.HammingIndex(enc.bits)

Importing this package loads numpy and OpenCV only: the Encoder, the backends (onnxruntime,
TensorRT, torch) and the Hamming index are imported on first use, so a runtime-only install
(e.g. a Jetson with TensorRT and no torch) never pays for what it does not use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chain_sdk import errors
from chain_sdk.codes import (
    HashCode,
    from_bitstring,
    from_hex,
    hamming_distance,
    pack_bits,
    to_bitstring,
    to_hex,
    unpack_bits,
)
from chain_sdk.errors import (
    BackendUnavailableError,
    ChainSDKError,
    CheckpointError,
    DecoderUnavailableError,
    EmptyVideoError,
    EngineError,
    IndexFormatError,
    ModelError,
    ModelMismatchError,
    NoVideoStreamError,
    PartialVideoError,
    PartialVideoWarning,
    UnsupportedVideoError,
    VideoDecodeError,
    VideoError,
    VideoOpenError,
)

from chain_sdk.version import __version__

# name -> module that defines it, imported on first attribute access (PEP 562)
_LAZY = {
    "Encoder": "chain_sdk.encoder",
    "Segment": "chain_sdk.encoder",
    "BatchResult": "chain_sdk.encoder",
    "HammingIndex": "chain_sdk.index",
    "VideoIndex": "chain_sdk.matching",
    "Match": "chain_sdk.matching",
    "open_video": "chain_sdk.video",
    "read_frames": "chain_sdk.video",
    "sample_clip": "chain_sdk.video",
    "create_backend": "chain_sdk.backends",
}

if TYPE_CHECKING:
    from chain_sdk.backends import create_backend
    from chain_sdk.encoder import BatchResult, Encoder, Segment
    from chain_sdk.index import HammingIndex
    from chain_sdk.matching import Match, VideoIndex
    from chain_sdk.video import open_video, read_frames, sample_clip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chain_sdk' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__", "errors", "Encoder", "Segment", "BatchResult", "HammingIndex", "VideoIndex", "Match", "open_video",
    "read_frames", "sample_clip", "create_backend", "HashCode", "from_bitstring", "from_hex",
    "hamming_distance", "pack_bits", "to_bitstring", "to_hex", "unpack_bits",
    "BackendUnavailableError", "ChainSDKError", "CheckpointError", "DecoderUnavailableError",
    "EmptyVideoError", "EngineError",
    "IndexFormatError", "ModelError", "ModelMismatchError", "NoVideoStreamError",
    "PartialVideoError", "PartialVideoWarning", "UnsupportedVideoError",
    "VideoDecodeError", "VideoError", "VideoOpenError",
]
