"""The torch preprocessing of the GPU decode path (chain_sdk/video/tensor_fit.py) against the
numpy/OpenCV path it replaces, on CPU tensors: random images of all sizes (hypothesis), bars of
random widths, and the sample clips sampled both ways."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_sdk.video import borders, sample_clip

torch = pytest.importorskip("torch")

from chain_sdk.video import tensor_fit  # noqa: E402


def _image(rng: np.random.Generator, h: int, w: int, smooth: bool) -> np.ndarray:
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(img, (5, 5), 1.5) if smooth and min(h, w) >= 5 else img


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 300), w=st.integers(1, 300), oh=st.integers(1, 240), ow=st.integers(1, 240),
       smooth=st.booleans(), seed=st.integers(0, 2**31))
def test_area_resize_is_opencv_inter_area_within_one_level(h, w, oh, ow, smooth, seed):
    img = _image(np.random.default_rng(seed), h, w, smooth)
    want = cv2.resize(img, (ow, oh), interpolation=cv2.INTER_AREA)
    got = tensor_fit.area_resize(torch.from_numpy(img), (ow, oh)).numpy()
    assert got.shape == want.shape and got.dtype == np.uint8
    diff = np.abs(got.astype(np.int16) - want)
    assert diff.max() <= 1
    if ow <= w and oh <= h:  # the shrinking path is OpenCV's arithmetic: ties only
        assert (diff > 0).mean() <= 0.01


@pytest.mark.parametrize("shape", [(720, 1280), (360, 640), (448, 448), (1080, 1920), (144, 176)])
def test_area_resize_to_the_model_input_on_typical_frames(shape):
    img = _image(np.random.default_rng(0), *shape, smooth=True)
    want = cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA)
    got = tensor_fit.area_resize(torch.from_numpy(img), (224, 224)).numpy()
    assert np.abs(got.astype(np.int16) - want).max() <= 1
    if shape == (448, 448):  # an exact 2x2 reduction: OpenCV's integer path, reproduced exactly
        assert np.array_equal(got, want)


def test_area_weights_rows_sum_to_one_and_cover_the_source():
    for n_in, n_out in ((1280, 224), (7, 3), (5, 5), (3, 7), (1, 4)):
        for weights in (tensor_fit.area_weights, tensor_fit.linear_weights):
            if weights is tensor_fit.area_weights and n_out > n_in:
                continue
            w = weights(n_in, n_out)
            np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
            assert (w >= 0).all()


@st.composite
def barred_clips(draw):
    n = draw(st.integers(1, 4))
    h, w = draw(st.integers(8, 60)), draw(st.integers(8, 60))
    top, bottom = draw(st.integers(0, h // 2)), draw(st.integers(0, h // 2))
    left, right = draw(st.integers(0, w // 2)), draw(st.integers(0, w // 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    bar = draw(st.integers(0, 30))  # near the limit of 24 on both sides
    frames[:, :top], frames[:, h - bottom:] = bar, bar
    frames[:, :, :left], frames[:, :, w - right:] = bar, bar
    return frames


@settings(max_examples=80, deadline=None)
@given(frames=barred_clips())
def test_content_box_and_dark_edge_match_the_numpy_rule(frames):
    t = torch.from_numpy(frames)
    assert tensor_fit.content_box(t) == borders.content_box(frames)
    for f, tf in zip(frames, t):
        assert tensor_fit.has_dark_edge(tf) == borders.has_dark_edge(f)


def test_sampling_on_a_torch_device_gives_the_numpy_clip(sample_paths):
    """sample_clip(device=...) (the GPU path's preprocessing, here on CPU tensors) gives the
    frames at the same times and the same pixels to within one grey level (the Encoder's
    settings: crop mode on; these clips have no bars, the letterbox test below has)."""
    for path in sample_paths:
        want = sample_clip(path, 25, (224, 224), crop_borders=True)
        got = sample_clip(path, 25, (224, 224), crop_borders=True, device="cpu")
        assert isinstance(got.frames, torch.Tensor) and got.frames.dtype == torch.uint8
        np.testing.assert_array_equal(got.timestamps, want.timestamps)
        diff = np.abs(got.frames.numpy().astype(np.int16) - want.frames)
        assert diff.max() <= 1, path.name
        assert (diff > 0).mean() < 0.15, path.name


def test_a_letterboxed_copy_is_cropped_as_on_the_host(sample_paths, ffmpeg_copy):
    """The bar crop (work copies, box on the resized frames, crop rescaled) on tensors."""
    boxed = ffmpeg_copy(sample_paths[0], "scale=640:-2,pad=640:480:(ow-iw)/2:(oh-ih)/2:black", "boxed.mp4")
    want = sample_clip(boxed, 25, (224, 224), crop_borders=True)
    got = sample_clip(boxed, 25, (224, 224), crop_borders=True, device="cpu")
    whole = sample_clip(boxed, 25, (224, 224), crop_borders=False)
    assert not np.array_equal(want.frames, whole.frames)  # the bars were found and cropped
    assert np.abs(got.frames.numpy().astype(np.int16) - want.frames).max() <= 1
