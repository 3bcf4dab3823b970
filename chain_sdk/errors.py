"""Typed errors. Every failure a user can cause raises a subclass of ChainSDKError.

Errors about a specific input carry it (`source`, a path or description) and a
human-readable `reason`, so a batch job can log exactly what failed and why.
"""

from __future__ import annotations


class ChainSDKError(Exception):
    """Base class of all chain-sdk errors."""


class VideoError(ChainSDKError):
    """A video could not be turned into frames."""

    def __init__(self, source: object, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class VideoOpenError(VideoError):
    """The source does not exist or no decoder could open it."""


class VideoDecodeError(VideoError):
    """The container opened but frames could not be decoded (corrupt or truncated data)."""


class EmptyVideoError(VideoError):
    """The source decoded to zero frames."""


class UnsupportedVideoError(VideoError):
    """The input kind, codec or frame layout is not supported."""


class NoVideoStreamError(UnsupportedVideoError):
    """The file is a valid media file without a video stream (e.g. audio only)."""


class PartialVideoError(VideoDecodeError):
    """Only part of the video decoded (truncated, corrupt or stalled); raised with `strict=True`
    instead of the `PartialVideoWarning` that is issued otherwise."""


class PartialVideoWarning(UserWarning):
    """Only part of a video decoded (truncated file, corrupt packets, a stream that stalled):
    the code was computed from the frames that did decode. `strict=True` makes it an error."""

    def __init__(self, source: object, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class ModelError(ChainSDKError):
    """A model, checkpoint or engine is missing, malformed or incompatible."""


class ModelMismatchError(ModelError):
    """A model's contract (bits, frames, input size, versions, shapes) does not match what is needed."""


class CheckpointError(ModelError):
    """A training checkpoint is missing files, has the wrong format version or wrong tensor shapes."""


class EngineError(ModelError):
    """A TensorRT engine is missing, stale (built for another GPU/TensorRT/precision) or failed to run."""


class BackendUnavailableError(ChainSDKError):
    """The requested inference backend cannot run on this machine (not installed, no device)."""


class DecoderUnavailableError(BackendUnavailableError):
    """The requested video decoder cannot run on this machine (a GPU decoder without its
    library, without a CUDA device, or without NVDEC support for the codec)."""


class IndexFormatError(ChainSDKError):
    """A Hamming index file is truncated, corrupted, foreign or of an unsupported version."""


class DataError(ChainSDKError):
    """Training or evaluation data (features, labels, video folders) is missing or malformed."""
