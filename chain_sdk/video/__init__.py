"""Video input: open anything that is a video, read it sequentially, sample clips.

    from chain_sdk.video import open_video, read_frames, sample_clip, segment_indices
    clip = sample_clip("movie.mp4", frames=25, resize=(224, 224))   # Frames(frames, timestamps)
    clip = sample_clip("movie.mp4", 25, (224, 224), crop_borders=True)  # black bars cropped first
    for w in sample_windows("rtsp://cam", 25, window=10, hop=5, resize=(224, 224)):  # w.start, w.frames
        ...

Every consumer samples through these functions -- the Encoder, int8 calibration, export parity
checks, training windows -- so all of them see the frames the Encoder sees.

Frames are BGR uint8 (N, H, W, 3) (OpenCV's convention) with float64 timestamps in seconds.
"""

from chain_sdk.video.borders import Box, content_box, crop_borders
from chain_sdk.video.sampling import (
    SEEK_MIN_STRIDE,
    FrameFit,
    Frames,
    Sampled,
    ShortVideoWarning,
    WindowClip,
    iter_frames,
    read_frames,
    sample_clip,
    sample_video,
    sample_windows,
    segment_indices,
)
from chain_sdk.video.probes import CORNERS5, GRID9, PROBE_SETS, ProbeFit, Region, sample_probes
from chain_sdk.video.source import (
    DEFAULT_FPS,
    ArraySource,
    CaptureSource,
    IterableSource,
    SeekMismatch,
    VideoSource,
    open_video,
)

__all__ = [
    "CORNERS5", "DEFAULT_FPS", "GRID9", "PROBE_SETS", "ProbeFit", "Region", "SEEK_MIN_STRIDE", "ArraySource", "Box", "CaptureSource", "FrameFit", "Frames",
    "IterableSource", "Sampled", "SeekMismatch", "ShortVideoWarning", "VideoSource", "WindowClip",
    "content_box", "crop_borders", "iter_frames", "open_video", "read_frames", "sample_clip",
    "sample_probes", "sample_video", "sample_windows", "segment_indices",
]
