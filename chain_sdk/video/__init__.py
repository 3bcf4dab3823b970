"""Video input: open anything that is a video, read it sequentially, sample clips.

    from chain_sdk.video import open_video, read_frames, sample_clip, segment_indices
    clip = sample_clip("movie.mp4", frames=25, resize=(224, 224))   # Frames(frames, timestamps)

Frames are BGR uint8 (N, H, W, 3) (OpenCV's convention) with float64 timestamps in seconds.
"""

from chain_sdk.video.sampling import (
    SEEK_MIN_STRIDE,
    Frames,
    ShortVideoWarning,
    iter_frames,
    read_frames,
    sample_clip,
    segment_indices,
)
from chain_sdk.video.source import (
    DEFAULT_FPS,
    ArraySource,
    CaptureSource,
    IterableSource,
    VideoSource,
    open_video,
)

__all__ = [
    "DEFAULT_FPS", "SEEK_MIN_STRIDE", "ArraySource", "CaptureSource", "Frames", "IterableSource",
    "ShortVideoWarning", "VideoSource", "iter_frames", "open_video", "read_frames", "sample_clip",
    "segment_indices",
]
