"""The re-upload training augmentation (train/reupload.py) on real frames: one draw per clip."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("albumentations")
pytest.importorskip("imageio_ffmpeg")

from chain_sdk import data  # noqa: E402
from chain_sdk.video import read_frames  # noqa: E402
from train.reupload import ReuploadConfig, augment_window, ffmpeg_reencode  # noqa: E402

OUT = (64, 64)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    clip = read_frames(str(data.path("carphone.mp4")), max_frames=12).frames
    return np.ascontiguousarray(clip)


def test_output_shape_and_type_over_many_draws(frames) -> None:
    rng = np.random.default_rng(0)
    donors = [frames[::-1].copy()]
    for _ in range(12):
        out = augment_window(frames, rng, OUT, donors, ReuploadConfig(codec_p=0.0))
        assert out.shape == (len(frames), *OUT, 3) and out.dtype == np.uint8


def test_one_draw_for_every_frame(frames) -> None:
    """A still clip stays still under every spatial edit: the draw is the same for all frames
    (temporal edits, which change frames on purpose, are off here, and the donor clip pasted
    as a logo is still too)."""
    still = np.repeat(frames[:1], 6, axis=0)
    config = ReuploadConfig(intro_p=0.0, drop_p=0.0, codec_p=0.0, overlay_p=1.0, photometric_p=1.0, quality_p=1.0)
    for seed in range(8):
        out = augment_window(still, np.random.default_rng(seed), OUT, [still[:, ::-1].copy()], config)
        assert all(np.array_equal(out[0], f) for f in out[1:]), seed


def test_same_seed_same_clip(frames) -> None:
    a = augment_window(frames, np.random.default_rng(5), OUT, [frames], ReuploadConfig(codec_p=0.0))
    b = augment_window(frames, np.random.default_rng(5), OUT, [frames], ReuploadConfig(codec_p=0.0))
    np.testing.assert_array_equal(a, b)


def test_ffmpeg_reencode_keeps_count_and_content(frames) -> None:
    out = ffmpeg_reencode(frames, crf=30)
    assert out.shape[0] == len(frames) and out.shape[1:] == (frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2, 3)
    err = np.abs(out.astype(int) - frames[:, : out.shape[1], : out.shape[2]].astype(int)).mean()
    assert 0 < err < 20  # lossy, but the same pictures
    slow = ffmpeg_reencode(frames, crf=30, fps_out=10.0)  # 30 -> 10 fps: runs of repeated frames
    assert len(slow) == len(frames) and any(np.array_equal(slow[i], slow[i + 1]) for i in range(len(slow) - 1))
