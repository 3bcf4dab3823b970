"""The three CHAIN task losses against their docstring formulas and on degenerate inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from chain_sdk.train.losses import (
    CodeDistillationLoss,
    FrameOrderLoss,
    NTXentLoss,
    SceneChangeLoss,
    contrastive_codes,
)
from chain_sdk.nn.chain import ChainConfig, ChainModel


def ntxent_reference(z1, z2, tau, debiased=False, tau_plus=0.1):
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    b = len(z1)
    losses = []
    for i in range(2 * b):
        j = (i + b) % (2 * b)
        e = np.exp(z @ z[i] / tau)
        if not debiased:
            losses.append(-math.log(e[j] / (e.sum() - e[i])))
        else:
            n = 2 * b - 2
            neg = e.sum() - e[i] - e[j]
            ng = max((neg - tau_plus * n * e[j]) / (1 - tau_plus), n * math.exp(-1 / tau))
            losses.append(-math.log(e[j] / (e[j] + ng)))
    return float(np.mean(losses))


@pytest.mark.parametrize("debiased", [False, True])
def test_ntxent_matches_formula(debiased):
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal((6, 16)), rng.standard_normal((6, 16))
    loss = NTXentLoss(0.3, debiased=debiased, tau_plus=0.1)(torch.tensor(z1), torch.tensor(z2))
    assert float(loss) == pytest.approx(ntxent_reference(z1, z2, 0.3, debiased), rel=1e-9)


def test_ntxent_prefers_matching_views_and_rejects_tiny_batches():
    rng = np.random.default_rng(1)
    z = torch.tensor(np.sign(rng.standard_normal((8, 64))))
    loss_fn = NTXentLoss()
    assert float(loss_fn(z, z)) < float(loss_fn(z, z.roll(1, dims=0)))
    with pytest.raises(ValueError, match="at least 2"):
        loss_fn(z[:1], z[:1])


def test_contrastive_codes_kinds():
    model = ChainModel(ChainConfig(bits=16, frames=5, feature_dim=8, dim=16, depth=1, heads=2))
    out = model(torch.randn(3, 5, 8))
    ste = contrastive_codes(out, "ste")
    assert set(ste.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(ste > 0, out.video_logits >= 0)
    assert torch.all(contrastive_codes(out, "tanh").abs() < 1)
    with pytest.raises(ValueError):
        contrastive_codes(out, "nope")


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.1])
def test_order_shuffle_is_a_partial_permutation(fraction):
    torch.manual_seed(0)
    source, moved = FrameOrderLoss(fraction).shuffle(32, 10, torch.device("cpu"))
    for src, mv in zip(source, moved):
        assert sorted(src.tolist()) == list(range(10))
        assert int(mv.sum()) == min(10, max(2, round(fraction * 10)))
        assert torch.equal(src[~mv], torch.arange(10)[~mv])  # untouched slots keep their frame


def test_order_loss_learns_positions_from_content():
    # Frame content drifts along a direction over time, so the original index is learnable.
    torch.manual_seed(0)
    t, d = 8, 12
    model = ChainModel(ChainConfig(bits=16, frames=t, feature_dim=d, dim=32, depth=1, heads=2,
                                   dropout=0.0))
    loss_fn = FrameOrderLoss(1.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    drift = torch.randn(d)
    for _ in range(150):
        feats = torch.randn(16, 1, d) * 0.5 + torch.arange(t)[None, :, None] * drift + 0.1 * torch.randn(16, t, d)
        loss, acc = loss_fn(model, feats)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert acc > 0.8  # chance is 1/8
    assert loss.item() < math.log(t) / 2


def test_order_targets_are_absolute_grid_positions():
    torch.manual_seed(0)
    model = ChainModel(ChainConfig(bits=16, frames=25, feature_dim=4, dim=16, depth=1, heads=2))
    positions = torch.tensor([[0, 3, 7, 11, 20]]).repeat(2, 1)
    loss, _ = FrameOrderLoss()(model, torch.randn(2, 5, 4), positions)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.order_head.weight.grad is not None


def two_scene_tokens(b=3, t=10, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, c = torch.randn(dim, generator=g), torch.randn(dim, generator=g)
    tokens = torch.stack([a if i < t // 2 else c for i in range(t)])
    tokens = tokens[None].repeat(b, 1, 1) + 0.01 * torch.randn(b, t, dim, generator=g)
    return tokens.requires_grad_(True)


def test_scene_loss_matches_formula_on_two_scenes():
    tokens = two_scene_tokens()
    loss_fn = SceneChangeLoss(temperature=0.2)
    loss = loss_fn(tokens)
    assert loss_fn.last_skipped == 0
    # Manual: clusters are the two halves; prototypes are their normalised means.
    h = torch.nn.functional.normalize(tokens.detach(), dim=-1)
    expected = []
    for v in h:
        protos = torch.nn.functional.normalize(torch.stack([v[:5].mean(0), v[5:].mean(0)]), dim=-1)
        logits = v @ protos.T / 0.2
        expected.append(torch.nn.functional.cross_entropy(logits, torch.tensor([0] * 5 + [1] * 5)))
    assert loss.item() == pytest.approx(float(torch.stack(expected).mean()), rel=1e-5)
    loss.backward()
    assert tokens.grad is not None and tokens.grad.abs().sum() > 0


def test_scene_loss_batch_negatives_is_larger():
    tokens = two_scene_tokens()
    own = SceneChangeLoss(batch_negatives=False)(tokens)
    batch = SceneChangeLoss(batch_negatives=True)(tokens)
    assert batch.item() > own.item()


def test_scene_loss_skips_degenerate_videos():
    loss_fn = SceneChangeLoss()
    same = torch.ones(2, 6, 8, requires_grad=True)  # one scene only
    loss = loss_fn(same)
    assert loss_fn.last_skipped == 2 and loss.item() == 0.0
    loss.backward()  # still part of the graph
    noisy = torch.randn(4, 25, 64)
    SceneChangeLoss(max_iter=2)(noisy)  # cannot converge in 2 iterations: skipped, no crash
    assert SceneChangeLoss(max_iter=2).cluster(noisy[0].numpy()) is None
    with pytest.raises(ValueError):
        SceneChangeLoss(damping=0.3)


@pytest.mark.parametrize("seed", range(5))
def test_distillation_loss_is_bce_with_logits_against_the_teacher_bits(seed):
    g = torch.Generator().manual_seed(seed)
    b, bits = int(torch.randint(1, 9, (), generator=g)), 8 * int(torch.randint(1, 5, (), generator=g))
    logits = (3 * torch.randn(b, bits, generator=g)).requires_grad_()
    teacher = torch.where(torch.rand(b, bits, generator=g) < 0.5, -1.0, 1.0)
    loss = CodeDistillationLoss()(logits, teacher)
    reference = torch.nn.functional.binary_cross_entropy_with_logits(logits, (teacher + 1) / 2)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    loss.backward()
    # Every bit is pushed towards the teacher's sign.
    assert (torch.sign(-logits.grad) == teacher).all()


def test_distillation_loss_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        CodeDistillationLoss()(torch.zeros(2, 16), torch.ones(2, 8))
