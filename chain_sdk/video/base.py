"""The cursor interface every video source implements (`VideoSource`), shared by the OpenCV
sources (`source.py`) and the PyAV decoder (`pyav.py`), which `open_video` chooses between."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from chain_sdk.errors import UnsupportedVideoError

# Frames without a container rate (arrays, iterators) are timed at this rate unless told.
DEFAULT_FPS = 25.0


class SeekMismatch(Exception):
    """A seek or selective decode could not be verified: sampling decodes sequentially."""


class VideoSource:
    """A forward cursor over the frames of one video.

    `grab()` advances one frame and returns False at the end; `retrieve()` returns the frame
    last grabbed (BGR uint8 HxWx3); `timestamp` is its presentation time in seconds and `index`
    its position (0-based). `frame_count` and `fps` are what the container *claims* (None when
    unknown): sampling verifies them before trusting them.
    """

    description: str = "video"
    fps: float | None = None
    frame_count: int | None = None
    seekable: bool = False  # `seek(i)` is available (it still has to be verified per video)
    exact_seek: bool = False  # seeking is known exact and free (in-memory arrays)
    reopenable: bool = False  # `reopen()` gives a fresh cursor at frame 0

    def __init__(self) -> None:
        self.index = -1
        self.timestamp = float("nan")

    def grab(self) -> bool:
        raise NotImplementedError

    def retrieve(self) -> np.ndarray:
        raise NotImplementedError

    def read(self) -> np.ndarray | None:
        """grab() + retrieve(); None at the end."""
        return self.retrieve() if self.grab() else None

    def seek(self, index: int) -> bool:
        raise UnsupportedVideoError(self.description, "this source cannot seek")

    def frame_times(self) -> np.ndarray | None:
        """Presentation time (s) of every frame, known without decoding them (a container
        index), or None: then sampling decodes to find out. With it, `decode_at` is used."""
        return None

    def decode_at(self, indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) of each wanted frame (indices into `frame_times()`), ascending,
        decoding no more than needed. Raises `SeekMismatch` when it cannot be exact."""
        raise NotImplementedError

    def reopen(self) -> "VideoSource":
        raise UnsupportedVideoError(self.description, "this source cannot be read twice")

    def close(self) -> None:
        """Release the decoder. Safe to call twice."""

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        """(frame, timestamp) pairs from the current position to the end."""
        while self.grab():
            yield self.retrieve(), self.timestamp

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.description!r}, fps={self.fps}, "
                f"frame_count={self.frame_count})")
