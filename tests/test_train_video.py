"""Training from raw video: windows, augmented-feature cache, CLI, on the real sample clips.

The frozen backbone here is a tiny CNN with fixed random weights (fast on CPU); it exists only in
this test. One slow test runs the real EfficientNet-Lite0 on two short clips.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from chain_sdk.train import cli
from chain_sdk.nn.checkpoint import load_checkpoint
from chain_sdk.train.data import (
    ExtractionConfig,
    VideoWindowViews,
    build_window_cache,
    decode_overlapping_windows,
    decode_windows,
)
from torch import nn

from chain_sdk import data as sample_data
from chain_sdk.errors import EmptyVideoError, VideoOpenError

torch.set_num_threads(1)


class RandomCNN(nn.Module):
    """Test-only frame backbone: uint8 BGR [N, 32, 32, 3] -> 16-d features, fixed random weights."""

    name = "test_random_cnn"
    feature_dim = 16
    input_size = (32, 32)
    color_order = "BGR"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 16, 5, stride=4)
        self.calls = 0

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        x = frames.permute(0, 3, 1, 2).float() / 128.0 - 1.0
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


@pytest.fixture(scope="module")
def clips():
    return [sample_data.path("bikes.mp4"), sample_data.path("carphone.mp4"),
            sample_data.path("cityCC0.mpg")]


def config(**kw):
    base = {"frames": 6, "dense_frames": 12, "segment": 2.0, "draws": 2, "seed": 0}
    base.update(kw)
    return ExtractionConfig(**base)


def test_decode_windows_split_and_time_range(clips):
    windows = [w for w, _, _ in decode_windows(clips[0], config())]
    assert [w.start for w in windows] == [0.0, 2.0, 4.0, 6.0, 8.0]  # bikes.mp4 is 10 s
    ranged = list(decode_windows(clips[0], config(time_range=(2.0, 6.0))))
    assert [(w.start, w.end) for w, _, _ in ranged] == [(2.0, 4.0), (4.0, 6.0)]
    for w, frames, stamps in ranged:
        assert frames.dtype == np.uint8 and frames.shape[0] == 12 and min(frames.shape[1:3]) <= 256
        assert (stamps >= w.start).all() and (stamps < w.end).all()
        assert np.all(np.diff(stamps) > 0)
    short = list(decode_windows(clips[1], config(segment=10.0)))  # 4 s clip: one window
    assert len(short) == 1
    with pytest.raises(EmptyVideoError):
        list(decode_windows(clips[1], config(time_range=(100.0, 200.0))))


def test_windows_are_cropped_to_the_picture_inside_black_bars(clips, ffmpeg_copy):
    """Training sees what Encoder sees: a letterboxed copy of bikes.mp4 (ffmpeg pad, then
    H.264) gives windows of the original's aspect ratio, unless --no-crop-borders."""
    boxed = ffmpeg_copy(clips[0], "pad=iw:ih*4/3:0:ih/6", "letterboxed.mp4", crf=18)
    cfg = config(time_range=(0.0, 4.0))
    originals = [f for _, f, _ in decode_windows(clips[0], cfg)]
    cropped = [f for _, f, _ in decode_windows(boxed, cfg)]
    whole = [f for _, f, _ in decode_windows(boxed, config(time_range=(0.0, 4.0), crop_borders=False))]
    def aspect(frames):
        return frames.shape[1] / frames.shape[2]

    for o, c, w in zip(originals, cropped, whole):
        assert aspect(c) == pytest.approx(aspect(o), rel=0.02)
        assert aspect(w) == pytest.approx(aspect(o) * 4 / 3, rel=0.02)
        assert c.flags["C_CONTIGUOUS"]


