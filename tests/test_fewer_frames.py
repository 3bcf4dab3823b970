"""`with_fewer_frames` / `chain-export frames`: a T-frame model for clips of F <= T frames."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings, strategies as st

from chain_sdk.export.cli import main
from chain_sdk.nn.chain import ChainConfig, ChainModel, with_fewer_frames
from chain_sdk.nn.checkpoint import load_checkpoint, save_checkpoint
from chain_sdk.video import segment_indices


def grid_positions(frames: int, grid: int) -> torch.Tensor:
    return torch.from_numpy(segment_indices(grid, frames))


def segment_of_centre(j: int, frames: int, grid: int) -> int:
    """Reference: the k with k/grid <= (j + 1/2)/frames < (k + 1)/grid, by exact fractions."""
    centre = Fraction(2 * j + 1, 2 * frames)
    return next(k for k in range(grid) if Fraction(k, grid) <= centre < Fraction(k + 1, grid))


@given(grid=st.integers(1, 64), data=st.data())
def test_segment_centres_fall_in_these_grid_segments(grid, data):
    frames = data.draw(st.integers(1, grid))
    assert grid_positions(frames, grid).tolist() == [segment_of_centre(j, frames, grid) for j in range(frames)]


@pytest.mark.parametrize("frames", [0, 26])
def test_fewer_frames_refuses_more_frames_than_the_grid(frames):
    with pytest.raises(ValueError, match="1..25"):
        with_fewer_frames(ChainModel(ChainConfig(bits=16, frames=25, feature_dim=24, dim=16, depth=1, heads=2)), frames)


@settings(deadline=None, max_examples=25)
@given(t=st.integers(1, 30), position=st.sampled_from(["sinusoidal", "learned"]), seed=st.integers(0, 2**16),
       data=st.data())
def test_fewer_frames_equals_the_model_at_the_grid_positions(t, position, seed, data):
    frames = data.draw(st.integers(1, t))
    torch.manual_seed(seed)
    model = ChainModel(ChainConfig(bits=16, frames=t, feature_dim=24, dim=16, depth=1, heads=2,
                                   position=position)).eval()
    small = with_fewer_frames(model, frames)
    x = torch.randn(3, frames, 24)
    grid = grid_positions(frames, t)
    want = model(x, grid[None].expand(3, -1))
    got = small(x)
    assert small.config.frames == frames and not small.training
    torch.testing.assert_close(got.frame_logits, want.frame_logits)
    torch.testing.assert_close(small.predict_order(got.tokens), model.predict_order(want.tokens)[..., grid])


def test_cli_writes_a_checkpoint_for_fewer_frames(tmp_path):
    torch.manual_seed(0)
    model = ChainModel(ChainConfig(bits=32, frames=25, feature_dim=1280, dim=32, depth=1, heads=2)).eval()
    save_checkpoint(tmp_path / "t25", model)
    assert main(["frames", "--checkpoint", str(tmp_path / "t25"), "--frames", "8", "--out", str(tmp_path / "t8")]) == 0
    small, config = load_checkpoint(tmp_path / "t8")
    assert config["model"]["frames"] == 8 and config["model"]["position"] == "learned"
    assert config["training"]["extra"]["fewer_frames_of"]["frames"] == 25
    x = torch.randn(2, 8, 1280)
    torch.testing.assert_close(small(x).video_logits, model(x, grid_positions(8, 25)[None].expand(2, -1)).video_logits)
    # more frames than the checkpoint has: a typed error, exit 1, nothing written
    assert main(["frames", "--checkpoint", str(tmp_path / "t25"), "--frames", "26", "--out", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()
    assert json.loads((tmp_path / "t8" / "config.json").read_text())["weights_sha256"]
