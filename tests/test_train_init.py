"""`--init pca`: the encoder starts as the PCA projection and its codes start near PCA-sign."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from chain_sdk.train.data import FeatureViews
from chain_sdk.train.init import pca_init, principal_axes
from chain_sdk.nn.chain import ChainConfig, ChainModel
from chain_sdk.train.trainer import TrainConfig, Trainer

torch.set_num_threads(1)


def low_rank_clips(n=300, t=12, d=96, rank=24, seed=0):
    """Clips whose mean lives in a `rank`-dim subspace with decaying variance, plus frame noise."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, rank)))[0]
    loads = rng.standard_normal((n, rank)) * np.linspace(6.0, 2.0, rank)
    centres = 3.0 + loads @ basis.T
    return (centres[:, None, :] + 0.5 * rng.standard_normal((n, t, d))).astype(np.float32)


def pca_sign_reference(train: np.ndarray, clips: np.ndarray, bits: int) -> np.ndarray:
    """sign(PCA(mean feature)) with scikit-learn's PCA (independent of train.init), fitted on the
    training clip means."""
    from sklearn.decomposition import PCA

    pca = PCA(bits, svd_solver="full").fit(train.mean(axis=1).astype(np.float64))
    return pca.transform(clips.mean(axis=1).astype(np.float64)) >= 0


def test_principal_axes_are_sklearns_up_to_sign():
    from sklearn.decomposition import PCA

    x = low_rank_clips(n=120, seed=3).mean(axis=1).astype(np.float64)
    mean, axes = principal_axes(x, 10)
    pca = PCA(10, svd_solver="full").fit(x)
    np.testing.assert_allclose(mean, pca.mean_, atol=1e-9)
    np.testing.assert_allclose(np.abs(axes.T @ pca.components_.T), np.eye(10), atol=1e-6)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Bit agreement of two code sets, per bit up to the sign of each PCA axis."""
    same = (a == b).mean(axis=0)
    return float(np.maximum(same, 1 - same).mean())


@pytest.mark.parametrize("position", ["sinusoidal", "learned"])
def test_pca_initialised_codes_start_near_pca_sign(position):
    clips = low_rank_clips(seed=1)
    train, test = clips[:200], clips[200:]
    rng = np.random.default_rng(1)
    config = ChainConfig(bits=16, frames=12, feature_dim=96, dim=32, depth=2, heads=2, position=position)
    model = ChainModel(config).eval()
    views = FeatureViews(train, warn=False)
    pca_init(model, *views.pca_samples(rng))
    with torch.no_grad():
        bits = (model(torch.from_numpy(test)).video_logits >= 0).numpy()
    reference = pca_sign_reference(train, test, 16)
    assert agreement(bits, reference) >= 0.85  # measured 0.90: the LayerNorms re-centre
    random_model = ChainModel(config).eval()
    with torch.no_grad():
        random_bits = (random_model(torch.from_numpy(test)).video_logits >= 0).numpy()
    assert agreement(random_bits, reference) < 0.7  # measured 0.55-0.57


def test_pca_init_zeroes_residual_branches_and_refuses_bits_above_dim():
    train = low_rank_clips(n=100)
    model = ChainModel(ChainConfig(bits=16, frames=12, feature_dim=96, dim=32, depth=2, heads=2))
    pca_init(model, train.reshape(-1, 96), train.mean(axis=1))
    for block in model.blocks:
        assert not block.attn.proj.weight.any() and not block.mlp[-1].weight.any()
    wide = ChainModel(ChainConfig(bits=64, frames=12, feature_dim=96, dim=32, depth=1, heads=2))
    with pytest.raises(ValueError, match="bits <= dim"):
        pca_init(wide, train.reshape(-1, 96), train.mean(axis=1))


def test_trainer_applies_pca_init_and_records_it(tmp_path):
    train = low_rank_clips(n=64)
    config = ChainConfig(bits=16, frames=12, feature_dim=96, dim=32, depth=1, heads=2)
    trainer = Trainer(FeatureViews(train, warn=False), config,
                      TrainConfig(epochs=1, batch_size=32, init="pca", scene=False), tmp_path / "run",
                      backbone={"name": "synthetic", "feature_dim": 96})
    trainer.fit()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["training"]["init"] == "pca"
    with pytest.raises(ValueError, match="init"):
        TrainConfig(init="zeros")