def test_overlapping_windows_start_every_hop(clips):
    windows = [w for w, _, _ in decode_overlapping_windows(clips[0], config(time_range=(0.0, 6.0), hop=1.0))]
    assert sorted((w.start, w.end) for w in windows) == [
        (0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (3.0, 5.0), (4.0, 6.0)]  # (5, 7) would end past 6 s
    # a clip shorter than half a segment past the offset yields no extra window
    short = [w for w, _, _ in decode_overlapping_windows(clips[1], config(segment=10.0, hop=5.0))]
    assert len(short) == 1


def test_window_cache_features_and_reuse(clips, tmp_path):
    backbone = RandomCNN()
    windows = build_window_cache(clips, backbone, config(), tmp_path)
    assert len(windows) == 5 + 2 + 4  # 10 s, 4 s, 7.6 s clips in 2 s windows
    for w, feats in windows:
        assert feats.shape[0] == 2 and feats.shape[2] == 16 and 6 <= feats.shape[1] <= 12
        assert not np.allclose(feats[0], feats[1])  # two different augmentation draws
    calls = backbone.calls
    again = build_window_cache(clips, backbone, config(), tmp_path)
    assert backbone.calls == calls  # everything came from the cache
    for (w1, f1), (w2, f2) in zip(windows, again):
        assert w1 == w2 and np.array_equal(f1, f2)
    build_window_cache(clips[:1], backbone, config(draws=3), tmp_path)
    assert backbone.calls > calls  # another setting is another cache entry

    views = VideoWindowViews(windows, frames=6)
    rng = np.random.default_rng(0)
    x1, p1, x2, _ = views.sample(np.array([0, 3, 7]), rng)
    assert x1.shape == (3, 6, 16) and p1.tolist() == [list(range(6))] * 3
    assert not np.array_equal(x1, x2)


def test_temporal_crop_keeps_ordered_frames_of_a_contiguous_part():
    n, frames = 40, 8
    feats = np.arange(n, dtype=np.float32)[None, :, None].repeat(2, axis=0)  # feature = frame index
    views = VideoWindowViews([("w0", feats), ("w1", feats)], frames=frames, temporal_crop=0.5)
    spans = []
    for step in range(50):
        x1, _, x2, _ = views.sample(np.array([0, 1]), np.random.default_rng(step))
        for idx in np.concatenate([x1, x2])[..., 0]:
            assert (np.diff(idx) > 0).all() and 0 <= idx[0] and idx[-1] < n
            spans.append(idx[-1] - idx[0])
    assert min(spans) < n * 0.5 and max(spans) > n * 0.75  # both short and long crops occur
    with pytest.raises(ValueError, match="temporal_crop"):
        VideoWindowViews([("w0", feats), ("w1", feats)], frames=frames, temporal_crop=0.0)


def test_sample_with_draws_gives_the_views_of_sample_and_their_draws():
    n, draws, frames = 12, 3, 4
    # feature = 100 * draw + frame index, so a view's values tell which draw it came from
    feats = (100 * np.arange(draws)[:, None] + np.arange(n)[None, :]).astype(np.float32)[..., None]
    views = VideoWindowViews([("w0", feats), ("w1", feats + 1000)], frames=frames, temporal_crop=0.8)
    for step in range(20):
        indices = np.array([1, 0])
        plain = views.sample(indices, np.random.default_rng(step))
        (x1, p1, x2, p2), drawn = views.sample_with_draws(indices, np.random.default_rng(step))
        for a, b in zip(plain, (x1, p1, x2, p2)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal((x1[..., 0] % 1000) // 100, drawn[:, [0]].repeat(frames, 1))
        np.testing.assert_array_equal((x2[..., 0] % 1000) // 100, drawn[:, [1]].repeat(frames, 1))
    centres = views.teacher_clips(6)  # what a 6-frame model sees at run time: segment centres
    assert centres.shape == (2, draws, 6, 1)
    np.testing.assert_array_equal(centres[0, 2, :, 0], 200 + np.array([1, 3, 5, 7, 9, 11]))


def _agreement_with_teacher(taught: bool) -> float:
    """Bits the 3-frame student shares with random per-window teacher codes after 150 steps."""
    from chain_sdk.nn.chain import ChainConfig
    from chain_sdk.train.config import TrainConfig
    from chain_sdk.train.trainer import Trainer

    rng = np.random.default_rng(0)
    # frames of a window alike (its own direction plus noise), as frames of a clip are
    windows = [(f"w{i}", (rng.normal(size=16) + 0.3 * rng.normal(size=(2, 12, 16))).astype(np.float32))
               for i in range(8)]
    views = VideoWindowViews(windows, frames=3)
    teacher = np.where(rng.random((8, 1, 16)) < 0.5, -1.0, 1.0).astype(np.float32).repeat(2, axis=1)
    model = ChainConfig(bits=16, frames=3, feature_dim=16, dim=32, depth=1, heads=2)
    train = TrainConfig(epochs=150, batch_size=8, lr=3e-3, seed=0, order=False, scene=False,
                        teacher="test" if taught else None)
    trainer = Trainer(views, model, train, "unused", teacher_codes=teacher if taught else None)
    steps = np.random.default_rng(1)
    for _ in range(150):
        trainer.train_step(np.arange(8), steps)
    trainer.model.eval()
    with torch.no_grad():
        student = trainer.model(torch.from_numpy(views.teacher_clips(3)[:, 0])).video_logits
    return float((torch.sign(student) == torch.from_numpy(teacher[:, 0])).float().mean())


def test_a_student_learns_its_teachers_codes():
    # measured: 0.86 taught, 0.55 untaught (chance is 0.5)
    assert _agreement_with_teacher(taught=True) > 0.8
    assert _agreement_with_teacher(taught=False) < 0.65
    from chain_sdk.nn.chain import ChainConfig
    from chain_sdk.train.config import TrainConfig
    from chain_sdk.train.trainer import Trainer

    views = VideoWindowViews([("w0", np.zeros((1, 4, 16), np.float32))] * 2, frames=2)
    with pytest.raises(ValueError, match="go together"):
        Trainer(views, ChainConfig(bits=16, frames=2, feature_dim=16, dim=32, depth=1, heads=2),
                TrainConfig(teacher="test"), "unused")


def test_cli_fit_from_videos(clips, tmp_path, monkeypatch):
    from chain_sdk.nn import backbones

    monkeypatch.setitem(backbones._REGISTRY, "test_random_cnn", lambda **kw: RandomCNN())
    out = tmp_path / "ck"
    argv = ["fit", "--videos", *map(str, clips), "--backbone", "test_random_cnn", "--bits", "16",
            "--frames", "6", "--dense-frames", "12", "--segment", "2", "--augment-draws", "2",
            "--batch-size", "4", "--epochs", "1", "--dim", "32", "--depth", "1", "--heads", "2",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    assert cli.main(argv) == 0
    model, config_json = load_checkpoint(out)
    assert config_json["backbone"] == {"name": "test_random_cnn", "feature_dim": 16, "input_size": [32, 32]}
    assert config_json["training"]["data"]["kind"] == "videos"
    assert config_json["training"]["data"]["spatial_augmentation"] is True
    assert config_json["training"]["extra"]["augmentation"]["augment_draws"] == 2
    assert len(config_json["training"]["data"]["windows"]) == 11
    assert model.config.frames == 6 and model.config.feature_dim == 16
    assert cli.main(argv + ["--resume", "--epochs", "2"]) == 0
    assert json.loads((out / "config.json").read_text())["training"]["step"] == 4  # 11 // 4 per epoch
    missing = ["fit", "--videos", str(tmp_path / "nope.mp4"), "--backbone", "test_random_cnn",
               "--out", str(tmp_path / "x")]
    assert cli.main(missing) == 1  # no videos: a data error (exit status 1)
    views = argv[:-1] + [str(tmp_path / "v"), "--view-frames", "3"]  # a features-only option
    assert cli.main(views) == 2 and not (tmp_path / "v").exists()
    student = argv[:-1] + [str(tmp_path / "student"), "--frames", "3", "--teacher", str(out)]
    assert cli.main(student) == 0
    extra = json.loads((tmp_path / "student" / "config.json").read_text())["training"]
    assert extra["teacher"] == str(out) and len(extra["extra"]["teacher_weights_sha256"]) == 64
    wrong_bits = argv[:-1] + [str(tmp_path / "s8"), "--bits", "8", "--teacher", str(out)]
    assert cli.main(wrong_bits) != 0 and not (tmp_path / "s8").exists()


def test_missing_video_is_a_typed_error(tmp_path):
    with pytest.raises(VideoOpenError):
        build_window_cache([tmp_path / "missing.mp4"], RandomCNN(), config(), tmp_path)


@pytest.mark.slow
def test_real_efficientnet_lite0_on_short_clips(clips, tmp_path):
    out = tmp_path / "ck"
    argv = ["fit", "--videos", str(clips[1]), str(sample_data.path("bigbuckbunny.mp4")),
            "--backbone", "efficientnet_lite0", "--bits", "16", "--frames", "4",
            "--dense-frames", "8", "--augment-draws", "2", "--batch-size", "2", "--epochs", "2",
            "--dim", "32", "--depth", "1", "--heads", "2", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(out)]
    assert cli.main(argv) == 0
    model, config_json = load_checkpoint(out)
    assert config_json["backbone"]["name"] == "efficientnet_lite0"
    assert model.config.feature_dim == 1280
