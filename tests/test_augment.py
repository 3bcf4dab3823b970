"""Spatial augmentation on raw frames: temporally consistent, each operation checked in isolation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from chain_sdk.train.augment import (
    SpatialAugmentConfig,
    SpatialParams,
    apply_params,
    augment_clip,
    draw_params,
)

NONE = SpatialAugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
                            grey_p=0.0)


def clip(n=5, h=48, w=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_same_transform_on_every_frame():
    frame = clip(1)[0]
    frames = np.stack([frame] * 6)
    for seed in range(20):
        out = augment_clip(frames, np.random.default_rng(seed), (32, 32))
        assert out.shape == (6, 32, 32, 3) and out.dtype == np.uint8
        assert all(np.array_equal(out[0], o) for o in out[1:])


def test_draws_differ_and_are_seeded():
    frames = clip()
    a = augment_clip(frames, np.random.default_rng(1), (32, 32))
    b = augment_clip(frames, np.random.default_rng(1), (32, 32))
    c = augment_clip(frames, np.random.default_rng(2), (32, 32))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_identity_params_only_resize():
    frames = clip(h=32, w=32)
    params = draw_params(np.random.default_rng(0), 32, 32, NONE)
    assert params == SpatialParams((0, 0, 32, 32), False, (), False)
    np.testing.assert_array_equal(apply_params(frames, params, (32, 32)), frames)


def test_flip_grey_and_jitter_operations():
    frames = clip(h=16, w=16)
    flipped = apply_params(frames, SpatialParams((0, 0, 16, 16), True, (), False), (16, 16))
    np.testing.assert_array_equal(flipped, frames[:, :, ::-1])
    grey = apply_params(frames, SpatialParams((0, 0, 16, 16), False, (), True), (16, 16))
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    import cv2

    expected = cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY).astype(int)
    assert np.abs(grey[0, ..., 0].astype(int) - expected).max() <= 1
    unit = tuple((op, 1.0) for op in ("brightness", "contrast", "saturation")) + (("hue", 0.0),)
    same = apply_params(frames, SpatialParams((0, 0, 16, 16), False, unit, False), (16, 16))
    assert np.abs(same.astype(int) - frames.astype(int)).max() <= 1  # float rounding only
    hue = apply_params(frames, SpatialParams((0, 0, 16, 16), False, (("hue", 0.5),), False), (16, 16))
    assert np.abs(hue.astype(int) - frames.astype(int)).mean() > 20  # half-turn of the hue circle
    dark = apply_params(frames, SpatialParams((0, 0, 16, 16), False, (("brightness", 0.5),), False),
                        (16, 16))
    assert np.abs(dark.astype(int) - np.rint(frames * 0.5)).max() <= 1


def test_crop_inside_frame_and_in_scale_range():
    cfg = SpatialAugmentConfig()
    for seed in range(200):
        y, x, h, w = draw_params(np.random.default_rng(seed), 90, 160, cfg).crop
        assert 0 <= y and y + h <= 90 and 0 <= x and x + w <= 160
        assert h * w >= 0.25 * 90 * 160 * cfg.crop_scale[0] or (h, w) == (90, 90)


def test_bad_frames_rejected():
    with pytest.raises(ValueError, match="uint8"):
        apply_params(np.zeros((2, 8, 8, 3), np.float32), SpatialParams((0, 0, 8, 8), False, (), False),
                     (8, 8))


def test_blur_and_letterbox_draws_apply_to_every_frame_alike():
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (4, 60, 80, 3), dtype=np.uint8)
    config = SpatialAugmentConfig(blur_p=1.0, letterbox_p=1.0, jitter_p=0.0, grey_p=0.0, flip_p=0.0)
    params = draw_params(np.random.default_rng(0), 60, 80, config)
    assert params.blur_sigma > 0 and params.letterbox[0] < 1.0
    out = apply_params(frames, params, (32, 32))
    assert out.shape == (4, 32, 32, 3)
    keep, horizontal = params.letterbox
    bars = out[:, 0, :, :] if horizontal else out[:, :, 0, :]
    assert (bars == 0).all()  # the bars are black on every frame
    # blur lowers the high-frequency energy of noise frames
    plain = apply_params(frames, replace(params, blur_sigma=0.0, letterbox=(1.0, True)), (32, 32))
    blurred = apply_params(frames, replace(params, letterbox=(1.0, True)), (32, 32))
    assert np.abs(np.diff(blurred.astype(int), axis=2)).mean() < np.abs(np.diff(plain.astype(int), axis=2)).mean()


def test_default_policy_draws_no_blur_letterbox_or_overlay():
    params = draw_params(np.random.default_rng(0), 60, 80, SpatialAugmentConfig())
    assert params.blur_sigma == 0.0 and params.letterbox == (1.0, True) and params.overlay is None


@pytest.mark.parametrize("seed", range(6))
def test_overlay_draws_a_box_with_text_on_every_frame_alike(seed):
    frames = np.full((3, 90, 120, 3), 128, np.uint8)
    config = replace(NONE, overlay_p=1.0)
    params = draw_params(np.random.default_rng(seed), 90, 120, config)
    o = params.overlay
    assert o is not None and 6 <= len(o.text) < 28 and 0.06 <= o.height <= 0.2 and 0 <= o.top <= 1 - o.height
    out = apply_params(frames, params, (90, 120))
    assert (out == out[0]).all()  # the same overlay on every frame
    changed = np.argwhere((out[0] != 128).any(axis=-1))
    top, bottom = round(o.top * 90), round(o.top * 90) + max(1, round(o.height * 90))
    assert len(changed) > 0
    assert changed[:, 0].min() >= top - 1 and changed[:, 0].max() <= bottom + 1  # text stays in the box rows
