"""Copy detection inside long videos: window codes with times, temporal alignment, calibrated
scores (`VideoIndex`, `Match`). numpy only at import time; the Encoder loads on first use."""

from chain_sdk.matching.align import AlignParams, Chain, align
from chain_sdk.matching.video_index import (
    DEFAULT_HOP,
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW,
    DuplicateVideoError,
    Match,
    VideoIndex,
)

__all__ = ["AlignParams", "Chain", "align", "DEFAULT_HOP", "DEFAULT_THRESHOLD", "DEFAULT_WINDOW",
           "DuplicateVideoError", "Match", "VideoIndex"]
