"""Black-bar detection (chain_sdk.video.borders) and the crop mode of the sampler: synthetic
clips with known bars, and real H.264 copies letterboxed and pillarboxed by ffmpeg."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_sdk import data
from chain_sdk.video import Box, FrameFit, content_box, crop_borders, read_frames, sample_clip
from chain_sdk.video.borders import BAR_LIMIT


def barred(picture: np.ndarray, top: int, bottom: int, left: int, right: int,
           noise: int = 0, seed: int = 0) -> np.ndarray:
    """`picture` [N, h, w, 3] padded with bars of the given widths, bar pixels in [0, noise]."""
    n, h, w, _ = picture.shape
    rng = np.random.default_rng(seed)
    out = rng.integers(0, noise + 1, (n, top + h + bottom, left + w + right, 3), dtype=np.uint8)
    out[:, top:top + h, left:left + w] = picture
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 20), st.integers(0, 20), st.integers(0, 24), st.integers(0, 24),
       st.integers(1, 4), st.integers(0, 40), st.integers(0, 2**31 - 1))
def test_bars_of_any_size_are_found_exactly(top, bottom, left, right, n, noise, seed):
    """Bar pixels up to BAR_LIMIT (ringing) around a picture whose edge lines are lit: the box is
    the picture, whatever each bar's width, including none (the picture keeps >= MIN_KEEP)."""
    rng = np.random.default_rng(seed)
    picture = rng.integers(0, 256, (n, 40, 48, 3), dtype=np.uint8)
    picture[:, [0, -1], :, 2] = 255  # lit edge rows and columns: the picture starts right there
    picture[:, :, [0, -1], 2] = 255
    clip = barred(picture, top, bottom, left, right, noise=min(noise, int(BAR_LIMIT)), seed=seed)
    box = content_box(clip)
    assert box == Box(top, top + 40, left, left + 48)
    np.testing.assert_array_equal(crop_borders(clip), picture)


def test_a_line_dark_in_every_frame_but_one_is_picture():
    """The box is per clip: a dark top in most frames (a night scene, a fade) is not a bar."""
    clip = np.full((5, 40, 40, 3), 120, np.uint8)
    clip[:, :8] = 0
    assert content_box(clip) == Box(8, 40, 0, 40)
    clip[3, :8] = 90
    assert content_box(clip) == Box(0, 40, 0, 40)


def test_a_black_or_nearly_black_clip_is_left_whole():
    assert content_box(np.zeros((3, 30, 40, 3), np.uint8)) == Box(0, 30, 0, 40)
    clip = np.zeros((3, 30, 40, 3), np.uint8)
    clip[:, 14:16] = 200  # two lit rows: less than MIN_KEEP of the height
    assert content_box(clip) == Box(0, 30, 0, 40)
    assert content_box(clip, min_keep=0.05) == Box(14, 16, 0, 40)


def test_greyscale_frames_and_bad_shapes():
    clip = np.zeros((2, 20, 30), np.uint8)
    clip[:, 5:15] = 100
    assert content_box(clip) == Box(5, 15, 0, 30)
    with pytest.raises(ValueError, match="non-empty"):
        content_box(np.zeros((0, 20, 30, 3), np.uint8))
    with pytest.raises(ValueError):
        content_box(np.zeros((20, 30), np.uint8))


def test_box_scaling_rounds_inwards():
    assert Box(90, 630, 0, 1280).scaled(0.5, 0.35) == Box(45, 315, 0, 448)
    assert Box(1, 9, 3, 7).scaled(0.5, 0.5) == Box(1, 4, 2, 3)


def test_frame_fit_without_bars_returns_the_direct_resizes():
    """Crop mode changes nothing on a clip without bars: bit-identical to plain resizing."""
    for name in ("bikes.mp4", "cityCC0.mpg"):
        plain = sample_clip(data.path(name), 8, resize=(224, 224)).frames
        cropped = sample_clip(data.path(name), 8, resize=(224, 224), crop_borders=True).frames
        np.testing.assert_array_equal(cropped, plain)


def test_a_one_pixel_dark_edge_is_a_bar():
    """carphone.mp4 (QCIF) has a dark first column in every frame: it is cropped like any bar."""
    native = sample_clip(data.path("carphone.mp4"), 8).frames
    assert content_box(native) == Box(0, 144, 1, 176)
    assert crop_borders(native).shape == (8, 144, 175, 3)


def test_frame_fit_native_size_crops_the_frames_themselves():
    picture = np.full((3, 20, 30, 3), 150, np.uint8)
    fit = FrameFit(None, crop_borders=True)
    out = fit.clip([fit.frame(f) for f in barred(picture, 4, 4, 0, 0)])
    np.testing.assert_array_equal(out, picture)


@pytest.mark.parametrize("vf, bars", [
    ("scale=iw:trunc(ih*0.75/2)*2,pad=iw:ih/0.75:0:(oh-ih)/2", "rows"),  # the benchmark's letterbox
    ("scale=trunc(iw*0.7/2)*2:ih,pad=trunc(iw/0.7/2)*2:ih:(ow-iw)/2:0", "columns"),  # pillarbox
])
def test_real_h264_copies_with_bars_sample_like_their_original(ffmpeg_copy, vf, bars):
    """ffmpeg pads bikes.mp4 with bars and re-encodes it (CRF 23: ringing at the bar edge). The
    detected box is the padded picture within 2 px, and the cropped clip is the original up to
    resampling and compression: much closer than the uncropped clip."""
    src = data.path("bikes.mp4")
    copy = ffmpeg_copy(src, vf, "barred.mp4")
    frames = read_frames(copy).frames
    h, w = frames.shape[1:3]
    box = content_box(frames)
    if bars == "rows":
        expect = Box(round(h * 0.125), h - round(h * 0.125), 0, w)
    else:
        pad = (w - round(w * 0.7)) // 2
        expect = Box(0, h, pad, w - pad)
    assert np.abs(np.subtract(box, expect)).max() <= 2

    def error(clip):
        return np.abs(clip.astype(np.int16) - original.astype(np.int16)).mean()

    original = sample_clip(src, 8, resize=(224, 224)).frames
    cropped = sample_clip(copy, 8, resize=(224, 224), crop_borders=True).frames
    whole = sample_clip(copy, 8, resize=(224, 224)).frames
    assert error(cropped) < 6 < 4 * error(cropped) < error(whole)


def test_crop_mode_bounds_the_work_copy():
    """The work copy is at most twice the model input, and never upscaled."""
    fit = FrameFit((224, 224), crop_borders=True)
    direct, work = fit.frame(np.zeros((720, 1280, 3), np.uint8))
    assert direct.shape == (224, 224, 3) and work.shape == (448, 448, 3)
    _, small = fit.frame(np.zeros((144, 176, 3), np.uint8))
    assert small.shape == (144, 176, 3)
    assert FrameFit.nbytes((direct, work)) == direct.nbytes + work.nbytes
    resized = cv2.resize(np.zeros((144, 176, 3), np.uint8), (224, 224))
    assert FrameFit.nbytes(resized) == resized.nbytes
